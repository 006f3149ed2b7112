import OnnxcCore

/// Indexing operators. Element movement is type-agnostic (`ShapeKernels.build`); only scatter reductions and
/// Unique's ordering look at values. Indices from inputs are validated: negative ones wrap once, anything still
/// out of range is an error.
enum IndexingKernels {
    static let table: [String: Kernel] = [
        "Gather": gather,
        "GatherElements": gatherElements,
        "GatherND": gatherND,
        "Scatter": scatterElements,
        "ScatterElements": scatterElements,
        "ScatterND": scatterND,
        "Slice": slice,
        "OneHot": oneHot,
        "NonZero": nonZero,
        "Unique": unique,
    ]

    typealias Axis = ShapeKernels.Axis

    /// Index values as Int, wrapping negatives once against `dim` and rejecting the rest.
    static func validated(_ indices: Tensor, dim: Int, op: String) throws(RuntimeError) -> [Int] {
        guard indices.dtype == .int64 || indices.dtype == .int32 else {
            throw .invalidArgument("\(op): indices must be int32 or int64, got \(indices.dtype.onnxName)")
        }
        let raw = indices.int64s()
        var result = [Int](repeating: 0, count: raw.count)
        let d = Int64(dim)
        for (i, v) in raw.enumerated() {
            let w = v < 0 ? v + d : v
            guard w >= 0 && w < d else { throw .invalidArgument("\(op): index \(v) is out of range for a dim of size \(dim)") }
            result[i] = Int(w)
        }
        return result
    }

    static func gather(_ inputs: [Value?], _ context: KernelContext) throws(RuntimeError) -> [Value?] {
        let data = try context.tensor(inputs, 0)
        let indices = try context.tensor(inputs, 1)
        guard data.rank > 0 else { throw .invalidShape("Gather needs data of rank >= 1") }
        let axis = try Broadcast.axis(context.attributes.int("axis", 0), rank: data.rank, op: "Gather")
        let index = try validated(indices, dim: data.shape[axis], op: "Gather")
        return outputs(try ShapeKernels.gather(data, axis: axis, indices: index, indicesShape: indices.shape))
    }

    /// For GatherElements/ScatterElements: the data offset each element of `indices` addresses along `axis`.
    static func elementOffsets(_ dataShape: [Int], _ indices: Tensor, axis: Int, op: String) throws(RuntimeError) -> [Int] {
        let rank = dataShape.count
        guard indices.rank == rank else { throw .invalidShape("\(op): indices rank \(indices.rank) differs from data rank \(rank)") }
        for d in 0..<rank where d != axis && indices.shape[d] > dataShape[d] {
            throw .invalidShape("\(op): indices shape \(indices.shape) exceeds data shape \(dataShape) along axis \(d)")
        }
        var offsets = try validated(indices, dim: dataShape[axis], op: op)
        let strides = Broadcast.strides(dataShape)
        var position = [Int](repeating: 0, count: rank)
        var base = 0
        for i in offsets.indices {
            offsets[i] = base + offsets[i] * strides[axis]
            var d = rank - 1
            while d >= 0 {
                position[d] += 1
                if d != axis { base += strides[d] }
                if position[d] < indices.shape[d] { break }
                if d != axis { base -= strides[d] * position[d] }
                position[d] = 0
                d -= 1
            }
        }
        return offsets
    }

    static func gatherElements(_ inputs: [Value?], _ context: KernelContext) throws(RuntimeError) -> [Value?] {
        let data = try context.tensor(inputs, 0)
        let indices = try context.tensor(inputs, 1)
        guard data.rank > 0 else { throw .invalidShape("GatherElements needs data of rank >= 1") }
        let axis = try Broadcast.axis(context.attributes.int("axis", 0), rank: data.rank, op: "GatherElements")
        let offsets = try elementOffsets(data.shape, indices, axis: axis, op: "GatherElements")
        return outputs(try ShapeKernels.build(data.dtype, indices.shape, from: [data]) { b throws(RuntimeError) in
            try b.copy([offsets.count], from: 0, at: 0, [.table(offsets)], to: 0, [.stride(1)])
        })
    }

    /// For GatherND/ScatterND: the data offset of each index tuple (the last dim of `indices`), the slice each
    /// tuple addresses, and the shape of the tuple grid.
    static func tupleOffsets(_ dataShape: [Int], _ indices: Tensor, batchDims: Int, op: String) throws(RuntimeError) -> (offsets: [Int], slice: [Int], grid: [Int]) {
        guard indices.rank >= 1, let k = indices.shape.last else { throw .invalidShape("\(op): indices must have rank >= 1") }
        let b = batchDims
        guard b >= 0, b < indices.rank, b + k <= dataShape.count else {
            throw .invalidShape("\(op): indices \(indices.shape) with batch_dims \(b) do not fit data \(dataShape)")
        }
        guard Array(dataShape[..<b]) == Array(indices.shape[..<b]) else {
            throw .invalidShape("\(op): batch dims of data \(dataShape) and indices \(indices.shape) differ")
        }
        guard indices.dtype == .int64 || indices.dtype == .int32 else {
            throw .invalidArgument("\(op): indices must be int32 or int64, got \(indices.dtype.onnxName)")
        }
        let raw = indices.int64s()
        let grid = Array(indices.shape.dropLast())
        let tuples = grid.reduce(1, *)
        let batches = dataShape[..<b].reduce(1, *)
        let perBatch = batches == 0 ? 0 : tuples / batches
        let strides = Broadcast.strides(dataShape)
        let batchStride = dataShape[b...].reduce(1, *)
        var offsets = [Int](repeating: 0, count: tuples)
        for t in 0..<tuples {
            var offset = (perBatch == 0 ? 0 : t / perBatch) * batchStride
            for j in 0..<k {
                let dim = dataShape[b + j]
                let v = raw[t * k + j]
                let w = v < 0 ? v + Int64(dim) : v
                guard w >= 0 && w < Int64(dim) else { throw .invalidArgument("\(op): index \(v) is out of range for a dim of size \(dim)") }
                offset += Int(w) * strides[b + j]
            }
            offsets[t] = offset
        }
        return (offsets, Array(dataShape[(b + k)...]), grid)
    }

    static func gatherND(_ inputs: [Value?], _ context: KernelContext) throws(RuntimeError) -> [Value?] {
        let data = try context.tensor(inputs, 0)
        let indices = try context.tensor(inputs, 1)
        let batchDims = Int(clamping: context.attributes.int("batch_dims", 0))
        let (offsets, slice, grid) = try tupleOffsets(data.shape, indices, batchDims: batchDims, op: "GatherND")
        let sliceCount = slice.reduce(1, *)
        return outputs(try ShapeKernels.build(data.dtype, grid + slice, from: [data]) { b throws(RuntimeError) in
            try b.copy([offsets.count, sliceCount], from: 0, at: 0, [.table(offsets), .stride(1)], to: 0, [.stride(sliceCount), .stride(1)])
        })
    }

    static func scatterElements(_ inputs: [Value?], _ context: KernelContext) throws(RuntimeError) -> [Value?] {
        let data = try context.tensor(inputs, 0)
        let indices = try context.tensor(inputs, 1)
        let updates = try context.tensor(inputs, 2)
        guard data.rank > 0 else { throw .invalidShape("\(context.node.opType) needs data of rank >= 1") }
        guard updates.shape == indices.shape else {
            throw .invalidShape("\(context.node.opType): updates \(updates.shape) and indices \(indices.shape) differ")
        }
        let axis = try Broadcast.axis(context.attributes.int("axis", 0), rank: data.rank, op: context.node.opType)
        let offsets = try elementOffsets(data.shape, indices, axis: axis, op: context.node.opType)
        return outputs(try scatter(data, updates, offsets: offsets, slice: 1, reduction: context.attributes.string("reduction", "none"), op: context.node.opType))
    }

    static func scatterND(_ inputs: [Value?], _ context: KernelContext) throws(RuntimeError) -> [Value?] {
        let data = try context.tensor(inputs, 0)
        let indices = try context.tensor(inputs, 1)
        let updates = try context.tensor(inputs, 2)
        let (offsets, slice, grid) = try tupleOffsets(data.shape, indices, batchDims: 0, op: "ScatterND")
        guard updates.shape == grid + slice else {
            throw .invalidShape("ScatterND: updates \(updates.shape) should be \(grid + slice)")
        }
        return outputs(try scatter(data, updates, offsets: offsets, slice: slice.reduce(1, *),
                                   reduction: context.attributes.string("reduction", "none"), op: "ScatterND"))
    }

    /// A copy of `data` with update slice t (of `slice` elements) written or reduced at offsets[t], in order.
    static func scatter(_ data: Tensor, _ updates: Tensor, offsets: [Int], slice: Int, reduction: String, op: String) throws(RuntimeError) -> Tensor {
        guard updates.dtype == data.dtype else { throw .invalidArgument("\(op): updates are \(updates.dtype.onnxName), data is \(data.dtype.onnxName)") }
        if reduction == "none" {
            return try ShapeKernels.build(data.dtype, data.shape, from: [data, updates]) { b throws(RuntimeError) in
                try b.copy([data.count], from: 0, at: 0, [.stride(1)], to: 0, [.stride(1)])
                try b.copy([offsets.count, slice], from: 1, at: 0, [.stride(slice), .stride(1)], to: 0, [.table(offsets), .stride(1)])
            }
        }
        guard ["add", "mul", "max", "min"].contains(reduction) else { throw .invalidArgument("\(op): unknown reduction \(reduction)") }
        let plan = ScatterReduce(data: data, updates: updates, offsets: offsets, slice: slice, reduction: reduction)
        if data.dtype.isFloatingPoint { return try dispatchFloat(data.dtype, op: op, plan) }
        if data.dtype == .bool { return try plan.visitBool() }
        return try dispatchInteger(data.dtype, op: op, plan)
    }

    struct ScatterReduce: FloatVisitor, IntegerVisitor {
        let data: Tensor, updates: Tensor, offsets: [Int], slice: Int, reduction: String

        func visit<T: FloatElement>(_: T.Type) throws(RuntimeError) -> Tensor {
            switch reduction {
            case "add": try apply(T.self, +)
            case "mul": try apply(T.self, *)
            case "max": try apply(T.self) { Swift.max($0, $1) }
            default: try apply(T.self) { Swift.min($0, $1) }
            }
        }

        func visit<T: IntegerElement>(_: T.Type) throws(RuntimeError) -> Tensor {
            switch reduction {
            case "add": try apply(T.self, &+)
            case "mul": try apply(T.self, &*)
            case "max": try apply(T.self) { Swift.max($0, $1) }
            default: try apply(T.self) { Swift.min($0, $1) }
            }
        }

        /// Boolean reductions as logic: add and max are or, mul and min are and.
        func visitBool() throws(RuntimeError) -> Tensor {
            reduction == "add" || reduction == "max" ? try apply(Bool.self) { $0 || $1 } : try apply(Bool.self) { $0 && $1 }
        }

        private func apply<T: TensorElement>(_: T.Type, _ f: (T, T) -> T) throws(RuntimeError) -> Tensor {
            let out = try Tensor(zeros: data.dtype, shape: data.shape)
            data.withValues(T.self) { src in
                updates.withValues(T.self) { upd in
                    out.withMutableValues(T.self) { dst in
                        for i in 0..<dst.count { dst[i] = src[i] }
                        for (t, offset) in offsets.enumerated() {
                            for j in 0..<slice { dst[offset + j] = f(dst[offset + j], upd[t * slice + j]) }
                        }
                    }
                }
            }
            return out
        }
    }

    static func slice(_ inputs: [Value?], _ context: KernelContext) throws(RuntimeError) -> [Value?] {
        let data = try context.tensor(inputs, 0)
        let rank = data.rank
        let starts: [Int64], ends: [Int64]
        var axes: [Int64]?, steps: [Int64]?
        if context.opset < 10 {
            guard let s = context.attributes.ints("starts"), let e = context.attributes.ints("ends") else {
                throw .invalidArgument("Slice needs starts and ends")
            }
            (starts, ends, axes) = (s, e, context.attributes.ints("axes"))
        } else {
            starts = try context.tensor(inputs, 1).int64s()
            ends = try context.tensor(inputs, 2).int64s()
            axes = try context.optionalTensor(inputs, 3)?.int64s()
            steps = try context.optionalTensor(inputs, 4)?.int64s()
        }
        let axisList = try ShapeKernels.normalizedAxes(axes ?? (0..<Int64(starts.count)).map { $0 }, rank: rank, op: "Slice")
        let stepList = steps ?? [Int64](repeating: 1, count: starts.count)
        guard ends.count == starts.count, axisList.count == starts.count, stepList.count == starts.count else {
            throw .invalidArgument("Slice: starts, ends, axes and steps have different lengths")
        }
        let strides = Broadcast.strides(data.shape)
        var shape = data.shape
        var srcAxes = strides.map { Axis.stride($0) }
        var base = 0
        for (i, axis) in axisList.enumerated() {
            let dim = Int64(data.shape[axis])
            guard stepList[i] != 0 else { throw .invalidArgument("Slice: step 0 on axis \(axis)") }
            // Steps beyond the dim only ever take the first element; clamping keeps the arithmetic in range.
            let step = max(min(stepList[i], dim + 1), -dim - 1)
            func adjust(_ v: Int64) -> Int64 { v < 0 ? max(v, -dim - 1) + dim : min(v, dim + 1) }
            var start = adjust(starts[i]), end = adjust(ends[i])
            let count: Int64
            if step > 0 {
                start = min(max(start, 0), dim)
                end = min(max(end, 0), dim)
                count = end > start ? (end - start + step - 1) / step : 0
            } else {
                start = min(max(start, 0), dim - 1)
                end = min(max(end, -1), dim - 1)
                count = start > end ? (start - end + (-step) - 1) / (-step) : 0
            }
            shape[axis] = Int(count)
            if count > 0 { base += Int(start) * strides[axis] }
            srcAxes[axis] = .stride(strides[axis] * Int(step))
        }
        return outputs(try ShapeKernels.build(data.dtype, shape, from: [data]) { b throws(RuntimeError) in
            try b.copy(shape, from: 0, at: base, srcAxes, to: 0, ShapeKernels.rowMajor(shape))
        })
    }

    static func oneHot(_ inputs: [Value?], _ context: KernelContext) throws(RuntimeError) -> [Value?] {
        let indices = try context.tensor(inputs, 0)
        let depthValues = try context.tensor(inputs, 1).doubles()
        let values = try context.tensor(inputs, 2)
        guard depthValues.count == 1, let depthValue = depthValues.first, depthValue >= 0, depthValue < Double(Int32.max) else {
            throw .invalidArgument("OneHot: depth must be one non-negative value, got \(depthValues)")
        }
        guard values.count == 2 else { throw .invalidArgument("OneHot: values must hold [off, on], has \(values.count) elements") }
        let depth = Int(depthValue)
        let axis = try Broadcast.axis(context.attributes.int("axis", -1), rank: indices.rank + 1, op: "OneHot")
        let inner = indices.shape[axis...].reduce(1, *)
        let shape = Array(indices.shape[..<axis]) + [depth] + Array(indices.shape[axis...])
        _ = try ShapeKernels.checkedCount(shape, op: "OneHot")
        // Out-of-range indices (after wrapping negatives once) leave their row all off.
        var positions: [Int] = []
        positions.reserveCapacity(indices.count)
        for (k, raw) in indices.doubles().enumerated() where !raw.isNaN {
            let v = raw < 0 ? raw.rounded(.towardZero) + Double(depth) : raw.rounded(.towardZero)
            guard v >= 0 && v < Double(depth) else { continue }
            let o = k / max(inner, 1), i = k % max(inner, 1)
            positions.append((o * depth + Int(v)) * inner + i)
        }
        let flatValues = try values.reshaped([2])
        return outputs(try ShapeKernels.build(values.dtype, shape, from: [flatValues]) { b throws(RuntimeError) in
            try b.fill(from: 0, at: 0)
            try b.copy([positions.count], from: 0, at: 1, [.stride(0)], to: 0, [.table(positions)])
        })
    }

    static func nonZero(_ inputs: [Value?], _ context: KernelContext) throws(RuntimeError) -> [Value?] {
        let data = try context.tensor(inputs, 0)
        let flags = try nonZeroFlags(data)
        // A scalar behaves as a one-element vector, as in NumPy.
        let shape = data.rank == 0 ? [1] : data.shape
        let rank = shape.count
        let found = flags.reduce(0) { $0 + ($1 ? 1 : 0) }
        var coordinates = [Int64](repeating: 0, count: rank * found)
        var index = [Int](repeating: 0, count: rank)
        var column = 0
        for flag in flags {
            if flag {
                for d in 0..<rank { coordinates[d * found + column] = Int64(index[d]) }
                column += 1
            }
            var d = rank - 1
            while d >= 0 {
                index[d] += 1
                if index[d] < shape[d] { break }
                index[d] = 0
                d -= 1
            }
        }
        return outputs(try Tensor(coordinates, shape: [rank, found]))
    }

    /// Whether each element is non-zero, judged on its bits: negative zero counts as zero for floating types
    /// (except the fnuz float8 types, whose 0x80 is NaN).
    static func nonZeroFlags(_ data: Tensor) throws(RuntimeError) -> [Bool] {
        if data.dtype == .string { return (data.strings ?? []).map { !$0.isEmpty } }
        func scan<B: FixedWidthInteger>(_: B.Type, mask: B, lanes: Int = 1) -> [Bool] {
            data.withBytes { raw in
                (0..<data.count).map { i in
                    (0..<lanes).contains { lane in raw.loadUnaligned(fromByteOffset: (i * lanes + lane) * MemoryLayout<B>.size, as: B.self) & mask != 0 }
                }
            }
        }
        switch data.dtype {
        case .float: return scan(UInt32.self, mask: 0x7FFF_FFFF)
        case .double: return scan(UInt64.self, mask: 0x7FFF_FFFF_FFFF_FFFF)
        case .float16, .bfloat16: return scan(UInt16.self, mask: 0x7FFF)
        case .float8e4m3fn, .float8e5m2: return scan(UInt8.self, mask: 0x7F)
        case .complex64: return scan(UInt32.self, mask: 0x7FFF_FFFF, lanes: 2)
        case .complex128: return scan(UInt64.self, mask: 0x7FFF_FFFF_FFFF_FFFF, lanes: 2)
        case .int4, .uint4: return data.withBytes { raw in (0..<data.count).map { i in (i % 2 == 0 ? raw[i / 2] & 0x0F : raw[i / 2] >> 4) != 0 } }
        case .undefined, .string: throw .unsupportedType(op: "NonZero", dtype: data.dtype.onnxName)
        default:
            switch data.dtype.storageBytes {
            case 1: return scan(UInt8.self, mask: 0xFF)
            case 2: return scan(UInt16.self, mask: 0xFFFF)
            case 4: return scan(UInt32.self, mask: 0xFFFF_FFFF)
            default: return scan(UInt64.self, mask: 0xFFFF_FFFF_FFFF_FFFF)
            }
        }
    }

    static func unique(_ inputs: [Value?], _ context: KernelContext) throws(RuntimeError) -> [Value?] {
        var data = try context.tensor(inputs, 0)
        let sorted = context.attributes.int("sorted", 1) != 0
        if [.complex64, .complex128, .undefined].contains(data.dtype) { throw .unsupportedType(op: "Unique", dtype: data.dtype.onnxName) }
        let axis: Int
        if let given = context.attributes.int("axis") {
            axis = try Broadcast.axis(given, rank: data.rank, op: "Unique")
        } else {
            data = try data.reshaped([data.count])
            axis = 0
        }
        let outer = data.shape[..<axis].reduce(1, *), n = data.shape[axis], inner = data.shape[(axis + 1)...].reduce(1, *)
        let (order, boundaries) = SliceLayout(outer: outer, n: n, inner: inner).groups(data)
        // order: slice indices sorted by value, ties by position; a boundary starts each run of equal slices.
        var groupOf = [Int](repeating: 0, count: n)
        var firsts: [Int] = [], counts: [Int64] = []
        for (position, k) in order.enumerated() {
            if boundaries[position] {
                firsts.append(k)
                counts.append(0)
            }
            groupOf[k] = firsts.count - 1
            counts[counts.count - 1] += 1
        }
        var groupOrder = Array(firsts.indices)
        if !sorted { groupOrder.sort { firsts[$0] < firsts[$1] } }
        var rank = [Int](repeating: 0, count: firsts.count)
        for (r, g) in groupOrder.enumerated() { rank[g] = r }
        let uniqueIndices = groupOrder.map { firsts[$0] }
        let y = try ShapeKernels.gather(data, axis: axis, indices: uniqueIndices, indicesShape: [uniqueIndices.count])
        let inverse = (0..<n).map { Int64(rank[groupOf[$0]]) }
        return outputs(y, try Tensor(uniqueIndices.map(Int64.init), shape: [uniqueIndices.count]),
                       try Tensor(inverse, shape: [n]), try Tensor(groupOrder.map { counts[$0] }, shape: [groupOrder.count]))
    }

    /// Slice k of a tensor viewed as [outer, n, inner]: elements o·n·inner + k·inner + i, compared lexicographically.
    struct SliceLayout {
        let outer: Int, n: Int, inner: Int

        func compare<C: RandomAccessCollection>(_ v: C, _ a: Int, _ b: Int) -> Int where C.Element: Comparable, C.Index == Int {
            for o in 0..<outer {
                let base = v.startIndex + o * n * inner
                for i in 0..<inner {
                    let x = v[base + a * inner + i], y = v[base + b * inner + i]
                    // NaN (the only value unequal to itself) sorts last and equals NaN, as in NumPy's unique.
                    let xNaN = x != x, yNaN = y != y
                    if xNaN || yNaN {
                        if xNaN && yNaN { continue }
                        return xNaN ? 1 : -1
                    }
                    if x < y { return -1 }
                    if y < x { return 1 }
                }
            }
            return 0
        }

        /// Slice indices in value order (ties by position), and whether each starts a new group of equal slices.
        func groups<C: RandomAccessCollection>(_ v: C) -> ([Int], [Bool]) where C.Element: Comparable, C.Index == Int {
            let order = (0..<n).sorted { a, b in
                let c = compare(v, a, b)
                return c < 0 || (c == 0 && a < b)
            }
            return (order, order.indices.map { $0 == 0 || compare(v, order[$0 - 1], order[$0]) != 0 })
        }

        func groups(_ data: Tensor) -> ([Int], [Bool]) {
            switch data.dtype {
            case .string: groups(data.strings ?? [])
            case .bool, .uint8: data.withValues(UInt8.self) { groups($0) }
            case .int8: data.withValues(Int8.self) { groups($0) }
            case .int16: data.withValues(Int16.self) { groups($0) }
            case .uint16: data.withValues(UInt16.self) { groups($0) }
            case .int32: data.withValues(Int32.self) { groups($0) }
            case .uint32: data.withValues(UInt32.self) { groups($0) }
            case .int64: data.withValues(Int64.self) { groups($0) }
            case .uint64: data.withValues(UInt64.self) { groups($0) }
            case .float: data.withValues(Float.self) { groups($0) }
            case .double: data.withValues(Double.self) { groups($0) }
            case .float16: data.withValues(Float16.self) { groups($0) }
            default: groups(data.doubles())
            }
        }
    }
}
