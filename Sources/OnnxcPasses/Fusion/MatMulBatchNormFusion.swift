import OnnxcCore
public import OnnxcIR

/// Folds inference BatchNormalization after a 2-D MatMul by a constant matrix into a Gemm.
///
/// Matches: MatMul(x, W) with x declared 2-D [M, K] and W a constant [K, N] of float, double or float16, whose
/// only reader is an inference BatchNormalization with N-element constant parameters. BatchNormalization
/// normalizes axis 1, which for a 2-D [M, N] input is exactly the MatMul's column axis; for higher ranks it
/// would not be, so they are left alone. Produces: Gemm(x, W', B') writing BN's output with
/// W'[k, n] = W[k, n]·s[n] and B' = β − mean·s, s = γ/√(var+ε). Preconditions: opset 7 or later (Gemm with
/// broadcast C); BN not in training mode, mean/var outputs unused; the MatMul output has no other reader and
/// is not a graph output. Numerics: recomputed in double, rounded once to W's type. Tested by:
/// MatMulBatchNormFusionTests.
public struct MatMulBatchNormFusion: Pass {
    public let id = "fuse-matmul-bn"
    public let summary = "fold inference BatchNormalization after a 2-D MatMul into a Gemm"

    public init() {}

    public func run(on graph: Graph, context: PassContext) -> GraphPatch? {
        guard context.opset(for: "") >= 7 else { return nil }
        let index = GraphIndex(graph)
        var taken = FusionSupport.takenNames(graph)
        var patch = GraphPatch()
        for (n, matmul) in graph.nodes.enumerated() where matmul.domain.isEmpty && matmul.opType == "MatMul" {
            guard matmul.inputs.count == 2, matmul.outputs.count == 1, let output = matmul.outputs.first,
                  let (b, slot) = FusionSupport.soleConsumer(of: output, index), slot == 0,
                  patch.replacements[n] == nil, patch.replacements[b] == nil,
                  let weight = FusionSupport.constant(matmul.inputs[1], in: graph), weight.dims.count == 2,
                  let w = FusionSupport.doubles(weight),
                  let x = graph.declaredType(of: matmul.inputs[0])?.tensorType, x.shape?.rank == 2, x.elementType == weight.dtype else { continue }
            let bn = graph.nodes[b]
            let columns = Int(weight.dims[1])
            guard let affine = FusionSupport.batchNormAffine(bn, channels: columns, in: graph, index),
                  let bnOutput = bn.outputs.first, !bnOutput.isEmpty, columns > 0 else { continue }
            let scaled = w.indices.map { w[$0] * affine.scale[$0 % columns] }
            let wName = FusionSupport.freshName(weight.name + "_bn", &taken)
            let bName = FusionSupport.freshName((bn.name.isEmpty ? bnOutput : bn.name) + "_bias", &taken)
            guard let newWeight = FusionSupport.tensor(wName, weight.dtype, weight.dims, scaled),
                  let newBias = FusionSupport.tensor(bName, weight.dtype, [Int64(columns)], affine.shift) else { continue }
            let gemm = Node(name: bn.name.isEmpty ? matmul.name : bn.name, opType: "Gemm",
                            inputs: [matmul.inputs[0], wName, bName], outputs: [bnOutput])
            patch.replace(n, with: [gemm])
            patch.remove(b)
            patch.addedInitializers += [newWeight, newBias]
        }
        return patch.isEmpty ? nil : patch
    }
}
