import OnnxcCore

/// If, Loop and Scan. Bodies are inferred with the enclosing scope visible.
/// - If: the branches' output types are joined: equal dims are kept, differing dims become unknown, and
///   differing ranks an unknown rank.
/// - Loop/Scan: loop-carried values are inferred with their initial types; when the body changes a carried
///   type (a growing sequence), the joined type is used and the body inferred again, so a carried value only
///   keeps the dims that every iteration keeps. Loop scan outputs get a leading trip-count symbol; Scan
///   outputs the scanned axis's length.
enum ControlFlowRules {
    static let table: [String: InferenceRule] = ["If": ifRule, "Loop": loop, "Scan": scan]

    static func join(_ a: ValueType?, _ b: ValueType?) -> ValueType? {
        guard let a, let b else { return nil }
        guard let x = a.tensorType, let y = b.tensorType else { return a == b ? a : nil }
        let dtype = x.elementType == y.elementType ? x.elementType : .undefined
        guard let s = x.shape, let t = y.shape, s.rank == t.rank else { return .tensor(dtype, nil) }
        return .tensor(dtype, Shape(zip(s.dims, t.dims).map { $0 == $1 ? $0 : .unknown }))
    }

    static let ifRule: InferenceRule = { ctx in
        let thenTypes = ctx.inferSubgraph("then_branch", inputTypes: []) ?? []
        let elseTypes = ctx.inferSubgraph("else_branch", inputTypes: []) ?? []
        if !thenTypes.isEmpty, !elseTypes.isEmpty, thenTypes.count != elseTypes.count {
            throw InferenceError("If branches have \(thenTypes.count) and \(elseTypes.count) outputs")
        }
        if let known = ctx.known(0)?.fixedInts, known.count == 1 {
            // A constant condition picks one branch.
            return known[0] != 0 ? thenTypes : elseTypes
        }
        return (0..<ctx.outputCount).map { i in
            join(i < thenTypes.count ? thenTypes[i] : nil, i < elseTypes.count ? elseTypes[i] : nil)
        }
    }

    /// Infers a body twice at most: once with the initial carried types, and again with the join of the
    /// initial and the body's resulting types when those differ.
    static func inferCarried(_ ctx: InferenceContext, body name: String, prefix: [ValueType?], initial: [ValueType?],
                             suffix: [ValueType?], outputOffset: Int) -> [ValueType?] {
        let before = ctx.engine.diagnostics.count
        let first = ctx.inferSubgraph(name, inputTypes: prefix + initial + suffix) ?? []
        var joined = initial
        var changed = false
        for (i, type) in initial.enumerated() {
            let out = outputOffset + i < first.count ? first[outputOffset + i] : nil
            let j = join(type, out)
            if j != type { changed = true }
            joined[i] = j
        }
        guard changed else { return first }
        ctx.engine.diagnostics.removeSubrange(before...)
        return ctx.inferSubgraph(name, inputTypes: prefix + joined + suffix) ?? []
    }

    static let loop: InferenceRule = { ctx in
        let carriedCount = max(0, ctx.inputCount - 2)
        let initial = (0..<carriedCount).map { ctx.type(2 + $0) }
        let outputs = inferCarried(ctx, body: "body", prefix: [.tensor(.int64, Shape([])), .tensor(.bool, Shape([]))],
                                   initial: initial, suffix: [], outputOffset: 1)
        let trips = fixedTripCount(ctx).map(Dim.fixed) ?? ctx.newSymbol("trips")
        return (0..<ctx.outputCount).map { i in
            if i < carriedCount {
                let out = 1 + i < outputs.count ? outputs[1 + i] : nil
                return join(initial[i], out) ?? out
            }
            guard 1 + i < outputs.count, let t = outputs[1 + i]?.tensorType else { return nil }
            return InferenceSupport.tensor(t.elementType, t.shape.map { Shape([trips] + $0.dims) })
        }
    }

    /// The trip count when it is certain: `M` is known, the initial condition is absent or known true, and the
    /// body hands its condition input straight back (directly or through Identity), so it never stops early.
    static func fixedTripCount(_ ctx: InferenceContext) -> Int64? {
        guard let m = ctx.known(0)?.fixedInts, m.count == 1, m[0] >= 0, let body = ctx.graph("body"),
              body.inputs.count >= 2, let condOut = body.outputs.first?.name else { return nil }
        if ctx.hasInput(1) {
            guard let c = ctx.known(1)?.fixedInts, c == [1] else { return nil }
        }
        let condIn = body.inputs[1].name
        if condOut == condIn { return m[0] }
        if let producer = body.nodes.first(where: { $0.outputs.contains(condOut) }), producer.opType == "Identity",
           producer.inputs == [condIn] { return m[0] }
        return nil
    }

    static let scan: InferenceRule = { ctx in
        guard ctx.opset >= 9, let m = ctx.int("num_scan_inputs"), m >= 0, Int(clamping: m) <= ctx.inputCount else { return [] }
        let scanCount = Int(m)
        let stateCount = ctx.inputCount - scanCount
        let inputAxes = ctx.ints("scan_input_axes") ?? [Int64](repeating: 0, count: scanCount)
        guard inputAxes.count == scanCount else { throw InferenceError("scan_input_axes has \(inputAxes.count) entries for \(scanCount) scan inputs") }
        var length: Dim = .unknown
        var slices: [ValueType?] = []
        for j in 0..<scanCount {
            guard let t = ctx.tensor(stateCount + j), let s = t.shape else { slices.append(nil); continue }
            let axis = try ctx.axis(inputAxes[j], rank: s.rank, what: "scan input axis")
            length = try InferenceSupport.unify(length, s.dims[axis], "Scan inputs have different sequence lengths")
            var dims = s.dims
            dims.remove(at: axis)
            slices.append(.tensor(t.elementType, Shape(dims)))
        }
        let initial = (0..<stateCount).map { ctx.type($0) }
        let outputs = inferCarried(ctx, body: "body", prefix: [], initial: initial, suffix: slices, outputOffset: 0)
        let outputAxes = ctx.ints("scan_output_axes")
        return try (0..<ctx.outputCount).map { i in
            let out = i < outputs.count ? outputs[i] : nil
            if i < stateCount { return join(initial[i], out) ?? out }
            guard let t = out?.tensorType else { return nil }
            guard let s = t.shape else { return InferenceSupport.tensor(t.elementType, nil) }
            let k = i - stateCount
            let axisValue = outputAxes.flatMap { k < $0.count ? $0[k] : nil } ?? 0
            let axis = try ctx.axis(axisValue, rank: s.rank + 1, what: "scan output axis")
            var dims = s.dims
            dims.insert(length, at: axis)
            return InferenceSupport.tensor(t.elementType, Shape(dims))
        }
    }
}
