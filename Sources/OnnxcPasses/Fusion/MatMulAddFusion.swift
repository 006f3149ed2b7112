import OnnxcCore
public import OnnxcIR

/// Turns MatMul of a 2-D value by a constant matrix, followed by a constant bias Add, into one Gemm.
///
/// Matches: MatMul(x, W) with x declared 2-D [M, K] and W a constant [K, N] of float, double or float16, whose
/// only reader is Add (either operand order) of a constant bias of the same type shaped [N], [1, N], [1] or
/// a scalar. Produces: Gemm(x, W, bias) writing the Add's output. Preconditions: the model imports opset 7 or
/// later (Gemm with unidirectional broadcasting of C, no `broadcast` attribute); the MatMul output has no
/// other reader and is not a graph output. A higher-rank x is left alone: Gemm is strictly 2-D, and reshaping
/// around it would cost more than it saves. Numerics: Gemm computes x·W + C as MatMul then Add did; the
/// only difference is summation order inside the kernel. Tested by: MatMulAddFusionTests.
public struct MatMulAddFusion: Pass {
    public let id = "fuse-matmul-add"
    public let summary = "rewrite 2-D MatMul by a constant matrix plus a constant bias as Gemm"

    public init() {}

    public func run(on graph: Graph, context: PassContext) -> GraphPatch? {
        guard context.opset(for: "") >= 7 else { return nil }
        let index = GraphIndex(graph)
        var patch = GraphPatch()
        for (n, matmul) in graph.nodes.enumerated() where matmul.domain.isEmpty && matmul.opType == "MatMul" {
            guard matmul.inputs.count == 2, matmul.outputs.count == 1, let output = matmul.outputs.first,
                  let (a, slot) = FusionSupport.soleConsumer(of: output, index),
                  patch.replacements[n] == nil, patch.replacements[a] == nil,
                  let weight = FusionSupport.constant(matmul.inputs[1], in: graph), weight.dims.count == 2,
                  FusionSupport.floatTypes.contains(weight.dtype),
                  let x = graph.declaredType(of: matmul.inputs[0])?.tensorType, x.shape?.rank == 2, x.elementType == weight.dtype else { continue }
            let add = graph.nodes[a]
            guard add.domain.isEmpty, add.opType == "Add", add.inputs.count == 2, add.outputs.count == 1,
                  let bias = FusionSupport.constant(add.inputs[1 - slot], in: graph), bias.dtype == weight.dtype,
                  Self.isRowBias(bias.dims, columns: weight.dims[1]) else { continue }
            var gemm = Node(name: add.name.isEmpty ? matmul.name : add.name, opType: "Gemm",
                            inputs: [matmul.inputs[0], matmul.inputs[1], bias.name], outputs: add.outputs)
            gemm.metadataProps = matmul.metadataProps
            patch.replace(n, with: [gemm])
            patch.remove(a)
        }
        return patch.isEmpty ? nil : patch
    }

    /// A bias that Gemm's C broadcasts exactly as Add did over [M, N] without changing the output shape.
    static func isRowBias(_ dims: [Int64], columns: Int64) -> Bool {
        switch dims.count {
        case 0: true
        case 1: dims[0] == columns || dims[0] == 1
        case 2: dims[0] == 1 && (dims[1] == columns || dims[1] == 1)
        default: false
        }
    }
}
