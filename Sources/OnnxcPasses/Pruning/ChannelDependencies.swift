import OnnxcCore
import OnnxcIR

/// The channels a tensor carries along one axis. Position `i` holds channel *atom* `atoms[i]`: an atom is one
/// output channel of one prunable layer, and atoms that must be removed together (a residual Add's operands,
/// a depthwise layer's input and output) are joined in a union-find. Positions may repeat an atom: Flatten of
/// [N, C, H, W] repeats each channel H·W times, and Concat of a Split half with itself would too. Tracking per
/// position, not per layer, is what makes Concat/Split offsets exact (Torch-Pruning #146, #481 are off-by-offset
/// bugs of range bookkeeping).
struct ChannelMap: Equatable, Sendable {
    var axis: Int
    var atoms: [Int]
}

/// Disjoint sets over atoms; `fixed` marks sets that must keep every channel.
struct AtomSets: Sendable {
    private(set) var parent: [Int] = []
    private var fixedRoot: [Int: String] = [:]

    mutating func make(_ count: Int) -> [Int] {
        let first = parent.count
        parent += first..<(first + count)
        return Array(first..<(first + count))
    }

    mutating func find(_ a: Int) -> Int {
        var root = a
        while parent[root] != root { root = parent[root] }
        var x = a
        while parent[x] != root {
            let next = parent[x]
            parent[x] = root
            x = next
        }
        return root
    }

    mutating func union(_ a: Int, _ b: Int) {
        let ra = find(a), rb = find(b)
        guard ra != rb else { return }
        parent[rb] = ra
        if let reason = fixedRoot.removeValue(forKey: rb), fixedRoot[ra] == nil { fixedRoot[ra] = reason }
    }

    mutating func fix(_ a: Int, _ reason: String) {
        let r = find(a)
        if fixedRoot[r] == nil { fixedRoot[r] = reason }
    }

    mutating func fixedReason(_ a: Int) -> String? { fixedRoot[find(a)] }

    /// `find` without path compression, for readers of a finished analysis.
    func representative(_ a: Int) -> Int {
        var root = a
        while parent[root] != root { root = parent[root] }
        return root
    }
}

/// A layer whose output channels can be removed: a Conv/ConvTranspose with group 1, or a Gemm/MatMul with a
/// constant weight. Its atoms are `firstAtom ..< firstAtom + channels`.
struct PruningRoot: Sendable {
    var node: Int
    var name: String
    var opType: String
    var channels: Int
    var firstAtom: Int
    var output: String
}

/// One weight slice that scores a group's channels: per position, the L1 and L2 norms of the weights at that
/// channel (a producer's output slice, a consumer's input slice, a BN scale).
struct ImportanceSource: Sendable {
    var node: Int
    var atoms: [Int]
    var l1: [Double]
    var l2: [Double]
    var isBatchNormScale: Bool
}

/// The dependency analysis of a graph: which tensors carry which atoms, the roots, the importance sources and
/// the reasons some channels cannot go.
struct ChannelDependencies: Sendable {
    var maps: [String: ChannelMap] = [:]
    var roots: [PruningRoot] = []
    var sources: [ImportanceSource] = []
    var sets = AtomSets()
    /// Nodes whose weights or attributes the rewrite must update, in graph order.
    var touched: Set<Int> = []
    /// Layers the user excluded or the analysis could not take, with the reason (for the report).
    var notes: [(layer: String, reason: String)] = []

    /// The positions of `name`'s channel axis that stay and that go when the sets in `removed` are cut; nil for a
    /// tensor that carries no tracked channels.
    func positions(of name: String, removed: Set<Int>) -> (kept: [Int], cut: [Int])? {
        guard let map = maps[name] else { return nil }
        var kept: [Int] = [], cut: [Int] = []
        for (i, atom) in map.atoms.enumerated() {
            if removed.contains(sets.representative(atom)) { cut.append(i) } else { kept.append(i) }
        }
        return (kept, cut)
    }

    /// The root owning `atom`.
    func root(of atom: Int) -> Int? {
        var lo = 0, hi = roots.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if roots[mid].firstAtom + roots[mid].channels <= atom { lo = mid + 1 } else { hi = mid }
        }
        return lo < roots.count && atom >= roots[lo].firstAtom ? lo : nil
    }
}

/// What a graph analysis reads: static shapes, constants, use lists.
struct PruningGraphView {
    let graph: Graph
    let index: GraphIndex
    let shapes: [String: [Dim]]
    let constants: [String: Tensor]

    init(_ graph: Graph) {
        self.graph = graph
        index = GraphIndex(graph)
        var shapes: [String: [Dim]] = [:]
        for info in graph.inputs + graph.valueInfo + graph.outputs {
            if let dims = info.type?.tensorType?.shape?.dims { shapes[info.name] = dims }
        }
        var constants: [String: Tensor] = [:]
        let inputNames = Set(graph.inputs.map(\.name))
        for tensor in graph.initializers where !inputNames.contains(tensor.name) {
            constants[tensor.name] = tensor
            shapes[tensor.name] = tensor.dims.map(Dim.fixed)
        }
        self.shapes = shapes
        self.constants = constants
    }

    func rank(_ name: String) -> Int? { shapes[name]?.count }
    func dims(_ name: String) -> [Dim]? { shapes[name] }
    func fixedDim(_ name: String, _ axis: Int) -> Int? {
        guard let dims = shapes[name], axis >= 0, axis < dims.count, let d = dims[axis].fixedValue else { return nil }
        return Int(d)
    }
    func constant(_ name: String) -> Tensor? { name.isEmpty ? nil : constants[name] }
    func integers(_ name: String) -> [Int64]? { constant(name)?.data.integers() }
}

extension ChannelDependencies {
    /// Builds the dependency analysis over the main graph (nodes in topological order, shapes inferred).
    static func analyze(_ graph: Graph, excluded: Set<String>) -> ChannelDependencies {
        let r = RuleContext(view: PruningGraphView(graph))
        for (n, node) in graph.nodes.enumerated() {
            let tracked = node.inputs.enumerated().compactMap { i, name in r.deps.maps[name].map { (i, $0) } }
            // Values a subgraph reads from this scope cannot be followed into it.
            if !node.subgraphs.isEmpty {
                for (_, map) in tracked { r.deps.fixAll(map, "\(node.displayName) (\(node.opType)) reads them inside a subgraph") }
                continue
            }
            r.node = node
            r.tracked = tracked
            ChannelRules.propagate(index: n, excluded: excluded, r)
        }
        for output in graph.outputs {
            if let map = r.deps.maps[output.name] { r.deps.fixAll(map, "they reach graph output \(output.name)") }
        }
        return r.deps
    }

    mutating func fixAll(_ map: ChannelMap, _ reason: String) {
        for atom in map.atoms { sets.fix(atom, reason) }
    }

    /// Fresh atoms for a layer's output channels.
    mutating func addRoot(node: Int, _ n: Node, channels: Int) -> ChannelMap {
        let atoms = sets.make(channels)
        roots.append(PruningRoot(node: node, name: n.name.isEmpty ? n.displayName : n.name, opType: n.opType,
                                 channels: channels, firstAtom: atoms.first ?? 0, output: n.outputs[0]))
        touched.insert(node)
        return ChannelMap(axis: 1, atoms: atoms)
    }

    /// Fresh atoms that can never be removed: channels of a tensor the analysis does not own.
    mutating func fixedAtoms(_ count: Int, _ reason: String) -> [Int] {
        let atoms = sets.make(count)
        for a in atoms { sets.fix(a, reason) }
        return atoms
    }

    mutating func unite(_ a: [Int], _ b: [Int]) {
        for (x, y) in zip(a, b) { sets.union(x, y) }
    }
}

extension Graph {
    /// Drops initializers nothing reads any more (the weights a rewrite replaced); graph inputs' defaults stay.
    mutating func dropUnusedInitializers() {
        let index = GraphIndex(self)
        let inputs = Set(self.inputs.map(\.name))
        initializers.removeAll { !inputs.contains($0.name) && index.isUnused($0.name) }
    }
}
