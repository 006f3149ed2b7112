import OnnxcCore

/// Values visible while a graph runs; a subgraph's scope falls back to its enclosing graph's.
final class Scope {
    var values: [String: Value]
    let parent: Scope?

    init(values: [String: Value] = [:], parent: Scope?) {
        self.values = values
        self.parent = parent
    }

    func lookup(_ name: String) -> Value? {
        if let value = values[name] { return value }
        return parent?.lookup(name)
    }
}

/// Interprets a `RuntimeGraph` node by node with the registered kernels. Checks at construction that every
/// operator, in every subgraph, has a kernel, and reports all missing ones at once.
public final class Executor: ModelRunner {
    public let graph: RuntimeGraph
    /// The planned memory of a compiled model (main-graph intermediates); nil: every output is allocated.
    let arena: Arena?
    /// Outputs that ran in their planned arena slot, and outputs copied out of a slot not theirs (a view or a
    /// kernel's temporary), over this executor's runs: what `bench` reports and tests check.
    public private(set) var arenaStatistics = (inPlace: 0, copied: 0)
    /// Per graph (by identity): after node i, the values no later node, subgraph or output needs.
    private var releasePlans: [ObjectIdentifier: [[String]]] = [:]
    /// Per graph (by identity): each node's kernel (nil: none), looked up at the graph's first run rather than at
    /// every node of every run (`KernelRegistry` searches its families one by one).
    private var kernelTables: [ObjectIdentifier: [Kernel?]] = [:]

    /// Set to an empty dictionary to collect a profile on the next runs; nil (the default) costs nothing.
    public var profile: [String: OpProfile]?

    public convenience init(graph: RuntimeGraph) throws(RuntimeError) {
        try self.init(graph: graph, arena: nil)
    }

    convenience init(graph: RuntimeGraph, arena: Arena?) throws(RuntimeError) {
        try Executor.checkSupported(graph)
        self.init(checked: graph, arena: arena)
    }

    /// For a graph whose kernels were already checked (a compiled plan's, which runs only its subgraphs here):
    /// checking again would look up every node's kernel, and so build the kernel tables, at each load.
    init(checked graph: RuntimeGraph, arena: Arena?) {
        self.graph = graph
        self.arena = arena
    }

    /// Every op of `graph` and its subgraphs has a kernel, or one error lists all missing ones.
    static func checkSupported(_ graph: RuntimeGraph) throws(RuntimeError) {
        var missing: [String: RuntimeError.UnsupportedOp] = [:]
        var order: [String] = []
        collectUnsupported(graph, into: &missing, order: &order)
        if !order.isEmpty { throw .unsupportedOps(order.compactMap { missing[$0] }) }
    }

    private static func collectUnsupported(_ graph: RuntimeGraph, into missing: inout [String: RuntimeError.UnsupportedOp], order: inout [String]) {
        for node in graph.nodes {
            if KernelRegistry.kernel(domain: node.domain, opType: node.opType) == nil {
                let key = "\(KernelRegistry.key(node.domain, node.opType))@\(node.opset)"
                if missing[key] == nil {
                    order.append(key)
                    missing[key] = RuntimeError.UnsupportedOp(domain: node.domain, opType: node.opType, opset: node.opset, nodes: [])
                }
                missing[key]?.nodes.append(node.displayName)
            }
            for value in node.attributes.values.values {
                switch value {
                case .graph(let g): collectUnsupported(g, into: &missing, order: &order)
                case .graphs(let gs): for g in gs { collectUnsupported(g, into: &missing, order: &order) }
                default: break
                }
            }
        }
    }

    /// Runs the main graph. Inputs not given fall back to initializers of the same name (IR < 4 defaults).
    public func run(_ inputs: [String: Value]) throws(RuntimeError) -> [String: Value] {
        let scope = Scope(parent: nil)
        for (name, tensor) in graph.initializers { scope.values[name] = .tensor(tensor) }
        for input in graph.inputs {
            if let value = inputs[input.name] {
                scope.values[input.name] = value
            } else if scope.values[input.name] == nil {
                throw .missingInput("model input \(input.name) was not given")
            }
        }
        try runNodes(graph, scope: scope)
        var results: [String: Value] = [:]
        for output in graph.outputs {
            guard let value = scope.lookup(output.name) else { throw .missingInput("graph output \(output.name) was never computed") }
            results[output.name] = value
        }
        return results
    }

    /// Runs a subgraph with positional inputs and returns its outputs in order.
    func execute(_ graph: RuntimeGraph, inputs: [Value], parent: Scope) throws(RuntimeError) -> [Value] {
        let scope = Scope(parent: parent)
        for (name, tensor) in graph.initializers { scope.values[name] = .tensor(tensor) }
        for (index, input) in graph.inputs.enumerated() where index < inputs.count {
            scope.values[input.name] = inputs[index]
        }
        try runNodes(graph, scope: scope)
        var results: [Value] = []
        for output in graph.outputs {
            guard let value = scope.lookup(output.name) else {
                throw .missingInput("subgraph \(graph.name) output \(output.name) was never computed")
            }
            results.append(value)
        }
        return results
    }

    /// Keeps every arena-backed output in its own planned slot: a value in another slot (a kernel's temporary
    /// that became an output, a view of an arena input, a sequence holding arena tensors) is copied out, since
    /// that slot will be reused when its owner's lifetime ends.
    static func settle(_ results: [Value?], outputs: [String], in arena: Arena) -> (values: [Value?], inPlace: Int, copied: Int) {
        var inPlace = 0, copied = 0
        func detached(_ tensor: Tensor, own: UnsafeRawPointer?) -> Tensor {
            guard let base = tensor.unsafeBaseAddress, arena.contains(base) else { return tensor }
            if base == own {
                inPlace += 1
                return tensor
            }
            copied += 1
            return tensor.copiedToHeap()
        }
        let values: [Value?] = results.enumerated().map { index, value in
            let own = index < outputs.count ? arena.base(of: outputs[index]).map { UnsafeRawPointer($0) } : nil
            switch value {
            case .tensor(let tensor)?: return .tensor(detached(tensor, own: own))
            case .sequence(let type, let tensors)?: return .sequence(elementType: type, tensors.map { detached($0, own: nil) })
            default: return value
            }
        }
        return (values, inPlace, copied)
    }

    private func kernelTable(_ graph: RuntimeGraph) -> [Kernel?] {
        if let table = kernelTables[ObjectIdentifier(graph)] { return table }
        let table = graph.nodes.map { KernelRegistry.kernel(domain: $0.domain, opType: $0.opType) }
        kernelTables[ObjectIdentifier(graph)] = table
        return table
    }

    /// Frees intermediates as soon as their last reader has run, so peak memory follows the live set rather
    /// than the whole graph.
    private func releasePlan(_ graph: RuntimeGraph) -> [[String]] {
        if let plan = releasePlans[ObjectIdentifier(graph)] { return plan }
        var lastUse: [String: Int] = [:]
        for (index, node) in graph.nodes.enumerated() {
            for name in node.inputs where !name.isEmpty { lastUse[name] = index }
            for value in node.attributes.values.values {
                let subgraphs: [RuntimeGraph]
                switch value {
                case .graph(let g): subgraphs = [g]
                case .graphs(let gs): subgraphs = gs
                default: subgraphs = []
                }
                for name in subgraphs.flatMap(Executor.capturedNames) { lastUse[name] = index }
            }
        }
        let kept = Set(graph.outputs.map(\.name))
        var plan = [[String]](repeating: [], count: graph.nodes.count)
        for (index, node) in graph.nodes.enumerated() {
            for name in node.outputs where !name.isEmpty && !kept.contains(name) && lastUse[name] == nil {
                plan[index].append(name)  // produced but never read
            }
        }
        let produced = Set(graph.nodes.flatMap(\.outputs))
        for (name, index) in lastUse where produced.contains(name) && !kept.contains(name) { plan[index].append(name) }
        releasePlans[ObjectIdentifier(graph)] = plan
        return plan
    }

    /// Every name a graph (or its subgraphs) reads; a superset of its outer-scope captures is enough here.
    static func capturedNames(_ graph: RuntimeGraph) -> [String] {
        var names: [String] = graph.outputs.map(\.name)
        for node in graph.nodes {
            names += node.inputs.filter { !$0.isEmpty }
            for value in node.attributes.values.values {
                switch value {
                case .graph(let g): names += capturedNames(g)
                case .graphs(let gs): for g in gs { names += capturedNames(g) }
                default: break
                }
            }
        }
        return names
    }

    private func runNodes(_ graph: RuntimeGraph, scope: Scope) throws(RuntimeError) {
        let plan = releasePlan(graph)
        let kernels = kernelTable(graph)
        for (nodeIndex, node) in graph.nodes.enumerated() {
            guard let kernel = kernels[nodeIndex] else {
                throw .unsupportedOps([RuntimeError.UnsupportedOp(domain: node.domain, opType: node.opType, opset: node.opset, nodes: [node.displayName])])
            }
            let inputs: [Value?] = node.inputs.map { $0.isEmpty ? nil : scope.lookup($0) }
            for (index, name) in node.inputs.enumerated() where !name.isEmpty && inputs[index] == nil {
                throw .atNode(node: node.displayName, op: node.opType, .missingInput("input \(name) has no value"))
            }
            let context = KernelContext(node: node, scope: scope, executor: self)
            let results: [Value?]
            let start = profile == nil ? nil : ContinuousClock.now
            do {
                let offer = arena.map { ArenaOffer(arena: $0, outputs: node.outputs) }
                let raw = try ArenaOffer.with(offer?.free.isEmpty == false ? offer : nil) { () throws(RuntimeError) in try kernel(inputs, context) }
                if let arena {
                    let settled = Executor.settle(raw, outputs: node.outputs, in: arena)
                    arenaStatistics.inPlace += settled.inPlace
                    arenaStatistics.copied += settled.copied
                    results = settled.values
                } else {
                    results = raw
                }
            } catch {
                if case .atNode = error { throw error }
                throw .atNode(node: node.displayName, op: node.opType, error)
            }
            if let start {
                let elapsed = ContinuousClock.now - start
                let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) * 1e-18
                profile?[node.opType, default: OpProfile()].calls += 1
                profile?[node.opType, default: OpProfile()].seconds += seconds
            }
            for (index, name) in node.outputs.enumerated() where !name.isEmpty && index < results.count {
                if let value = results[index] { scope.values[name] = value }
            }
            for name in plan[nodeIndex] { scope.values[name] = nil }
        }
    }
}
