import OnnxcCore

/// Sequences and optionals (element types only; a sequence's element shape is kept when every element
/// agrees), string ops, and the remaining vision and detection ops with simple shape rules.
enum SequenceAndMiscRules {
    static let table: [String: InferenceRule] = [
        "SequenceConstruct": { ctx in
            let elements = (0..<ctx.inputCount).map { ctx.type($0) }
            let joined = elements.dropFirst().reduce(elements.first ?? nil) { ControlFlowRules.join($0, $1) }
            return [ValueType(.sequence(joined))]
        },
        "SequenceEmpty": { ctx in
            let dtype = DType(rawValue: Int32(truncatingIfNeeded: ctx.int("dtype", default: 1))) ?? .float
            return [ValueType(.sequence(.tensor(dtype, nil)))]
        },
        "SequenceAt": { ctx in [element(ctx.type(0))] },
        "SequenceInsert": { ctx in
            guard let seq = ctx.type(0) else { return [nil] }
            return [ValueType(.sequence(ControlFlowRules.join(element(seq), ctx.type(1))))]
        },
        "SequenceErase": { ctx in [ctx.type(0)] },
        "SequenceLength": { _ in [.tensor(.int64, Shape([]))] },
        "SplitToSequence": { ctx in
            // Element shapes depend on the split; only the element type is kept.
            [ValueType(.sequence(InferenceSupport.tensor(ctx.dtype(0), nil)))]
        },
        "ConcatFromSequence": { ctx in [InferenceSupport.tensor(element(ctx.type(0))?.tensorType?.elementType, nil)] },
        "Optional": { ctx in
            if case .typeProto(let t)? = ctx.node.attribute("type") { return [ValueType(.optional(t))] }
            return [ValueType(.optional(ctx.type(0)))]
        },
        "OptionalHasElement": { _ in [.tensor(.bool, Shape([]))] },
        "OptionalGetElement": { ctx in
            guard let t = ctx.type(0) else { return [nil] }
            if case .optional(let inner) = t.kind { return [inner] }
            return [t]
        },
        "StringConcat": { ctx in [InferenceSupport.tensor(.string, try InferenceSupport.broadcastInputs(ctx, 0..<2))] },
        "RegexFullMatch": { ctx in [InferenceSupport.tensor(.bool, ctx.shape(0))] },
        "StringNormalizer": { ctx in [InferenceSupport.tensor(.string, nil)] },
        "Det": { ctx in
            guard let s = try ctx.requireRank(0, atLeast: 2) else { return [InferenceSupport.tensor(ctx.dtype(0), nil)] }
            return [InferenceSupport.tensor(ctx.dtype(0), Shape(Array(s.dims.dropLast(2))))]
        },
        "NonMaxSuppression": { ctx in [.tensor(.int64, Shape([ctx.newSymbol("boxes"), .fixed(3)]))] },
        "Unique": { ctx in
            let n = ctx.newSymbol("unique")
            var values: Shape?
            if let s = ctx.shape(0) {
                if let axis = ctx.int("axis") {
                    var dims = s.dims
                    dims[try ctx.axis(axis, rank: s.rank)] = n
                    values = Shape(dims)
                } else {
                    values = Shape([n])
                }
            }
            let indices = ValueType.tensor(.int64, Shape([n]))
            // inverse_indices has one entry per input element, or per slice along `axis`.
            var inverseLength = Dim.unknown
            if let s = ctx.shape(0) {
                if let axis = ctx.int("axis") { inverseLength = s.dims[try ctx.axis(axis, rank: s.rank)] } else { inverseLength = DimMath.product(s.dims) }
            }
            let inverse = ValueType.tensor(.int64, Shape([inverseLength]))
            return [InferenceSupport.tensor(ctx.dtype(0), values), indices, inverse, indices]
        },
        "GridSample": { ctx in
            // [N, C, *grid spatial dims]: the grid is [N, *out, rank-2].
            guard let x = ctx.shape(0), let grid = ctx.shape(1), grid.rank >= 3 else { return [InferenceSupport.tensor(ctx.dtype(0), nil)] }
            return [InferenceSupport.tensor(ctx.dtype(0), Shape([x.dims.first ?? .unknown, x.rank > 1 ? x.dims[1] : .unknown] + grid.dims.dropFirst().dropLast()))]
        },
        "RoiAlign": { ctx in
            let rois = ctx.shape(1)?.dims.first ?? .unknown
            let channels = ctx.shape(0).flatMap { $0.rank > 1 ? $0.dims[1] : nil } ?? .unknown
            return [InferenceSupport.tensor(ctx.dtype(0), Shape([rois, channels, .fixed(ctx.int("output_height", default: 1)),
                                                                 .fixed(ctx.int("output_width", default: 1))]))]
        },
        "MaxUnpool": { ctx in
            if ctx.hasInput(2) {
                // An explicit output_shape decides; when it is not known only the leading dims are.
                if let target = ctx.known(2)?.ints { return [InferenceSupport.tensor(ctx.dtype(0), Shape(target))] }
                return [InferenceSupport.tensor(ctx.dtype(0), ctx.shape(0).map { Shape(Array($0.dims.prefix(2)) + [Dim](repeating: .unknown, count: max(0, $0.rank - 2))) })]
            }
            guard let x = try ctx.requireRank(0, atLeast: 3), let kernel = ctx.ints("kernel_shape") else {
                return [InferenceSupport.tensor(ctx.dtype(0), nil)]
            }
            let n = x.rank - 2
            let strides = ctx.ints("strides") ?? [Int64](repeating: 1, count: n)
            let pads = ctx.ints("pads") ?? [Int64](repeating: 0, count: 2 * n)
            guard kernel.count == n, strides.count == n, pads.count == 2 * n else { throw InferenceError("MaxUnpool attributes do not match \(n) spatial dims") }
            // (in - 1)·stride + kernel - pads
            let spatial = (0..<n).map { i in
                DimMath.sub(DimMath.sub(DimMath.add(DimMath.mul(DimMath.add(x.dims[2 + i], -1), strides[i]), kernel[i]), .fixed(pads[i])), .fixed(pads[n + i]))
            }
            return [InferenceSupport.tensor(ctx.dtype(0), Shape(Array(x.dims.prefix(2)) + spatial))]
        },
        "CenterCropPad": { ctx in
            guard let s = ctx.shape(0), let target = ctx.known(1)?.ints else {
                return [InferenceSupport.tensor(ctx.dtype(0), ctx.shape(0).map { Shape([Dim](repeating: .unknown, count: $0.rank)) })]
            }
            let axes = try InferenceSupport.axes(ctx.ints("axes") ?? (0..<s.rank).map(Int64.init), rank: s.rank, ctx)
            guard axes.count == target.count else { throw InferenceError("CenterCropPad shape has \(target.count) entries for \(axes.count) axes") }
            var dims = s.dims
            for (j, a) in axes.enumerated() { dims[a] = target[j] }
            return [InferenceSupport.tensor(ctx.dtype(0), Shape(dims))]
        },
        "NegativeLogLikelihoodLoss": loss,
        "SoftmaxCrossEntropyLoss": loss,
        "AffineGrid": { ctx in
            // size is [N, C, (D,) H, W]; the grid is [N, (D,) H, W, rank-2].
            guard let size = ctx.known(1)?.ints, size.count >= 4 else { return [InferenceSupport.tensor(ctx.dtype(0), nil)] }
            return [InferenceSupport.tensor(ctx.dtype(0), Shape([size[0]] + size.dropFirst(2) + [.fixed(Int64(size.count - 2))]))]
        },
    ]

    /// The losses: with reduction `none` the loss has the target's shape ([N, d1, …]), otherwise it is a
    /// scalar; SoftmaxCrossEntropyLoss's optional log_prob has the scores' shape.
    static let loss: InferenceRule = { ctx in
        let dtype = ctx.dtype(0)
        let reduction = ctx.string("reduction") ?? "mean"
        let lossShape: Shape? = reduction == "none" ? ctx.shape(1) : Shape([])
        if let scores = ctx.shape(0), let target = ctx.shape(1) {
            guard scores.rank >= 2, target.rank == scores.rank - 1 else {
                throw InferenceError("\(ctx.node.opType) target \(target) does not match scores \(scores)")
            }
            _ = try InferenceSupport.unify(scores.dims[0], target.dims[0], "\(ctx.node.opType) batch sizes differ")
        }
        return [InferenceSupport.tensor(dtype, lossShape), ctx.type(0)]
    }

    static func element(_ type: ValueType?) -> ValueType? {
        guard let type else { return nil }
        if case .sequence(let inner) = type.kind { return inner }
        return nil
    }
}
