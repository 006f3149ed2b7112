import OnnxcCore

/// Ops that compute or rearrange shapes: Shape, Size, Reshape, Flatten, Transpose, Squeeze/Unsqueeze, Concat,
/// Split, Slice, Expand, Tile, Pad, Range, ConstantOfShape, Constant, Resize/Upsample and
/// DepthToSpace/SpaceToDepth. The shape-computing ones also fold their known values.
enum ShapeRules {
    static let table: [String: InferenceRule] = [
        "Shape": shapeOp, "Size": size, "Reshape": reshape, "Flatten": flatten, "Transpose": transpose,
        "Squeeze": squeeze, "Unsqueeze": unsqueeze, "Concat": concat, "Split": split, "Slice": slice,
        "Expand": expand, "Tile": tile, "Pad": pad, "Range": range, "ConstantOfShape": constantOfShape,
        "Constant": constant, "Resize": resize, "Upsample": resize, "DepthToSpace": depthToSpace,
        "SpaceToDepth": spaceToDepth,
        "BlackmanWindow": window, "HannWindow": window, "HammingWindow": window,
    ]

    /// The window generators: a 1-D tensor of `size` elements, typed by `output_datatype` (default float).
    static let window: InferenceRule = { ctx in
        let dtype = DType(rawValue: Int32(truncatingIfNeeded: ctx.int("output_datatype", default: 1))) ?? .float
        let size = ctx.known(0)?.ints.flatMap { $0.count == 1 ? $0[0] : nil } ?? .unknown
        return [InferenceSupport.tensor(dtype, Shape([size]))]
    }

    /// Start/end attributes (opset 15) clamp like Python slices.
    static let shapeOp: InferenceRule = { ctx in
        guard let s = ctx.shape(0) else { return [InferenceSupport.tensor(.int64, Shape([.unknown]))] }
        let r = Int64(s.rank)
        func clamp(_ v: Int64) -> Int { Int(max(0, min(r, v < 0 ? v + r : v))) }
        let start = clamp(ctx.int("start", default: 0)), end = clamp(ctx.int("end", default: r))
        let dims = start < end ? Array(s.dims[start..<end]) : []
        ctx.setKnown(0, .vector(dims))
        return [InferenceSupport.tensor(.int64, Shape([.fixed(Int64(dims.count))]))]
    }

    static let size: InferenceRule = { ctx in
        if let s = ctx.shape(0) { ctx.setKnown(0, .scalar(DimMath.product(s.dims))) }
        return [InferenceSupport.tensor(.int64, Shape([]))]
    }

    /// 0 copies the input dim (unless allowzero), -1 takes what is left of the element count.
    static let reshape: InferenceRule = { ctx in
        let dtype = ctx.dtype(0)
        var target: [Dim]?
        if ctx.opset < 5 { target = ctx.ints("shape").map { $0.map(Dim.fixed) } } else { target = ctx.known(1)?.ints }
        guard var dims = target else {
            // Only the rank is known, from the length of the shape input.
            if let n = ctx.shape(1)?.dims.first?.fixedValue, ctx.shape(1)?.rank == 1, n >= 0, n <= 64 {
                return [InferenceSupport.tensor(dtype, Shape([Dim](repeating: .unknown, count: Int(n))))]
            }
            return [InferenceSupport.tensor(dtype, nil)]
        }
        let input = ctx.shape(0)
        let allowZero = ctx.int("allowzero", default: 0) != 0
        var inferIndex: Int?
        for k in dims.indices {
            switch dims[k] {
            case .fixed(0) where !allowZero:
                guard let input, k < input.rank else { dims[k] = .unknown; continue }
                dims[k] = input.dims[k]
            case .fixed(-1):
                if inferIndex != nil { throw InferenceError("Reshape target has more than one -1") }
                inferIndex = k
            case .fixed(let v) where v < -1:
                throw InferenceError("Reshape target has invalid dim \(v)")
            default: break
            }
        }
        if let inferIndex {
            dims[inferIndex] = .unknown
            if let input {
                let total = DimMath.product(input.dims)
                let others = DimMath.product(dims.enumerated().filter { $0.offset != inferIndex }.map(\.element))
                if let t = total.fixedValue, let o = others.fixedValue {
                    if o == 0 || t % o != 0 {
                        throw InferenceError("cannot reshape \(input) (\(t) elements) into \(Shape(dims)) with -1")
                    }
                    dims[inferIndex] = .fixed(t / o)
                } else if total != .unknown, others != .unknown {
                    dims[inferIndex] = DimMath.exactDiv(total, others)
                }
            }
        } else if let input, let t = DimMath.product(input.dims).fixedValue, let o = DimMath.product(dims).fixedValue, t != o {
            throw InferenceError("cannot reshape \(input) (\(t) elements) into \(Shape(dims)) (\(o) elements)")
        }
        if let value = ctx.known(0), let ints = value.ints, let fixed = Shape(dims).fixedDims { ctx.setKnown(0, KnownValue(dims: fixed, ints: ints)) }
        return [InferenceSupport.tensor(dtype, Shape(dims))]
    }

    static let flatten: InferenceRule = { ctx in
        guard let s = ctx.shape(0) else { return [InferenceSupport.tensor(ctx.dtype(0), nil)] }
        let axis = ctx.int("axis", default: 1)
        let r = Int64(s.rank)
        guard axis >= -r, axis <= r else { throw InferenceError("axis \(axis) is out of range for rank \(s.rank)") }
        let a = Int(axis < 0 ? axis + r : axis)
        return [InferenceSupport.tensor(ctx.dtype(0), Shape([DimMath.product(s.dims[..<a]), DimMath.product(s.dims[a...])]))]
    }

    static let transpose: InferenceRule = { ctx in
        guard let s = ctx.shape(0) else { return [InferenceSupport.tensor(ctx.dtype(0), nil)] }
        let perm = try ctx.ints("perm").map { try InferenceSupport.axes($0, rank: s.rank, ctx) } ?? Array((0..<s.rank).reversed())
        guard perm.count == s.rank else { throw InferenceError("perm has \(perm.count) entries for rank \(s.rank)") }
        return [InferenceSupport.tensor(ctx.dtype(0), Shape(perm.map { s.dims[$0] }))]
    }

    static func axesArgument(_ ctx: InferenceContext) -> [Int64]?? {
        // Outer nil: the axes are given but not known. Inner nil: no axes given.
        if ctx.opset >= 13 {
            guard ctx.hasInput(1) else { return .some(nil) }
            guard let v = ctx.known(1)?.fixedInts else { return nil }
            return .some(v)
        }
        return .some(ctx.ints("axes"))
    }

    /// With axes computed at run time only the rank is known: the axes input's length says how many dims go or come.
    static func rankOnly(_ ctx: InferenceContext, delta: Int) -> ValueType? {
        guard let r = ctx.rank(0), let axes = ctx.shape(1), axes.rank == 1, let n = axes.dims[0].fixedValue,
              n >= 0, n <= 64, r + delta * Int(n) >= 0 else { return InferenceSupport.tensor(ctx.dtype(0), nil) }
        return InferenceSupport.tensor(ctx.dtype(0), Shape([Dim](repeating: .unknown, count: r + delta * Int(n))))
    }

    static let squeeze: InferenceRule = { ctx in
        let dtype = ctx.dtype(0)
        guard let s = ctx.shape(0) else { return [InferenceSupport.tensor(dtype, nil)] }
        guard let given = axesArgument(ctx) else { return [rankOnly(ctx, delta: -1)] }
        var dims: [Dim] = []
        if let given {
            let axes = try InferenceSupport.axes(given, rank: s.rank, ctx)
            for (k, d) in s.dims.enumerated() {
                if axes.contains(k) {
                    if let v = d.fixedValue, v != 1 { throw InferenceError("cannot squeeze axis \(k) of size \(v)") }
                } else {
                    dims.append(d)
                }
            }
        } else {
            // Without axes every 1 goes; a dim that is not fixed might be 1, so the rank is then unknown.
            guard s.dims.allSatisfy({ $0.fixedValue != nil }) else { return [InferenceSupport.tensor(dtype, nil)] }
            dims = s.dims.filter { $0 != .fixed(1) }
        }
        if let value = ctx.known(0), let ints = value.ints, let fixed = Shape(dims).fixedDims { ctx.setKnown(0, KnownValue(dims: fixed, ints: ints)) }
        return [InferenceSupport.tensor(dtype, Shape(dims))]
    }

    static let unsqueeze: InferenceRule = { ctx in
        let dtype = ctx.dtype(0)
        guard let s = ctx.shape(0) else { return [InferenceSupport.tensor(dtype, nil)] }
        guard let given = axesArgument(ctx) else { return [rankOnly(ctx, delta: 1)] }
        guard let values = given else { throw InferenceError("Unsqueeze needs axes") }
        let outRank = s.rank + values.count
        let axes = try InferenceSupport.axes(values, rank: outRank, ctx)
        var dims: [Dim] = []
        var source = s.dims.makeIterator()
        for k in 0..<outRank {
            if axes.contains(k) { dims.append(.fixed(1)) } else if let d = source.next() { dims.append(d) }
        }
        if let value = ctx.known(0), let ints = value.ints, let fixed = Shape(dims).fixedDims { ctx.setKnown(0, KnownValue(dims: fixed, ints: ints)) }
        return [InferenceSupport.tensor(dtype, Shape(dims))]
    }

    static let concat: InferenceRule = { ctx in
        let dtype = (0..<ctx.inputCount).lazy.compactMap { ctx.dtype($0) }.first
        var shapes: [Shape] = []
        for i in 0..<ctx.inputCount where ctx.hasInput(i) {
            guard let s = ctx.shape(i) else { return [InferenceSupport.tensor(dtype, nil)] }
            shapes.append(s)
        }
        guard let first = shapes.first, let axisValue = ctx.int("axis") else { return [InferenceSupport.tensor(dtype, nil)] }
        let axis = try ctx.axis(axisValue, rank: first.rank)
        var dims = first.dims
        for s in shapes.dropFirst() {
            guard s.rank == first.rank else { throw InferenceError("Concat inputs \(first) and \(s) have different ranks") }
            for k in dims.indices {
                if k == axis { dims[k] = DimMath.add(dims[k], s.dims[k]) } else {
                    dims[k] = try InferenceSupport.unify(dims[k], s.dims[k], "Concat inputs \(first) and \(s) differ on axis \(k)")
                }
            }
        }
        if first.rank == 1 {
            var values: [Dim] = []
            var complete = true
            for i in 0..<ctx.inputCount where ctx.hasInput(i) {
                guard let v = ctx.known(i)?.ints else { complete = false; break }
                values += v
            }
            if complete { ctx.setKnown(0, .vector(values)) }
        }
        return [InferenceSupport.tensor(dtype, Shape(dims))]
    }

    /// Split by explicit sizes (attribute before opset 13, input after), or evenly: into equal parts when the
    /// output count divides the dim, or by `num_outputs` (opset 18) into parts of ceil(dim/n) with a smaller last one.
    static let split: InferenceRule = { ctx in
        let dtype = ctx.dtype(0)
        let n = ctx.outputCount
        guard let s = ctx.shape(0) else { return [ValueType?](repeating: InferenceSupport.tensor(dtype, nil), count: n) }
        let axis = try ctx.axis(ctx.int("axis", default: 0), rank: s.rank)
        let total = s.dims[axis]
        var sizes: [Dim]?
        if ctx.opset >= 13 ? ctx.hasInput(1) : ctx.ints("split") != nil {
            let given = ctx.opset >= 13 ? ctx.known(1)?.ints : ctx.ints("split")?.map(Dim.fixed)
            if let given {
                guard given.count == n else { throw InferenceError("split has \(given.count) sizes for \(n) outputs") }
                if let t = total.fixedValue, let sum = DimMath.sum(given).fixedValue, sum != t {
                    throw InferenceError("split sizes \(Shape(given)) do not add up to the axis size \(t)")
                }
                sizes = given
            }
        } else if let t = total.fixedValue, ctx.int("num_outputs") != nil {
            guard let chunk = DimMath.ceilDiv(total, Int64(max(n, 1))).fixedValue else { throw InferenceError("bad split size") }
            sizes = (0..<n).map { i in
                let (used, overflow) = chunk.multipliedReportingOverflow(by: Int64(i))
                return overflow ? .fixed(0) : .fixed(max(0, min(chunk, t - min(used, t))))
            }
        } else {
            if let t = total.fixedValue, t % Int64(max(n, 1)) != 0 {
                throw InferenceError("axis size \(t) does not split evenly into \(n) outputs")
            }
            sizes = [Dim](repeating: DimMath.exactDiv(total, .fixed(Int64(n))), count: n)
        }
        return (0..<n).map { i in
            var dims = s.dims
            dims[axis] = sizes?[i] ?? .unknown
            return InferenceSupport.tensor(dtype, Shape(dims))
        }
    }

    /// Slice with constant starts/ends/axes/steps. Heuristic for symbolic dims: a slice from 0 to the end with
    /// step 1 keeps the dim, a negative end `-k` gives `dim-k`, and a non-negative start `s` to the end gives
    /// `dim-s` (assuming the dim is at least `s`); any other slice of a symbolic dim is unknown.
    static let slice: InferenceRule = { ctx in
        let dtype = ctx.dtype(0)
        guard let s = ctx.shape(0) else { return [InferenceSupport.tensor(dtype, nil)] }
        let starts: [Int64]?, ends: [Int64]?, axesGiven: [Int64]?, steps: [Int64]?
        if ctx.opset < 10 {
            starts = ctx.ints("starts"); ends = ctx.ints("ends"); axesGiven = ctx.ints("axes"); steps = nil
        } else {
            starts = ctx.known(1)?.fixedInts; ends = ctx.known(2)?.fixedInts
            axesGiven = ctx.hasInput(3) ? ctx.known(3)?.fixedInts : nil
            steps = ctx.hasInput(4) ? ctx.known(4)?.fixedInts : nil
            if (ctx.hasInput(3) && axesGiven == nil) || (ctx.hasInput(4) && steps == nil) {
                return [InferenceSupport.tensor(dtype, Shape([Dim](repeating: .unknown, count: s.rank)))]
            }
        }
        if ctx.opset >= 10, starts == nil || ends == nil, let symbolicStarts = ctx.known(1)?.ints, let symbolicEnds = ctx.known(2)?.ints,
           symbolicStarts.count == symbolicEnds.count {
            return [InferenceSupport.tensor(dtype, try symbolicSlice(ctx, s, symbolicStarts, symbolicEnds, axesGiven, steps))]
        }
        guard let starts, let ends, starts.count == ends.count else {
            return [InferenceSupport.tensor(dtype, Shape([Dim](repeating: .unknown, count: s.rank)))]
        }
        let axes = try InferenceSupport.axes(axesGiven ?? (0..<starts.count).map(Int64.init), rank: s.rank, ctx)
        let stepValues = steps ?? [Int64](repeating: 1, count: starts.count)
        guard axes.count == starts.count, stepValues.count == starts.count else {
            throw InferenceError("Slice starts, ends, axes and steps have different lengths")
        }
        var dims = s.dims
        var ranges: [Int: (Int64, Int64, Int64)] = [:]
        for (j, axis) in axes.enumerated() {
            let step = stepValues[j]
            guard step != 0 else { throw InferenceError("Slice step is 0") }
            if let n = s.dims[axis].fixedValue, n >= 0 {
                let (b, e) = sliceBounds(starts[j], ends[j], step, n)
                let stride = Int64(clamping: step.magnitude)
                let count = step > 0 ? (e <= b ? 0 : (e - b - 1) / stride + 1) : (b <= e ? 0 : (b - e - 1) / stride + 1)
                dims[axis] = .fixed(count)
                ranges[axis] = (b, e, step)
            } else if step == 1, starts[j] >= 0, ends[j] >= Int64(Int32.max) {
                dims[axis] = DimMath.add(s.dims[axis], -starts[j])
            } else if step == 1, starts[j] == 0, ends[j] < 0 {
                dims[axis] = DimMath.add(s.dims[axis], ends[j])
            } else if step == 1, starts[j] >= 0, ends[j] >= 0, starts[j] <= ends[j], ends[j] < Int64(Int32.max) {
                // A fixed window [a, b) of a symbolic dim assumed long enough.
                dims[axis] = .fixed(ends[j] - starts[j])
            } else {
                dims[axis] = .unknown
            }
        }
        // Slicing a known 1-D value (a shape vector) slices its entries.
        if s.rank == 1, let values = ctx.known(0)?.ints, let (b, e, step) = ranges[0] {
            var picked: [Dim] = []
            var i = b
            while step > 0 ? i < e : i > e {
                guard i >= 0, i < Int64(values.count) else { break }
                picked.append(values[Int(i)])
                let (next, overflow) = i.addingReportingOverflow(step)
                if overflow { break }
                i = next
            }
            ctx.setKnown(0, .vector(picked))
        }
        return [InferenceSupport.tensor(dtype, Shape(dims))]
    }

    /// Slice bounds computed from shapes (`x[:, :seq]`). Heuristics, step 1 only: `0..end` gives `end` (the end
    /// is assumed within the dim, which is why a model slices to a length), `start..` to a huge end gives
    /// `dim-start`; anything else is unknown.
    static func symbolicSlice(_ ctx: InferenceContext, _ s: Shape, _ starts: [Dim], _ ends: [Dim], _ axesGiven: [Int64]?,
                              _ steps: [Int64]?) throws -> Shape {
        let axes = try InferenceSupport.axes(axesGiven ?? (0..<starts.count).map(Int64.init), rank: s.rank, ctx)
        let stepValues = steps ?? [Int64](repeating: 1, count: starts.count)
        guard axes.count == starts.count, stepValues.count == starts.count else {
            throw InferenceError("Slice starts, ends, axes and steps have different lengths")
        }
        var dims = s.dims
        for (j, axis) in axes.enumerated() {
            if stepValues[j] == 1, starts[j] == .fixed(0), ends[j] != .unknown, (ends[j].fixedValue ?? 0) >= 0 {
                dims[axis] = ends[j].fixedValue.map { $0 >= Int64(Int32.max) ? s.dims[axis] : .fixed($0) } ?? ends[j]
            } else if stepValues[j] == 1, let end = ends[j].fixedValue, end >= Int64(Int32.max), starts[j] != .unknown,
                      (starts[j].fixedValue ?? 0) >= 0 {
                dims[axis] = DimMath.sub(s.dims[axis], starts[j])
            } else {
                dims[axis] = .unknown
            }
        }
        return Shape(dims)
    }

    /// Python slice bounds clamped into the dim, as ONNX defines them.
    static func sliceBounds(_ start: Int64, _ end: Int64, _ step: Int64, _ n: Int64) -> (Int64, Int64) {
        func adjust(_ v: Int64) -> Int64 { v < 0 ? (v < -n ? -n : v) + n : v }
        var b = adjust(start), e = adjust(end)
        if step > 0 {
            b = min(max(b, 0), n); e = min(max(e, 0), n)
        } else {
            b = min(max(b, -1), n - 1); e = min(max(e, -1), n - 1)
        }
        return (b, e)
    }

    static let expand: InferenceRule = { ctx in
        let dtype = ctx.dtype(0)
        guard let target = ctx.known(1)?.ints else {
            if let n = ctx.shape(1)?.dims.first?.fixedValue, let r = ctx.rank(0), n >= 0, n <= 64 {
                return [InferenceSupport.tensor(dtype, Shape([Dim](repeating: .unknown, count: max(r, Int(n)))))]
            }
            return [InferenceSupport.tensor(dtype, nil)]
        }
        guard let s = ctx.shape(0) else { return [InferenceSupport.tensor(dtype, nil)] }
        do {
            return [InferenceSupport.tensor(dtype, try InferenceSupport.broadcast([s, Shape(target)]))]
        } catch {
            throw InferenceError("cannot expand \(s) to \(Shape(target))")
        }
    }

    static let tile: InferenceRule = { ctx in
        let dtype = ctx.dtype(0)
        guard let s = ctx.shape(0) else { return [InferenceSupport.tensor(dtype, nil)] }
        guard let repeats = ctx.known(1)?.ints else {
            return [InferenceSupport.tensor(dtype, Shape([Dim](repeating: .unknown, count: s.rank)))]
        }
        guard repeats.count == s.rank else { throw InferenceError("Tile repeats has \(repeats.count) entries for rank \(s.rank)") }
        return [InferenceSupport.tensor(dtype, Shape(zip(s.dims, repeats).map { DimMath.mul($0, $1) }))]
    }

    /// Pads as attribute (before opset 11) or input, with optional axes (opset 18).
    static let pad: InferenceRule = { ctx in
        let dtype = ctx.dtype(0)
        guard let s = ctx.shape(0) else { return [InferenceSupport.tensor(dtype, nil)] }
        let pads: [Dim]? = ctx.opset < 11 ? (ctx.ints("pads") ?? ctx.ints("paddings"))?.map(Dim.fixed) : ctx.known(1)?.ints
        guard let pads else { return [InferenceSupport.tensor(dtype, Shape([Dim](repeating: .unknown, count: s.rank)))] }
        var axes = Array(0..<s.rank)
        if ctx.opset >= 18, ctx.hasInput(3) {
            guard let given = ctx.known(3)?.fixedInts else {
                return [InferenceSupport.tensor(dtype, Shape([Dim](repeating: .unknown, count: s.rank)))]
            }
            axes = try InferenceSupport.axes(given, rank: s.rank, ctx)
        }
        guard pads.count == 2 * axes.count else { throw InferenceError("Pad has \(pads.count) pads for \(axes.count) axes") }
        var dims = s.dims
        for (j, axis) in axes.enumerated() {
            dims[axis] = DimMath.add(DimMath.add(dims[axis], pads[j]), pads[axes.count + j])
            if let v = dims[axis].fixedValue, v < 0 { throw InferenceError("Pad makes axis \(axis) negative (\(v))") }
        }
        return [InferenceSupport.tensor(dtype, Shape(dims))]
    }

    /// Range: max(ceil((limit - start) / delta), 0) elements. Symbolic only for `Range(0, n, 1)` = n.
    static let range: InferenceRule = { ctx in
        let dtype = ctx.dtype(0)
        guard let start = ctx.known(0), let limit = ctx.known(1), let delta = ctx.known(2),
              start.count == 1, limit.count == 1, delta.count == 1 else {
            return [InferenceSupport.tensor(dtype, Shape([ctx.newSymbol("range")]))]
        }
        if let a = start.fixedInts?.first, let b = limit.fixedInts?.first, let d = delta.fixedInts?.first {
            guard d != 0 else { throw InferenceError("Range delta is 0") }
            let span = Double(b) - Double(a)
            let estimate = max(0, (span / Double(d)).rounded(.up))
            guard estimate < 1e15 else { return [InferenceSupport.tensor(dtype, Shape([.unknown]))] }
            let count = Int64(estimate)
            if count <= KnownValue.maximumElements {
                ctx.setKnown(0, .vector((0..<count).map { DimMath.add(.fixed(a), DimMath.mul(.fixed($0), d)) }))
            }
            return [InferenceSupport.tensor(dtype, Shape([.fixed(count)]))]
        }
        if start.fixedInts == [0], delta.fixedInts == [1], let n = limit.ints?.first, n != .unknown {
            return [InferenceSupport.tensor(dtype, Shape([n]))]
        }
        if let a = start.doubles?.first, let b = limit.doubles?.first, let d = delta.doubles?.first, d != 0 {
            let count = max(0, ((b - a) / d).rounded(.up))
            if count < 1e15 { return [InferenceSupport.tensor(dtype, Shape([.fixed(Int64(count))]))] }
        }
        return [InferenceSupport.tensor(dtype, Shape([ctx.newSymbol("range")]))]
    }

    static let constantOfShape: InferenceRule = { ctx in
        var dtype = DType.float
        var fill: Dim?
        if case .tensor(let t)? = ctx.node.attribute("value") {
            dtype = t.dtype
            fill = KnownValue(tensor: t.data)?.ints?.first
        }
        guard let target = ctx.known(0)?.ints else {
            let rank = ctx.shape(0)?.dims.first?.fixedValue
            return [InferenceSupport.tensor(dtype, rank.flatMap { $0 >= 0 && $0 <= 64 ? Shape([Dim](repeating: .unknown, count: Int($0))) : nil })]
        }
        if let fill, let dims = Shape(target).fixedDims, let count = CheckedSize.elementCount(dims), count <= 64 {
            ctx.setKnown(0, KnownValue(dims: dims, ints: [Dim](repeating: fill, count: count)))
        }
        return [InferenceSupport.tensor(dtype, Shape(target))]
    }

    static let constant: InferenceRule = { ctx in
        guard let attribute = ctx.node.attributes.first else { throw InferenceError("Constant has no value attribute") }
        switch attribute.value {
        case .tensor(let t):
            if let v = KnownValue(tensor: t.data) { ctx.setKnown(0, v) }
            return [ValueType(.tensor(t.type))]
        case .sparseTensor(let s): return [.tensor(s.values.dtype, Shape(fixed: s.dims))]
        case .float(let v):
            ctx.setKnown(0, KnownValue(dims: [], floats: [Double(v)]))
            return [.tensor(.float, Shape([]))]
        case .floats(let v):
            ctx.setKnown(0, KnownValue(dims: [Int64(v.count)], floats: v.map(Double.init)))
            return [.tensor(.float, Shape(fixed: [Int64(v.count)]))]
        case .int(let v):
            ctx.setKnown(0, .scalar(.fixed(v)))
            return [.tensor(.int64, Shape([]))]
        case .ints(let v):
            ctx.setKnown(0, .vector(v.map(Dim.fixed)))
            return [.tensor(.int64, Shape(fixed: [Int64(v.count)]))]
        case .string: return [.tensor(.string, Shape([]))]
        case .strings(let v): return [.tensor(.string, Shape(fixed: [Int64(v.count)]))]
        default: throw InferenceError("Constant attribute \(attribute.name) has unsupported kind \(attribute.value.kindName)")
        }
    }

    /// Resize (opset 10: scales input; 11+: roi, scales, sizes; 18: axes) and Upsample (scales attribute,
    /// then input). Scaled dims are floor(dim·scale); a symbolic dim only scales by a whole number.
    static let resize: InferenceRule = { ctx in
        let dtype = ctx.dtype(0)
        guard let s = ctx.shape(0) else { return [InferenceSupport.tensor(dtype, nil)] }
        let unknown = [InferenceSupport.tensor(dtype, Shape([Dim](repeating: .unknown, count: s.rank)))]
        var axes = Array(0..<s.rank)
        if let given = ctx.ints("axes") { axes = try InferenceSupport.axes(given, rank: s.rank, ctx) }
        var scales: [Double]?
        var sizes: [Dim]?
        if ctx.node.opType == "Upsample" {
            scales = ctx.opset < 9 ? ctx.floats("scales")?.map(Double.init) : ctx.known(1)?.doubles
        } else if ctx.opset < 11 {
            scales = ctx.known(1)?.doubles
        } else {
            if ctx.hasInput(3) { sizes = ctx.known(3)?.ints; if sizes == nil { return unknown } }
            if sizes == nil, ctx.hasInput(2), let v = ctx.known(2), v.count > 0 { scales = v.doubles }
            if sizes != nil, ctx.hasInput(2), let v = ctx.known(2), v.count > 0 {
                throw InferenceError("Resize has both scales and sizes")
            }
        }
        var dims = s.dims
        if let sizes {
            guard sizes.count == axes.count else { throw InferenceError("Resize sizes has \(sizes.count) entries for \(axes.count) axes") }
            if ctx.string("keep_aspect_ratio_policy").map({ $0 != "stretch" }) ?? false { return unknown }
            for (j, a) in axes.enumerated() { dims[a] = sizes[j] }
        } else if let scales {
            guard scales.count == axes.count else { throw InferenceError("Resize scales has \(scales.count) entries for \(axes.count) axes") }
            for (j, a) in axes.enumerated() {
                let scale = scales[j]
                guard scale > 0, scale.isFinite else { throw InferenceError("Resize scale \(scale) is not positive") }
                if let n = dims[a].fixedValue {
                    let v = (Double(n) * scale).rounded(.down)
                    dims[a] = v < 9e18 && v >= 0 ? .fixed(Int64(v)) : .unknown
                } else if scale.rounded() == scale, scale < 1e6 {
                    dims[a] = DimMath.mul(dims[a], Int64(scale))
                } else {
                    dims[a] = .unknown
                }
            }
        } else {
            return unknown
        }
        return [InferenceSupport.tensor(dtype, Shape(dims))]
    }

    static let depthToSpace: InferenceRule = { ctx in
        guard let s = ctx.shape(0) else { return [InferenceSupport.tensor(ctx.dtype(0), nil)] }
        guard s.rank == 4 else { throw InferenceError("DepthToSpace needs a 4-D input, got \(s)") }
        let b = ctx.int("blocksize", default: 0)
        guard b > 0, b < 1 << 31 else { throw InferenceError("blocksize must be positive and sane") }
        if let c = s.dims[1].fixedValue, c % (b * b) != 0 { throw InferenceError("channels \(c) are not divisible by blocksize² \(b * b)") }
        return [InferenceSupport.tensor(ctx.dtype(0), Shape([s.dims[0], DimMath.exactDiv(s.dims[1], .fixed(b * b)),
                                                             DimMath.mul(s.dims[2], b), DimMath.mul(s.dims[3], b)]))]
    }

    static let spaceToDepth: InferenceRule = { ctx in
        guard let s = ctx.shape(0) else { return [InferenceSupport.tensor(ctx.dtype(0), nil)] }
        guard s.rank == 4 else { throw InferenceError("SpaceToDepth needs a 4-D input, got \(s)") }
        let b = ctx.int("blocksize", default: 0)
        guard b > 0, b < 1 << 31 else { throw InferenceError("blocksize must be positive and sane") }
        for k in 2..<4 { if let v = s.dims[k].fixedValue, v % b != 0 { throw InferenceError("dim \(v) is not divisible by blocksize \(b)") } }
        return [InferenceSupport.tensor(ctx.dtype(0), Shape([s.dims[0], DimMath.mul(s.dims[1], b * b),
                                                             DimMath.exactDiv(s.dims[2], .fixed(b)), DimMath.exactDiv(s.dims[3], .fixed(b))]))]
    }
}
