import OnnxcCore
public import OnnxcIR
import OnnxcLowering
import OnnxcRuntime

private typealias Tensor = OnnxcIR.Tensor

/// Evaluates nodes whose inputs are all constants, with the runtime's own kernels, and replaces them by
/// initializers; turns Constant nodes into initializers; folds Shape/Size of values whose shapes are static.
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
        guard let indices = indicesTensor.data.integers() else { return nil }
        var values: [Int64] = []
        for raw in indices {
            let index = raw < 0 ? raw + rank : raw
            guard index >= 0, index < rank, let dim = shape.dims[Int(index)].fixedValue else { return nil }
            values.append(dim)
        }
        guard let data = try? TensorData(int64s: values, dims: indicesTensor.dims) else { return nil }
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
        let dims: [Int64] = node.opType == "Size" ? [] : [Int64(values.count)]
        guard let data = try? TensorData(int64s: values, dims: dims) else { return nil }
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
                      let data = Lowering.tensorData(value) else { return nil }
                folded.append(Tensor(name: name, data: data))
            }
            return folded
        } catch {
            return nil
        }
    }
}
