import OnnxcCore
public import OnnxcIR
import OnnxcLowering
import OnnxcRuntime

private typealias Tensor = OnnxcIR.Tensor

/// Evaluates nodes whose inputs are all constants, with the runtime's own kernels, and replaces them by
/// initializers; turns Constant nodes into initializers; folds Shape/Size of values whose shapes are static, and
/// Gather/Slice of a Shape whose picked dims are static.
///
/// Matches: a deterministic default-domain node without subgraphs whose inputs are initializers (not
/// overridable graph inputs); Shape and Size whose input has a fully known declared shape. Produces: the
/// outputs as initializers (the node goes). Preconditions: every output is a tensor no larger than
/// `PassOptions.constantFoldingByteLimit`; a kernel exists; evaluation succeeds (a failing fold is left for
/// the run to report). Numerics: identical to running the node. Tested by: ConstantFoldingTests.
public struct ConstantFolding: Pass {
    public let id = "constant-folding"
    public let summary = "evaluate constant subgraphs and static Shape/Size with the runtime's kernels"

    public init() {}

    public func run(on graph: Graph, context: PassContext) -> GraphPatch? {
        let interface = Set(graph.inputs.map(\.name))
        let outputs = Set(graph.outputs.map(\.name))
        var constants: [String: Tensor] = [:]
        for tensor in graph.initializers where !interface.contains(tensor.name) { constants[tensor.name] = tensor }
        var patch = GraphPatch()
        for (n, node) in graph.nodes.enumerated() {
            guard node.domain.isEmpty, node.subgraphs.isEmpty, !node.outputs.isEmpty,
                  !CommonSubexpressionElimination.nondeterministic.contains(node.opType),
                  !node.outputs.contains(where: { outputs.contains($0) }) else { continue }
            let folded: [Tensor]?
            if let shape = staticShapeFold(node, graph: graph) {
                folded = shape
            } else if let picked = gatherOfShapeFold(node, graph: graph, constants: constants) {
                folded = picked
            } else if let sliced = sliceOfShapeFold(node, graph: graph, constants: constants) {
                folded = sliced
            } else if node.inputs.allSatisfy({ $0.isEmpty || constants[$0] != nil }) {
                folded = evaluate(node, constants: constants, context: context)
            } else {
                folded = nil
            }
            guard let folded else { continue }
            for tensor in folded { constants[tensor.name] = tensor }
            patch.addedInitializers += folded
            patch.remove(n)
        }
        return patch.isEmpty ? nil : patch
    }

    /// Gather(Shape(x), constant indices) when the picked dims of x are static, even if others are symbolic:
    /// exporters read one dim (`x.shape[2]`) of a tensor whose batch is dynamic, and that dim is a constant.
    private func gatherOfShapeFold(_ node: Node, graph: Graph, constants: [String: Tensor]) -> [Tensor]? {
        guard node.opType == "Gather", node.inputs.count == 2, let output = node.outputs.first,
              let indicesTensor = constants[node.inputs[1]], indicesTensor.dtype == .int64 || indicesTensor.dtype == .int32,
              let shapeNode = graph.nodes.first(where: { $0.opType == "Shape" && $0.domain.isEmpty && $0.outputs.first == node.inputs[0] }),
              shapeNode.attribute("start") == nil, shapeNode.attribute("end") == nil,
              let source = shapeNode.inputs.first, let shape = graph.declaredType(of: source)?.tensorType?.shape else { return nil }
        if case .int(let axis) = node.attribute("axis"), axis != 0 { return nil }
        let rank = Int64(shape.rank)
        var values: [Int64] = []
        for i in 0..<indicesTensor.data.elementCount {
            guard let raw = indicesTensor.data.numericValue(at: i) else { return nil }
            let index = Int64(raw) < 0 ? Int64(raw) + rank : Int64(raw)
            guard index >= 0, index < rank, let dim = shape.dims[Int(index)].fixedValue else { return nil }
            values.append(dim)
        }
        var bytes: [UInt8] = []
        for v in values { withUnsafeBytes(of: v.littleEndian) { bytes.append(contentsOf: $0) } }
        guard let data = try? TensorData(dtype: .int64, dims: indicesTensor.dims, payload: .bytes(ByteSlice(copying: bytes))) else { return nil }
        return [Tensor(name: output, data: data)]
    }

    /// Slice(Shape(x), constant starts, ends[, axes, steps]) when the sliced dims of x are static: torch's
    /// scaled_dot_product_attention export computes its scale from `q.shape[-1:]` of a batch-dynamic q.
    private func sliceOfShapeFold(_ node: Node, graph: Graph, constants: [String: Tensor]) -> [Tensor]? {
        guard node.opType == "Slice", node.inputs.count >= 3, let output = node.outputs.first,
              let shapeNode = graph.nodes.first(where: { $0.opType == "Shape" && $0.domain.isEmpty && $0.outputs.first == node.inputs[0] }),
              shapeNode.attribute("start") == nil, shapeNode.attribute("end") == nil,
              let source = shapeNode.inputs.first, let shape = graph.declaredType(of: source)?.tensorType?.shape else { return nil }
        func scalar(_ slot: Int, default value: Int64) -> Int64? {
            guard slot < node.inputs.count, !node.inputs[slot].isEmpty else { return value }
            guard let tensor = constants[node.inputs[slot]], tensor.data.elementCount == 1,
                  let raw = tensor.data.numericValue(at: 0), let exact = Int64(exactly: raw.rounded()) ?? (raw > 0 ? Int64.max : nil) else { return nil }
            return exact
        }
        // The input is 1-D, so axes can only name axis 0 and there is one start, end and step.
        let rank = Int64(shape.rank)
        guard let start = scalar(1, default: 0), let end = scalar(2, default: rank), let axis = scalar(3, default: 0),
              axis == 0 || axis == -1, let step = scalar(4, default: 1), step != 0 else { return nil }
        func clamped(_ v: Int64, _ low: Int64, _ high: Int64) -> Int64 { max(low, min(high, v < 0 ? v &+ rank : v)) }
        var indices: [Int] = []
        if step > 0 {
            var i = clamped(start, 0, rank)
            while i < clamped(end, 0, rank) { indices.append(Int(i)); i += step }
        } else if rank > 0 {
            var i = clamped(start, 0, rank - 1)
            while i > clamped(end, -1, rank - 1) { indices.append(Int(i)); i += step }
        }
        var bytes: [UInt8] = []
        for i in indices {
            guard let dim = shape.dims[i].fixedValue else { return nil }
            withUnsafeBytes(of: dim.littleEndian) { bytes.append(contentsOf: $0) }
        }
        guard let data = try? TensorData(dtype: .int64, dims: [Int64(indices.count)], payload: .bytes(ByteSlice(copying: bytes))) else { return nil }
        return [Tensor(name: output, data: data)]
    }

    /// Shape (with start/end) and Size of a value whose declared or inferred shape is fully known.
    private func staticShapeFold(_ node: Node, graph: Graph) -> [Tensor]? {
        guard node.opType == "Shape" || node.opType == "Size", let input = node.inputs.first,
              let shape = graph.declaredType(of: input)?.tensorType?.shape, let output = node.outputs.first else { return nil }
        let values: [Int64]
        if node.opType == "Size" {
            guard let dims = shape.fixedDims, let count = CheckedSize.elementCount(dims) else { return nil }
            values = [Int64(count)]
        } else {
            // Only the selected dims must be static: Shape(start=1) of [batch, 4] is [4].
            let rank = Int64(shape.rank)
            func clamp(_ v: Int64) -> Int { Int(max(0, min(rank, v < 0 ? v + rank : v))) }
            var start = 0, end = shape.rank
            if case .int(let s) = node.attribute("start") { start = clamp(s) }
            if case .int(let e) = node.attribute("end") { end = clamp(e) }
            guard let selected = Shape(start < end ? Array(shape.dims[start..<end]) : []).fixedDims else { return nil }
            values = selected
        }
        var bytes: [UInt8] = []
        for v in values { withUnsafeBytes(of: v.littleEndian) { bytes.append(contentsOf: $0) } }
        let dims: [Int64] = node.opType == "Size" ? [] : [Int64(values.count)]
        guard let data = try? TensorData(dtype: .int64, dims: dims, payload: .bytes(ByteSlice(copying: bytes))) else { return nil }
        return [Tensor(name: output, data: data)]
    }

    /// Runs one node on constant inputs through the runtime; nil when it cannot or should not be folded.
    private func evaluate(_ node: Node, constants: [String: Tensor], context: PassContext) -> [Tensor]? {
        guard KernelRegistry.kernel(domain: node.domain, opType: node.opType) != nil else { return nil }
        var inputs = Set<String>()
        var initializers: [Tensor] = []
        for name in node.inputs where !name.isEmpty && inputs.insert(name).inserted {
            guard let tensor = constants[name] else { return nil }
            initializers.append(tensor)
        }
        let graph = Graph(name: "fold", outputs: node.outputs.filter { !$0.isEmpty }.map { ValueInfo(name: $0, type: nil) },
                          initializers: initializers, nodes: [node])
        let opsets = context.opsets.map { OpsetImport(domain: $0.key, version: $0.value) }
        do {
            let executor = try Executor(graph: try Lowering.lower(Model(opsetImports: opsets, graph: graph)))
            let results = try executor.run([:])
            var folded: [Tensor] = []
            for name in node.outputs where !name.isEmpty {
                guard case .tensor(let value)? = results[name], value.byteCount <= context.options.constantFoldingByteLimit,
                      let data = irData(value) else { return nil }
                folded.append(Tensor(name: name, data: data))
            }
            return folded
        } catch {
            return nil
        }
    }

    private func irData(_ tensor: OnnxcRuntime.Tensor) -> TensorData? {
        let dims = tensor.shape.map(Int64.init)
        if tensor.dtype == .string {
            return try? TensorData(dtype: .string, dims: dims, payload: .strings((tensor.strings ?? []).map { Array($0.utf8) }))
        }
        let bytes = tensor.withBytes { Array($0) }
        return try? TensorData(dtype: tensor.dtype, dims: dims, payload: .bytes(ByteSlice(copying: bytes)))
    }
}
