import OnnxcCore

/// Gather/GatherElements/GatherND, the Scatter family, OneHot, NonZero and Compress. Gather on a known
/// vector folds (the `Shape → Gather` step of shape chains). Data-dependent sizes get fresh symbols.
enum IndexingRules {
    static let table: [String: InferenceRule] = [
        "Gather": gather,
        "GatherElements": { ctx in [InferenceSupport.tensor(ctx.dtype(0), ctx.shape(1))] },
        "GatherND": gatherND,
        "Scatter": scatter, "ScatterElements": scatter, "ScatterND": scatter,
        "OneHot": oneHot,
        "NonZero": { ctx in [InferenceSupport.tensor(.int64, ctx.rank(0).map { Shape([.fixed(Int64($0)), ctx.newSymbol("nonzero")]) })] },
        "Compress": compress,
    ]

    static let gather: InferenceRule = { ctx in
        let dtype = ctx.dtype(0)
        guard let data = ctx.shape(0), let indices = ctx.shape(1) else { return [InferenceSupport.tensor(dtype, nil)] }
        guard data.rank >= 1 else { throw InferenceError("Gather data must have rank 1 or more") }
        let axis = try ctx.axis(ctx.int("axis", default: 0), rank: data.rank)
        let dims = Array(data.dims[..<axis]) + indices.dims + Array(data.dims[(axis + 1)...])
        if let n = data.dims[axis].fixedValue, n >= 0, let idx = ctx.known(1)?.fixedInts,
           let bad = idx.first(where: { $0 < -n || $0 >= n }) {
            throw InferenceError("Gather index \(bad) is out of range for axis size \(n)")
        }
        if data.rank == 1, let values = ctx.known(0)?.ints, let idx = ctx.known(1) {
            let n = Int64(values.count)
            var picked: [Dim] = []
            for i in idx.fixedInts ?? [] where i >= -n && i < n { picked.append(values[Int(i < 0 ? i + n : i)]) }
            if picked.count == idx.count { ctx.setKnown(0, KnownValue(dims: idx.dims, ints: picked)) }
        }
        return [InferenceSupport.tensor(dtype, Shape(dims))]
    }

    static let gatherND: InferenceRule = { ctx in
        let dtype = ctx.dtype(0)
        guard let data = ctx.shape(0), let indices = ctx.shape(1), indices.rank >= 1,
              let last = indices.dims.last?.fixedValue else { return [InferenceSupport.tensor(dtype, nil)] }
        let b = Int(clamping: ctx.int("batch_dims", default: 0))
        guard b >= 0, b <= data.rank, last >= 1, last <= Int64(data.rank - b) else {
            throw InferenceError("GatherND indices \(indices) (batch_dims \(b)) do not fit data \(data)")
        }
        let dims = Array(indices.dims.dropLast()) + Array(data.dims[(b + Int(last))...])
        return [InferenceSupport.tensor(dtype, Shape(dims))]
    }

    static let scatter: InferenceRule = { ctx in
        if let d = ctx.rank(0), let i = ctx.rank(1), ctx.node.opType != "ScatterND", d != i {
            throw InferenceError("\(ctx.node.opType) indices rank \(i) differs from data rank \(d)")
        }
        return [ctx.type(0)]
    }

    static let oneHot: InferenceRule = { ctx in
        let dtype = ctx.dtype(2)
        guard let indices = ctx.shape(0) else { return [InferenceSupport.tensor(dtype, nil)] }
        var depth: Dim = .unknown
        if let v = ctx.known(1) {
            if let i = v.ints?.first { depth = i } else if let f = v.doubles?.first, f.isFinite, abs(f) < 1e15 { depth = .fixed(Int64(f)) }
        }
        let axisValue = ctx.int("axis", default: -1)
        let r = Int64(indices.rank + 1)
        guard axisValue >= -r, axisValue < r else { throw InferenceError("axis \(axisValue) is out of range for rank \(r)") }
        var dims = indices.dims
        dims.insert(depth, at: Int(axisValue < 0 ? axisValue + r : axisValue))
        return [InferenceSupport.tensor(dtype, Shape(dims))]
    }

    static let compress: InferenceRule = { ctx in
        let dtype = ctx.dtype(0)
        guard let s = ctx.shape(0) else { return [InferenceSupport.tensor(dtype, nil)] }
        guard let axisValue = ctx.int("axis") else { return [InferenceSupport.tensor(dtype, Shape([ctx.newSymbol("compress")]))] }
        let axis = try ctx.axis(axisValue, rank: s.rank)
        var dims = s.dims
        dims[axis] = ctx.newSymbol("compress")
        return [InferenceSupport.tensor(dtype, Shape(dims))]
    }
}
