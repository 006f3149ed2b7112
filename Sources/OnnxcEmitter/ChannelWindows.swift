import OnnxcCore
import OnnxcIR

/// Decides which channels-last tensors live inside a wider one's arena slot instead of a slot of their own, so that
/// a Concat along the last axis costs nothing (its operands are written where its result needs them) and a Split
/// along it neither (its parts are read where they lie). A YOLO-style CSP block (Conv → Split → bottlenecks →
/// Concat of every stage → Conv) then copies no channel at all: yolo_tiny's Concat and Split took 11 % of a run.
///
/// Every placement states that two tensors hold the same values at the same bytes — a Concat's operand and its
/// range of the result, a Split's part and its range of the input — so a group (the tensors sharing one root's
/// slot, by union-find with channel offsets) never holds two different values in one place, and its slot stays
/// reserved from the first member's definition to the last member's read. A member narrower than its root is
/// strided (its rows `rowStride` elements apart): only ops whose compiled step reads or writes such a tensor
/// (`readsWindows`, `writesWindows`) may touch one, so a placement is made only where every reader and the writer
/// qualify. The runtime never depends on this for correctness — a step that gets a dense value copies it into
/// the window, one that cannot read a window gets a dense copy — only for speed.
enum ChannelWindows {
    /// A member's place: its root's name and the channel (last-axis index) where it starts.
    struct Placement: Equatable {
        var root: String
        var channel: Int
    }

    /// Elementwise ops whose step (`ck_binary_rows_f32`) reads and writes windows of the output's shape.
    static let elementwise: Set<String> = ["Add", "Sub", "Mul", "Div"]

    /// Ops whose step writes output 0 at any row stride (the kernels take an output pixel stride).
    static let writesWindows = elementwise.union([
        RuntimeOps.domain + "::NhwcConv", RuntimeOps.domain + "::NhwcMaxPool", RuntimeOps.domain + "::NhwcAveragePool", "Concat",
    ])

    /// Ops whose step reads these inputs at any row stride (Concat and Split: along the last axis, `stridable`).
    static let readsWindows: [String: Set<Int>] = [
        RuntimeOps.domain + "::NhwcConv": [0, 3],
        RuntimeOps.domain + "::NhwcMaxPool": [0],
        RuntimeOps.domain + "::NhwcAveragePool": [0],
    ].merging(elementwise.map { ($0, [0, 1]) }) { first, _ in first }

    /// The placement of every tensor that is not its own root, by name. `types` are the graph's static types;
    /// `outputs` the graph outputs (they outlive the run, so they never share a slot).
    static func plan(_ graph: Graph, types: [String: TensorType], outputs: Set<String>) -> [String: Placement] {
        var planner = Planner(graph: graph, types: types, outputs: outputs)
        for node in graph.nodes where node.domain.isEmpty {
            switch node.opType {
            case "Split": planner.split(node)
            case "Concat": planner.concat(node)
            default: break
            }
        }
        var resolved: [String: Placement] = [:]
        for name in planner.placements.keys { resolved[name] = planner.root(name) }
        return resolved
    }

    /// Ops whose output is a view of their input's slot (`ProgramBuilder.viewOps`): such a slot is not the output's
    /// own, so it neither roots nor joins a group.
    static let viewOps: Set<String> = ["Reshape", "Flatten", "Squeeze", "Unsqueeze", "Identity"]

    private struct Planner {
        let nodes: [Node]
        let types: [String: TensorType]
        /// The op (qualified type) and output slot defining each intermediate.
        var producers: [String: (node: Int, slot: Int)] = [:]
        /// Every (node, input slot) reading each name.
        var readers: [String: [(node: Int, slot: Int)]] = [:]
        /// Names no window may hold: graph outputs, values subgraphs capture.
        var excluded: Set<String>
        var placements: [String: Placement] = [:]
        /// The members placed directly in each tensor (so a root that joins a wider group brings its own).
        var members: [String: [String]] = [:]

        init(graph: Graph, types: [String: TensorType], outputs: Set<String>) {
            nodes = graph.nodes
            self.types = types
            excluded = outputs
            for (index, node) in graph.nodes.enumerated() {
                for (slot, name) in node.outputs.enumerated() where !name.isEmpty { producers[name] = (index, slot) }
                for (slot, name) in node.inputs.enumerated() where !name.isEmpty { readers[name, default: []].append((index, slot)) }
                for subgraph in node.subgraphs { excluded.formUnion(subgraph.capturedValues) }
            }
        }

        /// The static float32 dims of an intermediate that may share a slot, or nil.
        func dims(_ name: String) -> [Int64]? {
            guard !name.isEmpty, let producer = producers[name], !excluded.contains(name),
                  !(nodes[producer.node].domain.isEmpty && ChannelWindows.viewOps.contains(nodes[producer.node].opType)),
                  let type = types[name], type.elementType == .float,
                  let dims = type.shape?.fixedDims, !dims.isEmpty, CheckedSize.elementCount(dims) != nil else { return nil }
            return dims
        }

        /// The axis attribute as a non-negative axis of a rank-`rank` tensor.
        static func axis(_ node: Node, rank: Int, default fallback: Int64) -> Int? {
            var axis = fallback
            if case .int(let value)? = node.attribute("axis") { axis = value }
            if axis < 0 { axis += Int64(rank) }
            return axis >= 0 && axis < Int64(rank) ? Int(axis) : nil
        }

        /// Whether `name` may be strided: its writer and every reader have steps that take a row stride. A Split's
        /// part is written by no one (it is its input's bytes); an elementwise op reads a window only as an operand
        /// of the output's shape (its step's strided form does not broadcast).
        func stridable(_ name: String) -> Bool {
            guard let producer = producers[name] else { return false }
            let writer = nodes[producer.node]
            if !(writer.domain.isEmpty && writer.opType == "Split") {
                guard producer.slot == 0, ChannelWindows.writesWindows.contains(writer.qualifiedOpType) else { return false }
            }
            let shape = dims(name)
            for reader in readers[name] ?? [] {
                let node = nodes[reader.node]
                let qualified = node.qualifiedOpType
                if node.domain.isEmpty && (node.opType == "Concat" || node.opType == "Split") {
                    guard let shape, Self.axis(node, rank: shape.count, default: 0) == shape.count - 1 else { return false }
                    continue
                }
                guard ChannelWindows.readsWindows[qualified]?.contains(reader.slot) == true else { return false }
                if ChannelWindows.elementwise.contains(qualified), dims(node.outputs.first ?? "") != shape { return false }
            }
            return true
        }

        /// The root of `name`'s group and the channel where `name` starts in it.
        func root(_ name: String) -> Placement {
            var current = Placement(root: name, channel: 0)
            while let parent = placements[current.root] {
                current = Placement(root: parent.root, channel: current.channel + parent.channel)
            }
            return current
        }

        /// Every tensor of the group rooted at `name`, the root included.
        func group(_ name: String) -> [String] {
            var all = [name], index = 0
            while index < all.count {
                all += members[all[index]] ?? []
                index += 1
            }
            return all
        }

        /// Places `member` at `channel` of `container`'s bytes (through both groups' roots), when that is consistent
        /// with what is already placed and every tensor that becomes strided can be.
        mutating func place(_ member: String, in container: String, at channel: Int) {
            guard let memberDims = dims(member), let containerDims = dims(container) else { return }
            let m = root(member), c = root(container)
            if m.root == c.root { return }
            guard let inner = dims(m.root), let outer = dims(c.root), inner.count == outer.count,
                  memberDims.dropLast() == containerDims.dropLast(), inner.dropLast() == outer.dropLast() else { return }
            let start = c.channel + channel - m.channel
            guard start >= 0, let width = inner.last, let total = outer.last, Int64(start) + width <= total else { return }
            // The joining group becomes strided inside the wider root (unless it spans all of it).
            if width != total || start != 0 {
                guard group(m.root).allSatisfy(stridable) else { return }
            }
            placements[m.root] = Placement(root: c.root, channel: start)
            members[c.root, default: []].append(m.root)
        }

        /// A Split along the last axis: its parts are its input's channel ranges.
        mutating func split(_ node: Node) {
            guard let input = node.inputs.first, let inputDims = dims(input),
                  Self.axis(node, rank: inputDims.count, default: 0) == inputDims.count - 1 else { return }
            var channel: Int64 = 0
            var parts: [(String, Int)] = []
            for output in node.outputs {
                guard let d = dims(output), d.count == inputDims.count, let width = d.last else { return }
                parts.append((output, Int(channel)))
                channel += width
            }
            guard channel == inputDims.last else { return }
            for (output, start) in parts where stridable(output) { place(output, in: input, at: start) }
        }

        /// A Concat along the last axis: each operand (once) is its range of the result.
        mutating func concat(_ node: Node) {
            guard let output = node.outputs.first, let outputDims = dims(output),
                  Self.axis(node, rank: outputDims.count, default: 0) == outputDims.count - 1 else { return }
            var channel: Int64 = 0
            var seen: Set<String> = []
            var parts: [(String, Int)] = []
            for input in node.inputs {
                guard let d = dims(input), d.count == outputDims.count, let width = d.last else { return }
                if seen.insert(input).inserted { parts.append((input, Int(channel))) }
                channel += width
            }
            guard channel == outputDims.last else { return }
            for (input, start) in parts { place(input, in: output, at: start) }
        }
    }
}
