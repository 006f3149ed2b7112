import OnnxcCore

/// Reductions (axes as attribute or, from the opset that moved it, as input; keepdims;
/// noop_with_empty_axes), ArgMax/ArgMin and TopK.
enum ReductionRules {
    static let reduceOps: [String] = ["ReduceSum", "ReduceMean", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL1",
                                      "ReduceL2", "ReduceLogSum", "ReduceLogSumExp", "ReduceSumSquare"]

    static let table: [String: InferenceRule] = {
        var t: [String: InferenceRule] = [:]
        for op in reduceOps { t[op] = reduce }
        t["ArgMax"] = argReduce
        t["ArgMin"] = argReduce
        t["TopK"] = topK
        return t
    }()

    /// The opset from which `op` takes its axes as an input: 13 for ReduceSum, 18 for the others.
    static func axesAreInput(_ op: String, opset: Int64) -> Bool { opset >= (op == "ReduceSum" ? 13 : 18) }

    static let reduce: InferenceRule = { ctx in
        let dtype = ctx.dtype(0)
        let keep = ctx.int("keepdims", default: 1) != 0
        var axes: [Int64]?
        if axesAreInput(ctx.node.opType, opset: ctx.opset) {
            if ctx.hasInput(1) {
                axes = ctx.known(1)?.fixedInts
                if axes == nil {
                    // Axes not known: with keepdims the rank survives but which dims become 1 is unknown.
                    let shape = ctx.shape(0).map { Shape([Dim](repeating: .unknown, count: $0.rank)) }
                    return [InferenceSupport.tensor(dtype, keep ? shape : nil)]
                }
            } else {
                axes = []
            }
        } else {
            axes = ctx.ints("axes") ?? []
        }
        guard let shape = ctx.shape(0) else { return [InferenceSupport.tensor(dtype, nil)] }
        var chosen = try InferenceSupport.axes(axes ?? [], rank: shape.rank, ctx)
        if chosen.isEmpty {
            if ctx.int("noop_with_empty_axes", default: 0) != 0 {
                if let value = ctx.known(0) { ctx.setKnown(0, value) }
                return [ctx.type(0)]
            }
            chosen = Array(0..<shape.rank)
        }
        if ctx.node.opType == "ReduceProd", chosen == [0], shape.rank == 1, let ints = ctx.known(0)?.ints {
            // Shape chains compute element counts with ReduceProd over a shape vector.
            ctx.setKnown(0, KnownValue(dims: keep ? [1] : [], ints: [DimMath.product(ints)]))
        }
        var dims: [Dim] = []
        for (k, d) in shape.dims.enumerated() {
            if chosen.contains(k) { if keep { dims.append(.fixed(1)) } } else { dims.append(d) }
        }
        return [InferenceSupport.tensor(dtype, Shape(dims))]
    }

    static let argReduce: InferenceRule = { ctx in
        guard let shape = ctx.shape(0) else { return [InferenceSupport.tensor(.int64, nil)] }
        let axis = try ctx.axis(ctx.int("axis", default: 0), rank: shape.rank)
        var dims = shape.dims
        if ctx.int("keepdims", default: 1) != 0 { dims[axis] = .fixed(1) } else { dims.remove(at: axis) }
        return [InferenceSupport.tensor(.int64, Shape(dims))]
    }

    static let topK: InferenceRule = { ctx in
        let dtype = ctx.dtype(0)
        guard let shape = ctx.shape(0) else { return [InferenceSupport.tensor(dtype, nil), InferenceSupport.tensor(.int64, nil)] }
        let axis = try ctx.axis(ctx.int("axis", default: -1), rank: shape.rank)
        var k: Dim = .unknown
        if ctx.opset < 10 {
            if let v = ctx.int("k") { k = .fixed(v) }
        } else if let v = ctx.known(1)?.ints, v.count == 1 {
            k = v[0]
        }
        if let kv = k.fixedValue, let n = shape.dims[axis].fixedValue, kv > n {
            throw InferenceError("k = \(kv) is larger than the axis size \(n)")
        }
        var dims = shape.dims
        dims[axis] = k
        return [InferenceSupport.tensor(dtype, Shape(dims)), InferenceSupport.tensor(.int64, Shape(dims))]
    }
}
