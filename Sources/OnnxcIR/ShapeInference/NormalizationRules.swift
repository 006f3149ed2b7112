import OnnxcCore

/// Normalizations: the output has the input's type; BatchNormalization's training outputs are [C];
/// LayerNormalization's optional Mean and InvStdDev keep the leading dims and set the normalized ones to 1.
enum NormalizationRules {
    static let table: [String: InferenceRule] = [
        "BatchNormalization": { ctx in
            let channel = ctx.shape(1)
            return (0..<ctx.outputCount).map { i in i == 0 ? ctx.type(0) : InferenceSupport.tensor(ctx.dtype(1) ?? ctx.dtype(0), channel) }
        },
        "InstanceNormalization": sameAsInput, "GroupNormalization": sameAsInput, "LRN": sameAsInput,
        "MeanVarianceNormalization": sameAsInput, "LpNormalization": sameAsInput,
        "LayerNormalization": layerNorm,
    ]

    static let sameAsInput: InferenceRule = { ctx in [ctx.type(0)] }

    static let layerNorm: InferenceRule = { ctx in
        let stash = DType(rawValue: Int32(truncatingIfNeeded: ctx.int("stash_type", default: 1))) ?? .float
        guard let s = ctx.shape(0) else {
            return [ctx.type(0)] + (1..<max(ctx.outputCount, 1)).map { _ in InferenceSupport.tensor(stash, nil) }
        }
        let axis = try ctx.axis(ctx.int("axis", default: -1), rank: s.rank)
        if let scale = ctx.shape(1), scale.rank > s.rank - axis {
            throw InferenceError("LayerNormalization scale \(scale) has more dims than the normalized part of \(s)")
        }
        let stats = Shape(Array(s.dims[..<axis]) + [Dim](repeating: .fixed(1), count: s.rank - axis))
        return [ctx.type(0)] + (1..<max(ctx.outputCount, 1)).map { _ in InferenceSupport.tensor(stash, stats) }
    }
}
