import OnnxcCore

/// Sequence and optional operators. Sequences are `Value.sequence`; an empty optional is `Value.none` and an
/// optional holding a value is that value itself.
enum SequenceKernels {
    static let table: [String: Kernel] = [
        "SequenceEmpty": { _, context throws(RuntimeError) in
            let raw = context.attributes.int("dtype", Int64(DType.float.rawValue))
            guard let dtype = DType(rawValue: Int32(truncatingIfNeeded: raw)), dtype != .undefined else {
                throw .invalidArgument("SequenceEmpty: dtype \(raw) is not a tensor element type")
            }
            return [.sequence(elementType: dtype, [])]
        },
        "SequenceConstruct": { inputs, context throws(RuntimeError) in
            var tensors: [Tensor] = []
            for index in inputs.indices { tensors.append(try context.tensor(inputs, index)) }
            guard let first = tensors.first else { throw .invalidArgument("SequenceConstruct needs at least one input") }
            for t in tensors where t.dtype != first.dtype {
                throw .invalidArgument("SequenceConstruct: inputs mix \(first.dtype.onnxName) and \(t.dtype.onnxName)")
            }
            return [.sequence(elementType: first.dtype, tensors)]
        },
        "SequenceInsert": { inputs, context throws(RuntimeError) in
            var (dtype, items) = try sequence(inputs, 0, context)
            let tensor = try context.tensor(inputs, 1)
            guard tensor.dtype == dtype else {
                throw .invalidArgument("SequenceInsert: tensor is \(tensor.dtype.onnxName) but the sequence holds \(dtype.onnxName)")
            }
            var position = items.count
            if let p = try context.optionalTensor(inputs, 2) {
                position = try index(p, count: items.count, allowEnd: true, op: "SequenceInsert")
            }
            items.insert(tensor, at: position)
            dtype = tensor.dtype
            return [.sequence(elementType: dtype, items)]
        },
        "SequenceAt": { inputs, context throws(RuntimeError) in
            let (_, items) = try sequence(inputs, 0, context)
            let position = try index(try context.tensor(inputs, 1), count: items.count, allowEnd: false, op: "SequenceAt")
            return [.tensor(items[position])]
        },
        "SequenceErase": { inputs, context throws(RuntimeError) in
            var (dtype, items) = try sequence(inputs, 0, context)
            guard !items.isEmpty else { throw .invalidArgument("SequenceErase: the sequence is empty") }
            var position = items.count - 1
            if let p = try context.optionalTensor(inputs, 1) {
                position = try index(p, count: items.count, allowEnd: false, op: "SequenceErase")
            }
            items.remove(at: position)
            dtype = dtype == .undefined ? .float : dtype
            return [.sequence(elementType: dtype, items)]
        },
        "SequenceLength": { inputs, context throws(RuntimeError) in
            let (_, items) = try sequence(inputs, 0, context)
            return outputs(.scalar(Int64(items.count)))
        },
        "SplitToSequence": { inputs, context throws(RuntimeError) in
            let input = try context.tensor(inputs, 0)
            let axis = try Broadcast.axis(context.attributes.int("axis", 0), rank: input.rank, op: "SplitToSequence")
            guard input.rank > 0 else { throw .invalidShape("SplitToSequence: the input must have rank >= 1") }
            let dim = input.shape[axis]
            var lengths: [Int] = []
            var squeeze = false
            if let split = try context.optionalTensor(inputs, 1) {
                let values = split.int64s()
                if split.rank == 0 {
                    guard let size = values.first, size > 0 else { throw .invalidArgument("SplitToSequence: split must be positive") }
                    var start = 0
                    while start < dim {
                        lengths.append(min(Int(size), dim - start))
                        start += Int(size)
                    }
                } else {
                    guard split.rank == 1 else { throw .invalidShape("SplitToSequence: split must be a scalar or 1-D") }
                    guard values.allSatisfy({ $0 >= 0 }), values.reduce(0, { $0 &+ $1 }) == Int64(dim) else {
                        throw .invalidArgument("SplitToSequence: split \(values) does not add up to dimension \(dim)")
                    }
                    lengths = values.map { Int($0) }
                }
            } else {
                lengths = [Int](repeating: 1, count: dim)
                squeeze = context.attributes.int("keepdims", 1) == 0
            }
            var items: [Tensor] = []
            var start = 0
            for length in lengths {
                var piece = try slice(input, axis: axis, start: start, length: length)
                if squeeze {
                    var shape = piece.shape
                    shape.remove(at: axis)
                    piece = try piece.reshaped(shape)
                }
                items.append(piece)
                start += length
            }
            return [.sequence(elementType: input.dtype, items)]
        },
        "ConcatFromSequence": { inputs, context throws(RuntimeError) in
            let (_, items) = try sequence(inputs, 0, context)
            guard let first = items.first else { throw .invalidArgument("ConcatFromSequence: the sequence is empty") }
            let newAxis = context.attributes.int("new_axis", 0) != 0
            let rank = first.rank + (newAxis ? 1 : 0)
            guard let rawAxis = context.attributes.int("axis") else { throw .invalidArgument("ConcatFromSequence needs the axis attribute") }
            let axis = try Broadcast.axis(rawAxis, rank: rank, op: "ConcatFromSequence")
            if newAxis {
                var parts: [Tensor] = []
                for t in items {
                    guard t.shape == first.shape else {
                        throw .invalidShape("ConcatFromSequence: elements \(first.shape) and \(t.shape) differ")
                    }
                    var shape = t.shape
                    shape.insert(1, at: axis)
                    parts.append(try t.reshaped(shape))
                }
                return outputs(try concat(parts, axis: axis, op: "ConcatFromSequence"))
            }
            return outputs(try concat(items, axis: axis, op: "ConcatFromSequence"))
        },
        "SequenceMap": { inputs, context throws(RuntimeError) in
            guard let body = context.attributes.graph("body") else { throw .invalidArgument("SequenceMap needs a body graph") }
            let (_, first) = try sequence(inputs, 0, context)
            let count = first.count
            for i in inputs.indices.dropFirst() {
                if case .sequence(_, let items)? = inputs[i], items.count != count {
                    throw .invalidArgument("SequenceMap: sequence input \(i) has \(items.count) elements, input 0 has \(count)")
                }
            }
            var results = [[Tensor]](repeating: [], count: body.outputs.count)
            for step in 0..<count {
                var bodyInputs: [Value] = []
                for i in inputs.indices {
                    switch inputs[i] {
                    case .sequence(_, let items)?: bodyInputs.append(.tensor(items[step]))
                    case .tensor(let t)?: bodyInputs.append(.tensor(t))
                    default: throw .invalidArgument("SequenceMap: input \(i) must be a sequence or a tensor")
                    }
                }
                let out = try context.run(body, inputs: bodyInputs)
                for (k, value) in out.enumerated() where k < results.count {
                    guard case .tensor(let t) = value else { throw .invalidArgument("SequenceMap: body output \(k) is not a tensor") }
                    results[k].append(t)
                }
            }
            return results.enumerated().map { k, items in
                .sequence(elementType: items.first?.dtype ?? body.outputs[k].dtype ?? .float, items)
            }
        },
        "Optional": { inputs, context throws(RuntimeError) in
            if let value = inputs.first ?? nil { return [value] }
            guard case .type(let type?)? = context.attributes.values["type"] else {
                throw .invalidArgument("Optional without an input needs the type attribute")
            }
            return [.none(type)]
        },
        "OptionalHasElement": { inputs, _ throws(RuntimeError) in
            switch inputs.first ?? nil {
            case nil, .none?: return outputs(.scalar(false))
            default: return outputs(.scalar(true))
            }
        },
        "OptionalGetElement": { inputs, _ throws(RuntimeError) in
            switch inputs.first ?? nil {
            case nil, .none?: throw .invalidArgument("OptionalGetElement: the optional is empty")
            case let value?: return [value]
            }
        },
    ]

    // MARK: - Helpers shared by the sequence, control-flow and recurrent families

    /// A sequence input, its element type and tensors.
    static func sequence(_ inputs: [Value?], _ index: Int, _ context: KernelContext) throws(RuntimeError) -> (DType, [Tensor]) {
        guard index < inputs.count, let value = inputs[index] else {
            throw .invalidArgument("\(context.node.opType) needs input \(index), which is missing")
        }
        guard case .sequence(let dtype, let items) = value else {
            throw .invalidArgument("\(context.node.opType) input \(index) must be a sequence")
        }
        return (dtype, items)
    }

    /// A position tensor (scalar int) normalized against `count`; `allowEnd` accepts `count` itself.
    static func index(_ tensor: Tensor, count: Int, allowEnd: Bool, op: String) throws(RuntimeError) -> Int {
        guard tensor.count == 1, tensor.dtype == .int64 || tensor.dtype == .int32 else {
            throw .invalidArgument("\(op): position must be a scalar int32/int64")
        }
        let raw = tensor.int64s()[0]
        let limit = Int64(count) + (allowEnd ? 1 : 0)
        guard raw >= -Int64(count) && raw < limit else {
            throw .invalidArgument("\(op): position \(raw) is out of range for a sequence of \(count)")
        }
        return Int(raw < 0 ? raw + Int64(count) : raw)
    }

    /// `length` entries starting at `start` along `axis`, as a new contiguous tensor.
    static func slice(_ tensor: Tensor, axis: Int, start: Int, length: Int) throws(RuntimeError) -> Tensor {
        guard axis >= 0, axis < tensor.rank, start >= 0, length >= 0, start + length <= tensor.shape[axis] else {
            throw .invalidShape("slice \(start)..<\(start + length) on axis \(axis) is outside shape \(tensor.shape)")
        }
        var shape = tensor.shape
        shape[axis] = length
        let outer = tensor.shape[..<axis].reduce(1, *)
        let inner = tensor.shape[(axis + 1)...].reduce(1, *)
        let dim = tensor.shape[axis]
        if tensor.dtype == .string {
            let source = tensor.strings ?? []
            var out: [String] = []
            out.reserveCapacity(outer * length * inner)
            for o in 0..<outer {
                let base = (o * dim + start) * inner
                out.append(contentsOf: source[base..<(base + length * inner)])
            }
            return Tensor(strings: out, shape: shape)
        }
        let result = try Tensor(zeros: tensor.dtype, shape: shape)
        let width = tensor.dtype.storageBytes
        let run = length * inner
        if run == 0 { return result }
        tensor.withBytes { source in
            result.withMutableBytes { target in
                guard let src = source.baseAddress, let dst = target.baseAddress else { return }
                for o in 0..<outer {
                    let from = (o * dim + start) * inner, to = o * run
                    if width == 0 {
                        copyNibbles(source, from, target, to, run)
                    } else {
                        (dst + to * width).copyMemory(from: src + from * width, byteCount: run * width)
                    }
                }
            }
        }
        return result
    }

    /// Concatenates tensors of one dtype whose shapes agree except along `axis`.
    static func concat(_ tensors: [Tensor], axis: Int, op: String) throws(RuntimeError) -> Tensor {
        guard let first = tensors.first else { throw .invalidArgument("\(op): nothing to concatenate") }
        guard axis >= 0, axis < first.rank else { throw .invalidArgument("\(op): axis \(axis) is out of range for rank \(first.rank)") }
        var total = 0
        for t in tensors {
            guard t.dtype == first.dtype else { throw .invalidArgument("\(op): elements mix \(first.dtype.onnxName) and \(t.dtype.onnxName)") }
            guard t.rank == first.rank, (0..<t.rank).allSatisfy({ $0 == axis || t.shape[$0] == first.shape[$0] }) else {
                throw .invalidShape("\(op): shapes \(first.shape) and \(t.shape) cannot be concatenated on axis \(axis)")
            }
            total += t.shape[axis]
        }
        var shape = first.shape
        shape[axis] = total
        let outer = first.shape[..<axis].reduce(1, *)
        let inner = first.shape[(axis + 1)...].reduce(1, *)
        if first.dtype == .string {
            var out: [String] = []
            out.reserveCapacity(outer * total * inner)
            for o in 0..<outer {
                for t in tensors {
                    let rows = t.shape[axis] * inner
                    out.append(contentsOf: (t.strings ?? [])[(o * rows)..<((o + 1) * rows)])
                }
            }
            return Tensor(strings: out, shape: shape)
        }
        let width = first.dtype.storageBytes
        let result = try Tensor(zeros: first.dtype, shape: shape)
        result.withMutableBytes { target in
            guard let dst = target.baseAddress else { return }
            var offset = 0
            for o in 0..<outer {
                for t in tensors {
                    let run = t.shape[axis] * inner
                    if run == 0 { continue }
                    t.withBytes { source in
                        if width == 0 {
                            copyNibbles(source, o * run, target, offset, run)
                        } else if let src = source.baseAddress {
                            (dst + offset * width).copyMemory(from: src + o * run * width, byteCount: run * width)
                        }
                    }
                    offset += run
                }
            }
        }
        return result
    }

    /// Stacks equal-shaped tensors along a new axis.
    static func stack(_ tensors: [Tensor], axis: Int, op: String) throws(RuntimeError) -> Tensor {
        var parts: [Tensor] = []
        for t in tensors {
            guard let first = tensors.first, t.shape == first.shape else {
                throw .invalidShape("\(op): stacked values have different shapes \(tensors.first?.shape ?? []) and \(t.shape)")
            }
            var shape = t.shape
            guard axis >= 0 && axis <= shape.count else { throw .invalidArgument("\(op): axis \(axis) is out of range") }
            shape.insert(1, at: axis)
            parts.append(try t.reshaped(shape))
        }
        return try concat(parts, axis: axis, op: op)
    }

    /// Copies `count` 4-bit elements (two per byte, low nibble first): packed types cannot be cut on byte boundaries.
    static func copyNibbles(_ source: UnsafeRawBufferPointer, _ from: Int, _ target: UnsafeMutableRawBufferPointer, _ to: Int, _ count: Int) {
        for k in 0..<count {
            let i = from + k, j = to + k
            let nibble = (i % 2 == 0 ? source[i / 2] : source[i / 2] >> 4) & 0x0F
            target[j / 2] = j % 2 == 0 ? (target[j / 2] & 0xF0) | nibble : (target[j / 2] & 0x0F) | (nibble << 4)
        }
    }
}
