import OnnxcCore

/// Shape operators. They only move elements, so each is written once for every element type: copies go
/// through `ShapeKernels.build`, which moves raw bytes by element width (strings by value, 4-bit types
/// unpacked to one nibble per byte and repacked). The same machinery serves IndexingKernels and GeneratorKernels.
enum ShapeKernels {
    static let table: [String: Kernel] = [
        "Identity": identity,
        "Reshape": reshape,
        "Flatten": flatten,
        "Squeeze": squeeze,
        "Unsqueeze": unsqueeze,
        "Transpose": transpose,
        "Concat": concat,
        "Split": split,
        "Expand": expand,
        "Tile": tile,
        "Pad": pad,
        "Shape": shapeOf,
        "Size": size,
        "DepthToSpace": depthToSpace,
        "SpaceToDepth": spaceToDepth,
        "Trilu": trilu,
        "ReverseSequence": reverseSequence,
        "Compress": compress,
        "Col2Im": col2Im,
    ]

    // MARK: - Views (no copy: reshaped tensors share storage)

    /// Passes any value through, including sequences and empty optionals.
    static func identity(_ inputs: [Value?], _ context: KernelContext) throws(RuntimeError) -> [Value?] {
        guard let value = inputs.first ?? nil else { throw .invalidArgument("Identity needs input 0, which is missing") }
        return [value]
    }

    static func reshape(_ inputs: [Value?], _ context: KernelContext) throws(RuntimeError) -> [Value?] {
        let data = try context.tensor(inputs, 0)
        let requested: [Int64]
        if context.opset < 5 {
            guard let shape = context.attributes.ints("shape") else { throw .invalidArgument("Reshape-1 needs a shape attribute") }
            requested = shape
        } else {
            requested = try context.tensor(inputs, 1).int64s()
        }
        let allowZero = context.attributes.int("allowzero", 0) != 0
        var shape = [Int](repeating: 0, count: requested.count)
        var inferred: Int?
        var known = 1
        for (i, dim) in requested.enumerated() {
            switch dim {
            case -1:
                guard inferred == nil else { throw .invalidShape("Reshape: more than one -1 in shape \(requested)") }
                inferred = i
                continue
            case 0 where !allowZero:
                guard i < data.rank else { throw .invalidShape("Reshape: 0 at position \(i) copies a dim the input \(data.shape) lacks") }
                shape[i] = data.shape[i]
            default:
                guard dim >= 0, let d = Int(exactly: dim) else { throw .invalidShape("Reshape: invalid dim \(dim) in shape \(requested)") }
                shape[i] = d
            }
            let (product, overflow) = known.multipliedReportingOverflow(by: shape[i])
            guard !overflow else { throw .invalidShape("Reshape: shape \(requested) is too large") }
            known = product
        }
        if let inferred {
            guard known > 0, data.count % known == 0 else {
                throw .invalidShape("Reshape: cannot infer -1 in \(requested) for input \(data.shape) (\(data.count) elements)")
            }
            shape[inferred] = data.count / known
        }
        return outputs(try data.reshaped(shape))
    }

    static func flatten(_ inputs: [Value?], _ context: KernelContext) throws(RuntimeError) -> [Value?] {
        let data = try context.tensor(inputs, 0)
        let axis = context.attributes.int("axis", 1)
        let a = axis < 0 ? Int(axis) + data.rank : Int(axis)
        guard a >= 0 && a <= data.rank else { throw .invalidArgument("Flatten: axis \(axis) is out of range for rank \(data.rank)") }
        let outer = data.shape[..<a].reduce(1, *)
        let inner = data.shape[a...].reduce(1, *)
        return outputs(try data.reshaped([outer, inner]))
    }

    /// Axes from the attribute (before `inputFrom`) or from input 1 (from that opset on).
    static func axesArgument(_ inputs: [Value?], _ context: KernelContext, inputFrom opset: Int, index: Int = 1) throws(RuntimeError) -> [Int64]? {
        if context.opset < opset { return context.attributes.ints("axes") }
        return try context.optionalTensor(inputs, index)?.int64s()
    }

    /// Normalizes axes against `rank`, rejecting out-of-range and repeated ones.
    static func normalizedAxes(_ axes: [Int64], rank: Int, op: String) throws(RuntimeError) -> [Int] {
        var seen = Set<Int>()
        var result: [Int] = []
        for axis in axes {
            let a = axis < 0 ? Int(axis) + rank : Int(axis)
            guard a >= 0 && a < rank else { throw .invalidArgument("\(op): axis \(axis) is out of range for rank \(rank)") }
            guard seen.insert(a).inserted else { throw .invalidArgument("\(op): axis \(axis) is repeated") }
            result.append(a)
        }
        return result
    }

    static func squeeze(_ inputs: [Value?], _ context: KernelContext) throws(RuntimeError) -> [Value?] {
        let data = try context.tensor(inputs, 0)
        let shape: [Int]
        if let axes = try axesArgument(inputs, context, inputFrom: 13) {
            let remove = Set(try normalizedAxes(axes, rank: data.rank, op: "Squeeze"))
            for a in remove where data.shape[a] != 1 {
                throw .invalidShape("Squeeze: axis \(a) of shape \(data.shape) has size \(data.shape[a]), not 1")
            }
            shape = data.shape.indices.filter { !remove.contains($0) }.map { data.shape[$0] }
        } else {
            shape = data.shape.filter { $0 != 1 }
        }
        return outputs(try data.reshaped(shape))
    }

    static func unsqueeze(_ inputs: [Value?], _ context: KernelContext) throws(RuntimeError) -> [Value?] {
        let data = try context.tensor(inputs, 0)
        guard let axes = try axesArgument(inputs, context, inputFrom: 13) else { throw .invalidArgument("Unsqueeze needs axes") }
        let rank = data.rank + axes.count
        let inserted = Set(try normalizedAxes(axes, rank: rank, op: "Unsqueeze"))
        var shape: [Int] = []
        var next = data.shape.makeIterator()
        for i in 0..<rank { shape.append(inserted.contains(i) ? 1 : next.next() ?? 1) }
        return outputs(try data.reshaped(shape))
    }

    static func shapeOf(_ inputs: [Value?], _ context: KernelContext) throws(RuntimeError) -> [Value?] {
        let data = try context.tensor(inputs, 0)
        let rank = data.rank
        func clamp(_ v: Int64) -> Int { let x = v < 0 ? v + Int64(rank) : v; return Int(min(max(x, 0), Int64(rank))) }
        let start = clamp(context.attributes.int("start", 0))
        let end = context.attributes.int("end").map(clamp) ?? rank
        let dims = start < end ? data.shape[start..<end].map(Int64.init) : []
        return outputs(try Tensor(dims, shape: [dims.count]))
    }

    static func size(_ inputs: [Value?], _ context: KernelContext) throws(RuntimeError) -> [Value?] {
        outputs(Tensor.scalar(Int64(try context.tensor(inputs, 0).count)))
    }

    // MARK: - Copies

    static func transpose(_ inputs: [Value?], _ context: KernelContext) throws(RuntimeError) -> [Value?] {
        let data = try context.tensor(inputs, 0)
        let rank = data.rank
        let perm: [Int]
        if let given = context.attributes.ints("perm") {
            guard given.count == rank else { throw .invalidArgument("Transpose: perm \(given) does not match rank \(rank)") }
            perm = try normalizedAxes(given, rank: rank, op: "Transpose")
        } else {
            perm = Array((0..<rank).reversed())
        }
        return outputs(try permuted(data, perm))
    }

    /// `data` with its axes reordered: output axis i is input axis perm[i].
    static func permuted(_ data: Tensor, _ perm: [Int]) throws(RuntimeError) -> Tensor {
        if data.dtype.storageBytes == 4, data.dtype != .string, let (batch, rows, columns) = batchedTranspose(data.shape, perm),
           rows <= Int(Int32.max), columns <= Int(Int32.max), batch <= Int(Int32.max) {
            // NCHW ↔ NHWC and every other permutation that is a batch of 2-D transposes: a cache-tiled copy.
            let out = try Tensor(uninitialized: data.dtype, shape: perm.map { data.shape[$0] })
            data.withBytes { source in
                out.withMutableBytes { target in
                    guard let x = source.baseAddress, let y = target.baseAddress else { return }
                    ChannelsLast.transpose(batch: batch, rows: rows, columns: columns, x: x, y: y)
                }
            }
            return out
        }
        let strides = Broadcast.strides(data.shape)
        let shape = perm.map { data.shape[$0] }
        return try build(data.dtype, shape, from: [data]) { b throws(RuntimeError) in
            try b.copy(shape, from: 0, at: 0, perm.map { .stride(strides[$0]) }, to: 0, rowMajor(shape))
        }
    }

    /// `perm` on `shape` with size-1 axes dropped and runs of input axes that stay consecutive in the output merged
    /// into one axis: the merged permutation (output position → merged input axis) and the merged sizes in input
    /// order. Nil for empty tensors.
    static func mergedPermutation(_ shape: [Int], _ perm: [Int]) -> (perm: [Int], sizes: [Int])? {
        guard shape.allSatisfy({ $0 > 0 }) else { return nil }
        var groups: [[Int]] = []
        for axis in perm where shape[axis] != 1 {
            if let last = groups.last?.last, axis == last + 1 { groups[groups.count - 1].append(axis) } else { groups.append([axis]) }
        }
        let order = groups.indices.sorted { groups[$0][0] < groups[$1][0] }  // merged axes in input order
        return (groups.indices.map { order.firstIndex(of: $0) ?? 0 }, order.map { groups[$0].reduce(1) { $0 * shape[$1] } })
    }

    /// (batch, rows, columns) when permuting `shape` by `perm` moves a block of rows × columns to columns × rows,
    /// batch times, with everything else in place: the merged permutation is [1, 0] or [0, 2, 1]. Nil otherwise
    /// (and for empty tensors).
    static func batchedTranspose(_ shape: [Int], _ perm: [Int]) -> (Int, Int, Int)? {
        guard let (merged, sizes) = mergedPermutation(shape, perm) else { return nil }
        if merged == [1, 0] { return (1, sizes[0], sizes[1]) }
        if merged == [0, 2, 1] { return (sizes[0], sizes[1], sizes[2]) }
        return nil
    }

    /// A transpose that swaps two axes groups and keeps the innermost one in place — [B, R, C, K] → [B, C, R, K]
    /// as merged (attention's head split and merge, [1, S, H, D] ↔ [1, H, S, D]): (B, R, C, K), so it runs as copies
    /// of K-element blocks; nil for any other permutation.
    static func blockTranspose(_ shape: [Int], _ perm: [Int]) -> (batch: Int, rows: Int, columns: Int, inner: Int)? {
        guard let (merged, sizes) = mergedPermutation(shape, perm) else { return nil }
        if merged == [1, 0, 2] { return (1, sizes[0], sizes[1], sizes[2]) }
        if merged == [0, 2, 1, 3] { return (sizes[0], sizes[1], sizes[2], sizes[3]) }
        return nil
    }

    static func concat(_ inputs: [Value?], _ context: KernelContext) throws(RuntimeError) -> [Value?] {
        var tensors: [Tensor] = []
        for i in inputs.indices { tensors.append(try context.tensor(inputs, i)) }
        guard let first = tensors.first else { throw .invalidArgument("Concat needs at least one input") }
        let axisValue = context.attributes.int("axis") ?? (context.opset < 4 ? 1 : nil)
        guard let axisValue else { throw .invalidArgument("Concat needs an axis attribute") }
        let axis = try Broadcast.axis(axisValue, rank: first.rank, op: "Concat")
        guard first.rank > 0 else { throw .invalidShape("Concat cannot join scalars") }
        var shape = first.shape
        shape[axis] = 0
        for t in tensors {
            guard t.dtype == first.dtype else { throw .invalidArgument("Concat: inputs mix \(first.dtype.onnxName) and \(t.dtype.onnxName)") }
            guard t.rank == first.rank, t.shape.indices.allSatisfy({ $0 == axis || t.shape[$0] == first.shape[$0] }) else {
                throw .invalidShape("Concat: shapes \(tensors.map(\.shape)) differ outside axis \(axis)")
            }
            shape[axis] += t.shape[axis]
        }
        let width = first.dtype.storageBytes
        if first.dtype != .string, width > 0 {
            // Each input is `outer` blocks of its slab along the axis: one row copy per input.
            let outer = shape[..<axis].reduce(1, *), inner = shape[(axis + 1)...].reduce(1, *)
            let out = try Tensor(uninitialized: first.dtype, shape: shape)
            let targetRow = shape[axis] * inner * width
            var offset = 0
            for t in tensors {
                let rowBytes = t.shape[axis] * inner * width
                t.withBytes { source in
                    out.withMutableBytes { target in
                        guard let from = source.baseAddress, let to = target.baseAddress else { return }
                        BlockCopy.rows(outer, rowBytes: rowBytes, from: from, stride: rowBytes, to: to + offset, stride: targetRow)
                    }
                }
                offset += rowBytes
            }
            return outputs(out)
        }
        let outStrides = Broadcast.strides(shape)
        return outputs(try build(first.dtype, shape, from: tensors) { b throws(RuntimeError) in
            var offset = 0
            for (i, t) in tensors.enumerated() {
                try b.copy(t.shape, from: i, at: 0, rowMajor(t.shape), to: offset * outStrides[axis], outStrides.map { .stride($0) })
                offset += t.shape[axis]
            }
        })
    }

    static func split(_ inputs: [Value?], _ context: KernelContext) throws(RuntimeError) -> [Value?] {
        let data = try context.tensor(inputs, 0)
        let axis = try Broadcast.axis(context.attributes.int("axis", 0), rank: data.rank, op: "Split")
        let dim = data.shape[axis]
        var given = try context.optionalTensor(inputs, 1)?.int64s()
        if given?.isEmpty == true { given = nil }
        if context.opset < 13, let attribute = context.attributes.ints("split") { given = attribute }
        var sizes: [Int]
        if let given {
            sizes = given.map { Int(clamping: $0) }
            guard sizes.allSatisfy({ $0 >= 0 }), sizes.reduce(0, +) == dim else {
                throw .invalidArgument("Split: sizes \(given) do not add up to dim \(dim) of axis \(axis)")
            }
            guard sizes.count == context.node.outputs.count else {
                throw .invalidArgument("Split: \(sizes.count) sizes for \(context.node.outputs.count) outputs")
            }
        } else {
            let parts = Int(context.attributes.int("num_outputs") ?? Int64(context.node.outputs.count))
            guard parts > 0 else { throw .invalidArgument("Split needs at least one output") }
            // Opset 18: ceil-sized chunks, the last one smaller; earlier opsets require an even split.
            let chunk = (dim + parts - 1) / parts
            guard context.opset >= 18 || dim % parts == 0 else { throw .invalidArgument("Split: dim \(dim) does not split evenly into \(parts)") }
            sizes = (0..<parts).map { max(0, min(chunk, dim - $0 * chunk)) }
        }
        let width = data.dtype.storageBytes
        if data.dtype != .string, width > 0 {
            let outer = data.shape[..<axis].reduce(1, *), inner = data.shape[(axis + 1)...].reduce(1, *)
            let sourceRow = dim * inner * width
            var results: [Value?] = []
            var start = 0
            for size in sizes {
                var shape = data.shape
                shape[axis] = size
                let out = try Tensor(uninitialized: data.dtype, shape: shape)
                let rowBytes = size * inner * width
                data.withBytes { source in
                    out.withMutableBytes { target in
                        guard let from = source.baseAddress, let to = target.baseAddress else { return }
                        BlockCopy.rows(outer, rowBytes: rowBytes, from: from + start * inner * width, stride: sourceRow, to: to, stride: rowBytes)
                    }
                }
                results.append(.tensor(out))
                start += size
            }
            return results
        }
        let strides = Broadcast.strides(data.shape)
        var results: [Value?] = []
        var start = 0
        for size in sizes {
            var shape = data.shape
            shape[axis] = size
            let base = start * strides[axis]
            results.append(.tensor(try build(data.dtype, shape, from: [data]) { b throws(RuntimeError) in
                try b.copy(shape, from: 0, at: base, strides.map { .stride($0) }, to: 0, rowMajor(shape))
            }))
            start += size
        }
        return results
    }

    static func expand(_ inputs: [Value?], _ context: KernelContext) throws(RuntimeError) -> [Value?] {
        let data = try context.tensor(inputs, 0)
        let requested = try context.tensor(inputs, 1).int64s()
        guard requested.allSatisfy({ $0 >= 0 && $0 <= Int64(Int32.max) }) else { throw .invalidShape("Expand: invalid shape \(requested)") }
        let shape = try Broadcast.shape([data.shape, requested.map { Int($0) }])
        return outputs(try broadcasted(data, to: shape))
    }

    /// `data` broadcast to `shape` (which must be a broadcast of its shape).
    static func broadcasted(_ data: Tensor, to shape: [Int]) throws(RuntimeError) -> Tensor {
        let strides = Broadcast.strides(of: data.shape, broadcastTo: shape)
        return try build(data.dtype, shape, from: [data]) { b throws(RuntimeError) in
            try b.copy(shape, from: 0, at: 0, strides.map { .stride($0) }, to: 0, rowMajor(shape))
        }
    }

    static func tile(_ inputs: [Value?], _ context: KernelContext) throws(RuntimeError) -> [Value?] {
        let data = try context.tensor(inputs, 0)
        var repeats = try context.tensor(inputs, 1).int64s()
        if context.opset < 6 {
            // Tile-1: a scalar count of tiles along one axis (input 2).
            guard repeats.count == 1, let axis = try context.tensor(inputs, 2).int64s().first else {
                throw .invalidArgument("Tile-1 needs scalar tiles and axis inputs")
            }
            let a = try Broadcast.axis(axis, rank: data.rank, op: "Tile")
            repeats = (0..<data.rank).map { $0 == a ? repeats[0] : 1 }
        }
        guard repeats.count == data.rank else { throw .invalidArgument("Tile: \(repeats.count) repeats for rank \(data.rank)") }
        guard repeats.allSatisfy({ $0 >= 0 && $0 <= Int64(Int32.max) }) else { throw .invalidArgument("Tile: invalid repeats \(repeats)") }
        let strides = Broadcast.strides(data.shape)
        // The output is the input viewed as [r0, d0, r1, d1, …] with zero strides along the repeats.
        var view: [Int] = [], axes: [Axis] = []
        for i in 0..<data.rank {
            view += [Int(repeats[i]), data.shape[i]]
            axes += [.stride(0), .stride(strides[i])]
        }
        var shape: [Int] = []
        for i in 0..<data.rank {
            let (dim, overflow) = Int(repeats[i]).multipliedReportingOverflow(by: data.shape[i])
            guard !overflow else { throw .invalidShape("Tile: repeats \(repeats) make the output too large") }
            shape.append(dim)
        }
        _ = try checkedCount(shape, op: "Tile")
        return outputs(try build(data.dtype, shape, from: [data]) { b throws(RuntimeError) in
            try b.copy(view, from: 0, at: 0, axes, to: 0, rowMajor(view))
        })
    }

    static func pad(_ inputs: [Value?], _ context: KernelContext) throws(RuntimeError) -> [Value?] {
        let data = try context.tensor(inputs, 0)
        let rank = data.rank
        let mode = context.attributes.string("mode", "constant")
        var raw: [Int64]
        var value: Tensor?
        var axes = Array(0..<rank)
        if context.opset < 11 {
            guard let p = context.attributes.ints(context.opset < 2 ? "paddings" : "pads") else { throw .invalidArgument("Pad needs pads") }
            raw = p
            let v = Double(context.attributes.float("value", 0))
            if v != 0 { value = try scalar(v, as: data.dtype, op: "Pad") }
        } else {
            raw = try context.tensor(inputs, 1).int64s()
            value = try context.optionalTensor(inputs, 2)
            if value?.count == 0 { value = nil }
            if let v = value {
                guard v.count == 1 else { throw .invalidArgument("Pad: constant_value must have one element, has \(v.count)") }
                guard v.dtype == data.dtype else { throw .invalidArgument("Pad: constant_value is \(v.dtype.onnxName), data is \(data.dtype.onnxName)") }
            }
            if let given = try context.optionalTensor(inputs, 3)?.int64s() {
                axes = try normalizedAxes(given, rank: rank, op: "Pad")
            }
        }
        guard raw.count == 2 * axes.count else { throw .invalidArgument("Pad: \(raw.count) pads for \(axes.count) axes") }
        guard raw.allSatisfy({ (-Int64(Int32.max)...Int64(Int32.max)).contains($0) }) else { throw .invalidArgument("Pad: pads \(raw) are out of range") }
        var before = [Int](repeating: 0, count: rank), after = before
        for (i, a) in axes.enumerated() {
            before[a] = Int(clamping: raw[i])
            after[a] = Int(clamping: raw[axes.count + i])
        }
        // Negative pads crop first; the cropped tensor is then padded.
        var cropStart = [Int](repeating: 0, count: rank), kept = data.shape, shape = data.shape
        for d in 0..<rank {
            cropStart[d] = max(-before[d], 0)
            kept[d] = data.shape[d] - cropStart[d] - max(-after[d], 0)
            guard kept[d] >= 0 else { throw .invalidArgument("Pad: pads \(raw) crop more than dim \(d) of \(data.shape)") }
            before[d] = max(before[d], 0)
            after[d] = max(after[d], 0)
            shape[d] = kept[d] + before[d] + after[d]
        }
        _ = try checkedCount(shape, op: "Pad")
        let inStrides = Broadcast.strides(data.shape), outStrides = Broadcast.strides(shape)
        let base = (0..<rank).reduce(0) { $0 + cropStart[$1] * inStrides[$1] }
        switch mode {
        case "constant":
            let fill: Tensor
            if let value { fill = value } else { fill = try Tensor(zeros: data.dtype, shape: []) }
            return outputs(try build(data.dtype, shape, from: [data, fill]) { b throws(RuntimeError) in
                try b.fill(from: 1, at: 0)
                let at = (0..<rank).reduce(0) { $0 + before[$1] * outStrides[$1] }
                try b.copy(kept, from: 0, at: base, inStrides.map { .stride($0) }, to: at, outStrides.map { .stride($0) })
            })
        case "edge", "reflect", "wrap":
            var maps: [Axis] = []
            for d in 0..<rank {
                let n = kept[d]
                if n == 0 && shape[d] > 0 { throw .invalidArgument("Pad: \(mode) mode cannot pad the empty axis \(d)") }
                var table = [Int](repeating: 0, count: shape[d])
                for j in 0..<shape[d] {
                    let p = j - before[d]
                    var source: Int
                    if p >= 0 && p < n {
                        source = p
                    } else if mode == "edge" {
                        source = min(max(p, 0), n - 1)
                    } else if mode == "wrap" {
                        source = ((p % n) + n) % n
                    } else if n == 1 {
                        source = 0
                    } else {
                        let period = 2 * (n - 1)
                        source = ((p % period) + period) % period
                        if source >= n { source = period - source }
                    }
                    table[j] = source * inStrides[d]
                }
                maps.append(.table(table))
            }
            return outputs(try build(data.dtype, shape, from: [data]) { b throws(RuntimeError) in
                try b.copy(shape, from: 0, at: base, maps, to: 0, rowMajor(shape))
            })
        default:
            throw .invalidArgument("Pad: unknown mode \(mode)")
        }
    }

    static func depthToSpace(_ inputs: [Value?], _ context: KernelContext) throws(RuntimeError) -> [Value?] {
        let data = try context.tensor(inputs, 0)
        let block = Int(clamping: context.attributes.int("blocksize", 0))
        guard data.rank == 4 else { throw .invalidShape("DepthToSpace needs a 4-D input, got \(data.shape)") }
        guard block > 0, block <= Int(Int32.max), data.shape[1] % (block * block) == 0 else {
            throw .invalidArgument("DepthToSpace: channels \(data.shape[1]) are not a multiple of blocksize² (blocksize \(block))")
        }
        let (n, c, h, w) = (data.shape[0], data.shape[1] / (block * block), data.shape[2], data.shape[3])
        _ = try checkedCount([n, c, h, block, w, block], op: "DepthToSpace")
        let crd = context.attributes.string("mode", "DCR") == "CRD"
        let view = crd ? [n, c, block, block, h, w] : [n, block, block, c, h, w]
        let perm = crd ? [0, 1, 4, 2, 5, 3] : [0, 3, 4, 1, 5, 2]
        return outputs(try permuted(try data.reshaped(view), perm).reshaped([n, c, h * block, w * block]))
    }

    static func spaceToDepth(_ inputs: [Value?], _ context: KernelContext) throws(RuntimeError) -> [Value?] {
        let data = try context.tensor(inputs, 0)
        let block = Int(clamping: context.attributes.int("blocksize", 0))
        guard data.rank == 4 else { throw .invalidShape("SpaceToDepth needs a 4-D input, got \(data.shape)") }
        guard block > 0, block <= Int(Int32.max), data.shape[2] % block == 0, data.shape[3] % block == 0 else {
            throw .invalidArgument("SpaceToDepth: spatial dims \(data.shape[2...]) are not multiples of blocksize \(block)")
        }
        let (n, c, h, w) = (data.shape[0], data.shape[1], data.shape[2] / block, data.shape[3] / block)
        _ = try checkedCount([n, c, block, block, h, w], op: "SpaceToDepth")
        let moved = try permuted(try data.reshaped([n, c, h, block, w, block]), [0, 3, 5, 1, 2, 4])
        return outputs(try moved.reshaped([n, c * block * block, h, w]))
    }

    static func trilu(_ inputs: [Value?], _ context: KernelContext) throws(RuntimeError) -> [Value?] {
        let data = try context.tensor(inputs, 0)
        guard data.rank >= 2 else { throw .invalidShape("Trilu needs rank >= 2, got \(data.shape)") }
        let k = try context.optionalTensor(inputs, 1)?.int64s().first ?? 0
        let upper = context.attributes.int("upper", 1) != 0
        let rows = data.shape[data.rank - 2], cols = data.shape[data.rank - 1]
        let matrices = rows * cols == 0 ? 0 : data.count / (rows * cols)
        // Kept columns per row i: [i + k, cols) when upper, [0, i + k] when lower (clamped; k may be huge).
        let kk = Int(clamping: max(min(k, Int64(Int32.max)), Int64(Int32.min)))
        return outputs(try build(data.dtype, data.shape, from: [data]) { b throws(RuntimeError) in
            for m in 0..<matrices {
                for i in 0..<rows {
                    let lo = upper ? max(0, min(cols, i + kk)) : 0
                    let hi = upper ? cols : max(0, min(cols, i + kk + 1))
                    guard hi > lo else { continue }
                    let at = (m * rows + i) * cols + lo
                    try b.copy([hi - lo], from: 0, at: at, [.stride(1)], to: at, [.stride(1)])
                }
            }
        })
    }

    static func reverseSequence(_ inputs: [Value?], _ context: KernelContext) throws(RuntimeError) -> [Value?] {
        let data = try context.tensor(inputs, 0)
        let lengths = try context.tensor(inputs, 1).int64s()
        guard data.rank >= 2 else { throw .invalidShape("ReverseSequence needs rank >= 2, got \(data.shape)") }
        let batchAxis = try Broadcast.axis(context.attributes.int("batch_axis", 1), rank: data.rank, op: "ReverseSequence")
        let timeAxis = try Broadcast.axis(context.attributes.int("time_axis", 0), rank: data.rank, op: "ReverseSequence")
        guard batchAxis != timeAxis else { throw .invalidArgument("ReverseSequence: batch_axis and time_axis are both \(batchAxis)") }
        let batch = data.shape[batchAxis], time = data.shape[timeAxis]
        guard lengths.count == batch else { throw .invalidArgument("ReverseSequence: \(lengths.count) lengths for batch \(batch)") }
        let strides = Broadcast.strides(data.shape)
        var shape = data.shape
        shape[batchAxis] = 1
        return outputs(try build(data.dtype, data.shape, from: [data]) { b throws(RuntimeError) in
            for (i, length) in lengths.enumerated() {
                guard length >= 0 && length <= Int64(time) else {
                    throw .invalidArgument("ReverseSequence: length \(length) is outside [0, \(time)]")
                }
                let n = Int(length)
                let order = (0..<time).map { t in (t < n ? n - 1 - t : t) * strides[timeAxis] }
                var axes = strides.map { Axis.stride($0) }
                axes[timeAxis] = .table(order)
                let base = i * strides[batchAxis]
                try b.copy(shape, from: 0, at: base, axes, to: base, strides.map { .stride($0) })
            }
        })
    }

    static func compress(_ inputs: [Value?], _ context: KernelContext) throws(RuntimeError) -> [Value?] {
        var data = try context.tensor(inputs, 0)
        let condition = try context.tensor(inputs, 1)
        guard condition.rank == 1 else { throw .invalidShape("Compress: condition must be 1-D, got \(condition.shape)") }
        let axis: Int
        if let given = context.attributes.int("axis") {
            axis = try Broadcast.axis(given, rank: data.rank, op: "Compress")
        } else {
            data = try data.reshaped([data.count])
            axis = 0
        }
        let flags = condition.doubles()
        var selected: [Int] = []
        for (i, flag) in flags.enumerated() where flag != 0 {
            guard i < data.shape[axis] else { throw .invalidArgument("Compress: condition selects index \(i) beyond dim \(data.shape[axis])") }
            selected.append(i)
        }
        return outputs(try gather(data, axis: axis, indices: selected, indicesShape: [selected.count]))
    }

    /// Gathers slices of `data` along `axis` at validated, non-negative `indices` (shaped `indicesShape`).
    static func gather(_ data: Tensor, axis: Int, indices: [Int], indicesShape: [Int]) throws(RuntimeError) -> Tensor {
        let outer = data.shape[..<axis].reduce(1, *), dim = data.shape[axis], inner = data.shape[(axis + 1)...].reduce(1, *)
        let shape = Array(data.shape[..<axis]) + indicesShape + Array(data.shape[(axis + 1)...])
        let view = [outer, indices.count, inner]
        return try build(data.dtype, shape, from: [data]) { b throws(RuntimeError) in
            try b.copy(view, from: 0, at: 0, [.stride(dim * inner), .table(indices.map { $0 * inner }), .stride(1)], to: 0, rowMajor(view))
        }
    }

    // MARK: - Col2Im

    static func col2Im(_ inputs: [Value?], _ context: KernelContext) throws(RuntimeError) -> [Value?] {
        let data = try context.tensor(inputs, 0)
        let image = try context.tensor(inputs, 1).int64s().map { Int(clamping: $0) }
        let block = try context.tensor(inputs, 2).int64s().map { Int(clamping: $0) }
        let n = image.count
        let limit = Int(Int32.max)
        let attributeValues = ["dilations", "strides", "pads"].flatMap { context.attributes.ints($0) ?? [] }
        guard (image + block).allSatisfy({ $0 <= limit }), attributeValues.allSatisfy({ (-Int64(limit)...Int64(limit)).contains($0) }) else {
            throw .invalidArgument("Col2Im: image_shape \(image), block_shape \(block) or attributes are out of range")
        }
        guard n > 0, block.count == n, data.rank == 3 else {
            throw .invalidShape("Col2Im: input \(data.shape), image_shape \(image), block_shape \(block) are inconsistent")
        }
        let attributes = context.attributes
        let dilations = attributes.ints("dilations")?.map { Int(clamping: $0) } ?? Array(repeating: 1, count: n)
        let strides = attributes.ints("strides")?.map { Int(clamping: $0) } ?? Array(repeating: 1, count: n)
        let pads = attributes.ints("pads")?.map { Int(clamping: $0) } ?? Array(repeating: 0, count: 2 * n)
        guard dilations.count == n, strides.count == n, pads.count == 2 * n,
              dilations.allSatisfy({ $0 > 0 }), strides.allSatisfy({ $0 > 0 }), block.allSatisfy({ $0 > 0 }), image.allSatisfy({ $0 >= 0 })
        else { throw .invalidArgument("Col2Im: dilations \(dilations), strides \(strides), pads \(pads) do not fit \(n) spatial dims") }
        var positions: [Int] = []
        for d in 0..<n {
            let span = dilations[d] * (block[d] - 1) + 1
            positions.append(max(0, (image[d] + pads[d] + pads[n + d] - span) / strides[d] + 1))
        }
        let blockSize = block.reduce(1, *), sliding = positions.reduce(1, *)
        guard data.shape[1] % blockSize == 0, data.shape[2] == sliding else {
            throw .invalidShape("Col2Im: input \(data.shape) does not match \(blockSize) block elements and \(sliding) positions")
        }
        let batch = data.shape[0], channels = data.shape[1] / blockSize
        _ = try checkedCount([batch, channels] + image, op: "Col2Im")
        let plan = Col2ImPlan(data: data, shape: [batch, channels] + image, image: image, block: block, positions: positions,
                              dilations: dilations, strides: strides, padBegin: Array(pads[..<n]))
        return outputs(try dispatchArithmetic(data.dtype, op: "Col2Im", plan))
    }

    /// Sums every column entry into the image position it came from.
    struct Col2ImPlan: ArithmeticVisitor {
        let data: Tensor, shape: [Int], image: [Int], block: [Int], positions: [Int], dilations: [Int], strides: [Int], padBegin: [Int]

        func visit<T: ArithmeticElement>(_: T.Type) throws(RuntimeError) -> Tensor {
            let out = try Tensor(zeros: T.dtype, shape: shape)
            let n = image.count
            let blockSize = block.reduce(1, *), sliding = positions.reduce(1, *), imageSize = image.reduce(1, *)
            let planes = shape[0] * shape[1]
            let imageStrides = Broadcast.strides(image)
            data.withValues(T.self) { src in
                out.withMutableValues(T.self) { dst in
                    var b = [Int](repeating: 0, count: n), l = [Int](repeating: 0, count: n)
                    for plane in 0..<planes {
                        for k in 0..<blockSize {
                            var rest = k
                            for d in stride(from: n - 1, through: 0, by: -1) { b[d] = rest % block[d]; rest /= block[d] }
                            let row = (plane * blockSize + k) * sliding
                            for p in 0..<sliding {
                                var rest = p, offset = 0, inside = true
                                for d in stride(from: n - 1, through: 0, by: -1) {
                                    l[d] = rest % positions[d]; rest /= positions[d]
                                    let x = l[d] * strides[d] - padBegin[d] + b[d] * dilations[d]
                                    if x < 0 || x >= image[d] { inside = false; break }
                                    offset += x * imageStrides[d]
                                }
                                if inside { dst[plane * imageSize + offset] += src[row + p] }
                            }
                        }
                    }
                }
            }
            return out
        }
    }
}

// MARK: - Type-agnostic element movement

extension ShapeKernels {
    /// How one axis of a copy addresses memory, in elements: a fixed stride (0 repeats, negative reverses), or an
    /// explicit offset per index (gathers, scatters, reflect/edge/wrap padding).
    enum Axis {
        case stride(Int)
        case table([Int])

        func offset(_ i: Int) -> Int {
            switch self {
            case .stride(let s): i * s
            case .table(let t): t[i]
            }
        }

        /// The smallest and largest offset over `count` indices (count > 0).
        func range(_ count: Int) -> (Int, Int) {
            switch self {
            case .stride(let s): s >= 0 ? (0, (count - 1) * s) : ((count - 1) * s, 0)
            case .table(let t): (t.min() ?? 0, t.max() ?? 0)
            }
        }
    }

    static func rowMajor(_ shape: [Int]) -> [Axis] { Broadcast.strides(shape).map { .stride($0) } }

    /// The element count of a shape computed from inputs, or an error when it is negative or overflows.
    static func checkedCount(_ shape: [Int], op: String) throws(RuntimeError) -> Int {
        guard let count = CheckedSize.elementCount(shape.map { Int64($0) }) else { throw .invalidShape("\(op): shape \(shape) is invalid or too large") }
        return count
    }

    /// Builds a `dtype` tensor of `shape` by copying elements of `sources` (all of `dtype`) in `body`.
    /// The output starts zero-filled (empty strings).
    static func build(_ dtype: DType, _ shape: [Int], from sources: [Tensor],
                      _ body: (inout Builder) throws(RuntimeError) -> Void) throws(RuntimeError) -> Tensor {
        for source in sources where source.dtype != dtype {
            throw .invalidArgument("internal: copying \(source.dtype.onnxName) elements into a \(dtype.onnxName) tensor")
        }
        switch dtype {
        case .string:
            let out = try Tensor(zeros: .string, shape: shape)
            var strings = out.strings ?? []
            let sourceStrings = sources.map { $0.strings ?? [] }
            try strings.withUnsafeMutableBufferPointer { buffer throws(RuntimeError) in
                var builder = Builder(storage: .strings(buffer, sourceStrings), counts: sourceStrings.map(\.count), outputCount: out.count)
                try body(&builder)
            }
            return Tensor(strings: strings, shape: shape)
        case .int4, .uint4:
            var unpacked: [Tensor] = []
            for source in sources { unpacked.append(try nibbles(source)) }
            let out = try buildRaw(.uint8, shape, unpacked, body)
            return try packNibbles(out, as: dtype)
        case .undefined:
            throw .unsupportedType(op: "copy", dtype: dtype.onnxName)
        default:
            return try buildRaw(dtype, shape, sources, body)
        }
    }

    private static func buildRaw(_ dtype: DType, _ shape: [Int], _ sources: [Tensor],
                                 _ body: (inout Builder) throws(RuntimeError) -> Void) throws(RuntimeError) -> Tensor {
        let out = try Tensor(zeros: dtype, shape: shape)
        // Source storages stay alive through `sources` for the whole body.
        try withExtendedLifetime(sources) { () throws(RuntimeError) in
            let pointers = sources.map { t in t.withBytes { $0.baseAddress } }
            try out.withMutableBytes { dst throws(RuntimeError) in
                var builder = Builder(storage: .raw(dst.baseAddress, pointers, dtype.storageBytes),
                                      counts: sources.map(\.count), outputCount: out.count)
                try body(&builder)
            }
        }
        return out
    }

    /// A 4-bit tensor as one unsigned nibble per byte (uint8).
    private static func nibbles(_ t: Tensor) throws(RuntimeError) -> Tensor {
        let out = try Tensor(zeros: .uint8, shape: t.shape)
        t.withBytes { src in
            out.withMutableBytes { dst in
                for i in 0..<t.count { dst[i] = i % 2 == 0 ? src[i / 2] & 0x0F : src[i / 2] >> 4 }
            }
        }
        return out
    }

    private static func packNibbles(_ t: Tensor, as dtype: DType) throws(RuntimeError) -> Tensor {
        let out = try Tensor(zeros: dtype, shape: t.shape)
        t.withBytes { src in
            out.withMutableBytes { dst in
                for i in 0..<t.count { dst[i / 2] |= (src[i] & 0x0F) << (i % 2 == 0 ? 0 : 4) }
            }
        }
        return out
    }

    /// Copies elements into the tensor being built; offsets are validated against the tensors' sizes.
    struct Builder {
        enum Storage {
            case raw(UnsafeMutableRawPointer?, [UnsafeRawPointer?], Int)
            case strings(UnsafeMutableBufferPointer<String>, [[String]])
        }
        let storage: Storage
        let counts: [Int]
        let outputCount: Int

        /// out[dstBase + Σ dst_d(i_d)] = sources[source][srcBase + Σ src_d(i_d)] for every index i of `shape`.
        func copy(_ shape: [Int], from source: Int, at srcBase: Int, _ src: [Axis], to dstBase: Int, _ dst: [Axis]) throws(RuntimeError) {
            guard source < counts.count, src.count == shape.count, dst.count == shape.count else {
                throw .invalidArgument("internal: malformed element copy")
            }
            for i in shape.indices {
                for axis in [src[i], dst[i]] {
                    if case .table(let t) = axis, t.count != shape[i] { throw .invalidArgument("internal: offset table does not match its dim") }
                }
            }
            if shape.contains(0) { return }
            // Drop unit dims and merge contiguous strided ones so inner runs are as long as possible.
            var dims: [Int] = [], s: [Axis] = [], d: [Axis] = []
            var sb = srcBase, db = dstBase
            for i in shape.indices {
                if shape[i] == 1 { sb += src[i].offset(0); db += dst[i].offset(0); continue }
                if case .stride(let ss) = src[i], case .stride(let ds) = dst[i], let last = dims.last,
                   case .stride(let ls)? = s.last, case .stride(let ld)? = d.last, ls == ss * shape[i], ld == ds * shape[i] {
                    dims[dims.count - 1] = last * shape[i]
                    s[s.count - 1] = .stride(ss)
                    d[d.count - 1] = .stride(ds)
                    continue
                }
                dims.append(shape[i]); s.append(src[i]); d.append(dst[i])
            }
            try check(dims, sb, s, counts[source], "source")
            try check(dims, db, d, outputCount, "output")
            switch storage {
            case .raw(let out, let sources, let width):
                guard let out, let input = sources[source] else { return }
                switch width {
                case 1: blockedWalk(RawLane(out, input, UInt8.self), dims, sb, s, db, d)
                case 2: blockedWalk(RawLane(out, input, UInt16.self), dims, sb, s, db, d)
                case 4: blockedWalk(RawLane(out, input, UInt32.self), dims, sb, s, db, d)
                case 8: blockedWalk(RawLane(out, input, UInt64.self), dims, sb, s, db, d)
                case 16: blockedWalk(RawLane(out, input, Wide.self), dims, sb, s, db, d)
                default: throw .invalidArgument("internal: no element copy for width \(width)")
                }
            case .strings(let out, let sources):
                walk(StringLane(out: out, source: sources[source]), dims, sb, s, db, d)
            }
        }

        /// Sets every output element to sources[source][index].
        func fill(from source: Int, at index: Int) throws(RuntimeError) {
            guard source < counts.count, index >= 0, index < counts[source] else { throw .invalidArgument("internal: fill index out of range") }
            try copy([outputCount], from: source, at: index, [.stride(0)], to: 0, [.stride(1)])
        }

        private func check(_ dims: [Int], _ base: Int, _ axes: [Axis], _ limit: Int, _ side: String) throws(RuntimeError) {
            var lo = base, hi = base
            for (i, axis) in axes.enumerated() {
                let (a, b) = axis.range(dims[i])
                lo += a
                hi += b
            }
            guard lo >= 0, hi < limit else { throw .invalidArgument("internal: \(side) offsets [\(lo), \(hi)] outside \(limit) elements") }
        }
    }

    fileprivate struct Wide { var low: UInt64, high: UInt64 }
}

private protocol Lane {
    func move(_ dst: Int, _ src: Int)
    func run(_ dst: Int, _ src: Int, _ count: Int)
}

private struct RawLane<E>: Lane {
    let out: UnsafeMutablePointer<E>
    let input: UnsafePointer<E>
    init(_ out: UnsafeMutableRawPointer, _ input: UnsafeRawPointer, _: E.Type) {
        self.out = out.assumingMemoryBound(to: E.self)
        self.input = input.assumingMemoryBound(to: E.self)
    }
    @inline(__always) func move(_ dst: Int, _ src: Int) { out[dst] = input[src] }
    @inline(__always) func run(_ dst: Int, _ src: Int, _ count: Int) { (out + dst).update(from: input + src, count: count) }
}

private struct StringLane: Lane {
    let out: UnsafeMutableBufferPointer<String>
    let source: [String]
    func move(_ dst: Int, _ src: Int) { out[dst] = source[src] }
    func run(_ dst: Int, _ src: Int, _ count: Int) { for i in 0..<count { out[dst + i] = source[src + i] } }
}

/// Transposing copies read the innermost dim with a large stride; when another dim is contiguous in the source,
/// copy in square tiles of those two dims (moved innermost) so each tile's cache lines are reused. Element moves
/// are independent, so reordering is safe; copies with offset tables (scatters, whose duplicates are ordered) are
/// never reordered.
private func blockedWalk<L: Lane>(_ lane: L, _ shape: [Int], _ srcBase: Int, _ src: [ShapeKernels.Axis], _ dstBase: Int, _ dst: [ShapeKernels.Axis]) {
    let tile = 32
    let rank = shape.count
    var sourceStrides: [Int] = [], destinationStrides: [Int] = []
    for i in 0..<rank {
        guard case .stride(let a) = src[i], case .stride(let b) = dst[i] else { return walk(lane, shape, srcBase, src, dstBase, dst) }
        sourceStrides.append(a)
        destinationStrides.append(b)
    }
    guard rank >= 2, shape[rank - 1] >= tile, sourceStrides[rank - 1] != 1,
          let j = (0..<(rank - 1)).last(where: { sourceStrides[$0] == 1 && shape[$0] >= tile })
    else { return walk(lane, shape, srcBase, src, dstBase, dst) }
    let others = (0..<(rank - 1)).filter { $0 != j }
    let order = others + [j, rank - 1]
    var tileShape = order.map { shape[$0] }
    let tileSource = order.map { ShapeKernels.Axis.stride(sourceStrides[$0]) }
    let tileDestination = order.map { ShapeKernels.Axis.stride(destinationStrides[$0]) }
    let last = rank - 1
    for jb in stride(from: 0, to: shape[j], by: tile) {
        tileShape[rank - 2] = min(tile, shape[j] - jb)
        for lb in stride(from: 0, to: shape[last], by: tile) {
            tileShape[rank - 1] = min(tile, shape[last] - lb)
            walk(lane, tileShape, srcBase + jb * sourceStrides[j] + lb * sourceStrides[last], tileSource,
                 dstBase + jb * destinationStrides[j] + lb * destinationStrides[last], tileDestination)
        }
    }
}

/// Odometer over the outer dims; the innermost dim is a plain loop (a block move when both sides are contiguous).
private func walk<L: Lane>(_ lane: L, _ shape: [Int], _ srcBase: Int, _ src: [ShapeKernels.Axis], _ dstBase: Int, _ dst: [ShapeKernels.Axis]) {
    let rank = shape.count
    guard rank > 0 else { lane.move(dstBase, srcBase); return }
    var s = srcBase, d = dstBase
    for i in 0..<rank - 1 { s += src[i].offset(0); d += dst[i].offset(0) }
    let n = shape[rank - 1]
    let outer = shape[..<(rank - 1)].reduce(1, *)
    var index = [Int](repeating: 0, count: rank)
    // The innermost dim's addressing is fixed for the whole walk: decide its loop once.
    let innerSource = src[rank - 1], innerDestination = dst[rank - 1]
    var sourceStride = 0, destinationStride = 0
    var sourceTable: [Int] = [], destinationTable: [Int] = []
    switch innerSource {
    case .stride(let v): sourceStride = v
    case .table(let t): sourceTable = t
    }
    switch innerDestination {
    case .stride(let v): destinationStride = v
    case .table(let t): destinationTable = t
    }
    let contiguous = sourceTable.isEmpty && destinationTable.isEmpty && sourceStride == 1 && destinationStride == 1
    for _ in 0..<outer {
        if contiguous {
            lane.run(d, s, n)
        } else if sourceTable.isEmpty && destinationTable.isEmpty {
            // Offsets were bounds-checked by the caller, so the index arithmetic cannot overflow.
            for i in 0..<n { lane.move(d &+ i &* destinationStride, s &+ i &* sourceStride) }
        } else if destinationTable.isEmpty {
            for i in 0..<n { lane.move(d &+ i &* destinationStride, s &+ sourceTable[i]) }
        } else if sourceTable.isEmpty {
            for i in 0..<n { lane.move(d &+ destinationTable[i], s &+ i &* sourceStride) }
        } else {
            for i in 0..<n { lane.move(d &+ destinationTable[i], s &+ sourceTable[i]) }
        }
        var k = rank - 2
        while k >= 0 {
            let old = index[k]
            if old + 1 < shape[k] {
                s += src[k].offset(old + 1) - src[k].offset(old)
                d += dst[k].offset(old + 1) - dst[k].offset(old)
                index[k] = old + 1
                break
            }
            s += src[k].offset(0) - src[k].offset(old)
            d += dst[k].offset(0) - dst[k].offset(old)
            index[k] = 0
            k -= 1
        }
    }
}

// MARK: - Scalars of any element type

extension ShapeKernels {
    /// A scalar of `dtype` holding `value` (0 and 1 for every numeric type; any value for the arithmetic ones).
    static func scalar(_ value: Double, as dtype: DType, op: String) throws(RuntimeError) -> Tensor {
        struct Make: ArithmeticVisitor {
            let value: Double
            func visit<T: ArithmeticElement>(_: T.Type) throws(RuntimeError) -> Tensor { Tensor.scalar(T.from(value)) }
        }
        switch dtype {
        case .bool: return Tensor.scalar(value != 0)
        case .bfloat16:
            let bits = Float(value).bitPattern
            let rounded = bits &+ 0x7FFF &+ ((bits >> 16) & 1)
            return try rawScalar(dtype, UInt16(truncatingIfNeeded: (Float(value).isNaN ? 0x7FC0_0000 : rounded) >> 16))
        case .float8e4m3fn, .float8e4m3fnuz, .float8e5m2, .float8e5m2fnuz:
            let one: [DType: UInt8] = [.float8e4m3fn: 0x38, .float8e4m3fnuz: 0x40, .float8e5m2: 0x3C, .float8e5m2fnuz: 0x40]
            guard value == 0 || value == 1, let bits = one[dtype] else { throw .unsupportedType(op: op, dtype: dtype.onnxName) }
            return try rawScalar(dtype, value == 0 ? 0 : bits)
        case .int4, .uint4:
            guard value.rounded() == value, value >= (dtype == .int4 ? -8 : 0), value <= (dtype == .int4 ? 7 : 15) else {
                throw .invalidArgument("\(op): \(value) does not fit \(dtype.onnxName)")
            }
            return try rawScalar(dtype, UInt8(truncatingIfNeeded: Int(value)) & 0x0F)
        case .string: return Tensor(strings: [value == 0 ? "" : "\(value)"], shape: [])
        default: return try dispatchArithmetic(dtype, op: op, Make(value: value))
        }
    }

    private static func rawScalar<B: FixedWidthInteger>(_ dtype: DType, _ bits: B) throws(RuntimeError) -> Tensor {
        let t = try Tensor(zeros: dtype, shape: [])
        t.withMutableBytes { $0.storeBytes(of: bits.littleEndian, as: B.self) }
        return t
    }
}
