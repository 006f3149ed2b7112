import OnnxcCore
public import OnnxcIR

/// Merges chains of shape-only ops: a Reshape of a reshaped value, Unsqueeze of an Unsqueeze, and
/// Squeeze/Unsqueeze pairs that cancel.
///
/// Matches: Reshape(R(x), s) where R is Reshape, Squeeze, Unsqueeze or Flatten (none of which reorder
/// elements) and s does not copy input dims (a constant without 0 entries, or allowzero = 1); Flatten(R(x))
/// where R's output shape is static (it becomes Reshape(x, [rows, columns]) with a new constant);
/// Squeeze(Unsqueeze(x, a), a) and Unsqueeze(Squeeze(x, a), a) with the same constant axes (a Squeeze without
/// axes counts when x's dims are static); Unsqueeze(Unsqueeze(x, a1), a2) with constant axes (negative ones
/// need x's rank). Produces: Reshape(x, s) with the outer node's attributes; one Unsqueeze with the combined
/// axes; or, for a cancelling pair, uses of the output read x. The inner node goes when nothing else reads it. Preconditions:
/// opset ≥ 5 (Reshape takes its shape as an input); a cancelled output is not a graph output. Numerics:
/// unchanged (no data changes). Tested by: NoOpEliminationTests.
public struct ConsecutiveReshapeFusion: Pass {
    public let id = "fuse-reshapes"
    public let summary = "merge Reshape/Flatten/Unsqueeze chains and cancel Unsqueeze/Squeeze pairs"

    private static let reshaping: Set<String> = ["Reshape", "Squeeze", "Unsqueeze", "Flatten"]

    public init() {}

    public func run(on graph: Graph, context: PassContext) -> GraphPatch? {
        let index = GraphIndex(graph)
        let opset = context.opset(for: "")
        let interface = Set(graph.inputs.map(\.name))
        var constants: [String: OnnxcIR.Tensor] = [:]
        for tensor in graph.initializers where !interface.contains(tensor.name) { constants[tensor.name] = tensor }
        for node in graph.nodes where node.opType == "Constant" && node.domain.isEmpty {
            if let output = node.outputs.first, case .tensor(let value)? = node.attribute("value") {
                constants[output] = OnnxcIR.Tensor(name: output, data: value.data)
            }
        }
        var shapes: [String: Shape] = [:]
        for info in graph.valueInfo + graph.outputs + graph.inputs {
            if let shape = info.type?.tensorType?.shape { shapes[info.name] = shape }
        }
        func ints(_ name: String) -> [Int64]? {
            guard let tensor = constants[name], tensor.dtype == .int64 || tensor.dtype == .int32 else { return nil }
            return tensor.data.integers()
        }
        /// The axes a Squeeze/Unsqueeze names, or nil when they are not constant.
        func axes(_ node: Node) -> [Int64]? {
            if opset < 13 {
                if case .ints(let a)? = node.attribute("axes") { return a }
                return nil
            }
            guard node.inputs.count > 1, !node.inputs[1].isEmpty else { return nil }
            return ints(node.inputs[1])
        }

        var taken = Set(graph.inputs.map(\.name)).union(graph.initializers.map(\.name)).union(graph.nodes.flatMap(\.outputs))
        for node in graph.nodes { taken.formUnion(node.inputs) }
        var patch = GraphPatch()
        var touched = Set<Int>()
        for (n, outer) in graph.nodes.enumerated() where outer.domain.isEmpty && !touched.contains(n) {
            guard let middle = outer.inputs.first, !middle.isEmpty, let output = outer.outputs.first, !output.isEmpty,
                  let i = index.producer(of: middle)?.node, !touched.contains(i) else { continue }
            let inner = graph.nodes[i]
            guard inner.domain.isEmpty, Self.reshaping.contains(inner.opType), let x = inner.inputs.first, !x.isEmpty else { continue }
            switch (inner.opType, outer.opType) {
            case (_, "Reshape"):
                guard opset >= 5, outer.inputs.count > 1, !outer.inputs[1].isEmpty else { continue }
                var allowZero = false
                if case .int(let a)? = outer.attribute("allowzero") { allowZero = a != 0 }
                if !allowZero {
                    guard let target = ints(outer.inputs[1]), !target.contains(0) else { continue }
                }
                var replacement = outer
                replacement.inputs[0] = x
                patch.replace(n, with: [replacement])
            case ("Unsqueeze", "Squeeze"), ("Squeeze", "Unsqueeze"):
                guard !index.isGraphOutput(output), let unsqueezed = axes(inner.opType == "Unsqueeze" ? inner : outer) else { continue }
                // Both axis lists are relative to the higher-rank value: Unsqueeze's output, Squeeze's input.
                let xShape = shapes[x]
                let rank = xShape.map { $0.rank + (inner.opType == "Unsqueeze" ? unsqueezed.count : 0) }
                guard let expected = Self.normalized(unsqueezed, rank: rank) else { continue }
                let squeezeNode = inner.opType == "Squeeze" ? inner : outer
                let squeezed: Set<Int64>
                if let a = axes(squeezeNode) {
                    guard let s = Self.normalized(a, rank: rank) else { continue }
                    squeezed = s
                } else if opset >= 13 && squeezeNode.inputs.count > 1 && !squeezeNode.inputs[1].isEmpty {
                    continue  // run-time axes
                } else {
                    // No axes: every size-1 dim of the Squeeze's input, which must then be static.
                    let squeezeInput = inner.opType == "Squeeze" ? xShape : xShape.map { Self.unsqueezed($0, at: expected) }
                    guard let dims = squeezeInput?.fixedDims else { continue }
                    squeezed = Set(dims.indices.filter { dims[$0] == 1 }.map { Int64($0) })
                }
                guard squeezed == expected else { continue }
                patch.redirects[output] = x
                patch.remove(n)
            case ("Unsqueeze", "Unsqueeze"):
                // Unsqueeze(Unsqueeze(x, a1), a2) inserts a2 in the final positions and a1 in the others, in order.
                let xRank = shapes[x]?.rank
                guard let a1 = axes(inner), let a2 = axes(outer),
                      let first = Self.normalized(a1, rank: xRank.map { $0 + a1.count }),
                      let second = Self.normalized(a2, rank: xRank.map { $0 + a1.count + a2.count }) else { continue }
                var combined = second
                var kept: Int64 = 0, position: Int64 = 0
                let lastInner = (first.max() ?? -1)
                while kept <= lastInner {
                    if !second.contains(position) {
                        if first.contains(kept) { combined.insert(position) }
                        kept += 1
                    }
                    position += 1
                }
                let merged = combined.sorted()
                var replacement = outer
                replacement.inputs[0] = x
                if opset < 13 {
                    replacement = FusionSupport.setting("axes", .ints(merged), on: replacement)
                } else {
                    var name = output + "_axes"
                    while taken.contains(name) { name += "_" }
                    taken.insert(name)
                    guard let data = try? TensorData(int64s: merged, dims: [Int64(merged.count)]) else { continue }
                    patch.addedInitializers.append(OnnxcIR.Tensor(name: name, data: data))
                    replacement.inputs[1] = name
                }
                patch.replace(n, with: [replacement])
            case (_, "Flatten"):
                // Flatten splits its input's shape at `axis`; with that shape static the split is a constant.
                guard opset >= 5, let dims = shapes[middle]?.fixedDims else { continue }
                var axis: Int64 = 1
                if case .int(let a)? = outer.attribute("axis") { axis = a < 0 ? a + Int64(dims.count) : a }
                guard axis >= 0, axis <= Int64(dims.count),
                      let rows = Self.product(dims[..<Int(axis)]), let columns = Self.product(dims[Int(axis)...]) else { continue }
                var name = output + "_flatten_shape"
                while taken.contains(name) { name += "_" }
                taken.insert(name)
                guard let data = try? TensorData(int64s: [rows, columns], dims: [2]) else { continue }
                patch.addedInitializers.append(OnnxcIR.Tensor(name: name, data: data))
                patch.replace(n, with: [Node(name: outer.name, opType: "Reshape", inputs: [x, name], outputs: [output])])
            default:
                continue
            }
            touched.insert(n)
            if index.consumers(of: middle).count == 1, !index.isGraphOutput(middle) {
                patch.remove(i)
                touched.insert(i)
            }
        }
        return patch.isEmpty ? nil : patch
    }

    private static func product(_ dims: ArraySlice<Int64>) -> Int64? {
        var result: Int64 = 1
        for d in dims {
            let (p, overflow) = result.multipliedReportingOverflow(by: d)
            if overflow { return nil }
            result = p
        }
        return result
    }

    /// Axes made non-negative and checked distinct and in range; negative ones need the rank.
    private static func normalized(_ axes: [Int64], rank: Int?) -> Set<Int64>? {
        var result = Set<Int64>()
        for axis in axes {
            var a = axis
            if a < 0 {
                guard let rank else { return nil }
                a += Int64(rank)
            }
            if let rank, a >= Int64(rank) { return nil }
            guard a >= 0, result.insert(a).inserted else { return nil }
        }
        return result
    }

    /// `shape` with 1s inserted at the (non-negative) output positions `axes`.
    private static func unsqueezed(_ shape: Shape, at axes: Set<Int64>) -> Shape {
        var dims: [Dim] = []
        var source = shape.dims.makeIterator()
        for position in 0..<(shape.rank + axes.count) {
            if axes.contains(Int64(position)) {
                dims.append(.fixed(1))
            } else if let next = source.next() {
                dims.append(next)
            }
        }
        return Shape(dims)
    }
}
