import OnnxcCore

/// Control-flow operators: they run subgraphs through `KernelContext.run`, which resolves outer-scope names.
enum ControlFlowKernels {
    static let table: [String: Kernel] = [
        "If": { inputs, context throws(RuntimeError) in
            let cond = try context.tensor(inputs, 0)
            let taken = try truth(cond, op: "If")
            let name = taken ? "then_branch" : "else_branch"
            guard let branch = context.attributes.graph(name) else { throw .invalidArgument("If needs the \(name) graph") }
            return try context.run(branch, inputs: []).map { $0 }
        },
        "Loop": { inputs, context throws(RuntimeError) in try loop(inputs, context) },
        "Scan": { inputs, context throws(RuntimeError) in
            context.opset >= 9 ? try scan(inputs, context) : try scan8(inputs, context)
        },
    ]

    /// A condition tensor's value: its only element, as bool.
    private static func truth(_ tensor: Tensor, op: String) throws(RuntimeError) -> Bool {
        guard tensor.count == 1 else { throw .invalidArgument("\(op): condition must hold exactly one element, not shape \(tensor.shape)") }
        if tensor.dtype == .bool { return tensor.withValues(Bool.self) { $0[0] } }
        guard tensor.dtype != .string else { throw .invalidArgument("\(op): condition must be boolean") }
        return tensor.doubles()[0] != 0
    }

    // MARK: - Loop

    private static func loop(_ inputs: [Value?], _ context: KernelContext) throws(RuntimeError) -> [Value?] {
        guard let body = context.attributes.graph("body") else { throw .invalidArgument("Loop needs a body graph") }
        var tripCount: Int64?
        if let m = try context.optionalTensor(inputs, 0) {
            guard m.count == 1 else { throw .invalidArgument("Loop: M must be a scalar") }
            tripCount = m.int64s()[0]
        }
        var cond = true
        if let c = try context.optionalTensor(inputs, 1) { cond = try truth(c, op: "Loop") }
        var carried: [Value] = []
        for i in 2..<max(inputs.count, 2) {
            guard let value = inputs[i] else { throw .invalidArgument("Loop: loop-carried input \(i) is missing") }
            carried.append(value)
        }
        let scanCount = body.outputs.count - 1 - carried.count
        guard scanCount >= 0, body.inputs.count == carried.count + 2 else {
            throw .invalidArgument("Loop: body takes \(body.inputs.count) inputs and gives \(body.outputs.count) outputs for \(carried.count) loop-carried values")
        }
        var scans = [[Tensor]](repeating: [], count: scanCount)
        var iteration: Int64 = 0
        while cond, tripCount.map({ iteration < $0 }) ?? true {
            let out = try context.run(body, inputs: [.tensor(.scalar(iteration)), .tensor(.scalar(cond))] + carried)
            guard out.count == body.outputs.count, case .tensor(let c) = out[0] else {
                throw .invalidArgument("Loop: body must return its condition as a tensor")
            }
            cond = try truth(c, op: "Loop")
            carried = Array(out[1..<(1 + carried.count)])
            for k in 0..<scanCount {
                guard case .tensor(let t) = out[1 + carried.count + k] else {
                    throw .invalidArgument("Loop: scan output \(k) must be a tensor")
                }
                scans[k].append(t)
            }
            iteration += 1
        }
        var results: [Value?] = carried.map { $0 }
        for k in 0..<scanCount {
            if scans[k].isEmpty {
                // No iteration ran: an empty stack whose element shape comes from the body's declaration if known.
                let info = body.outputs[1 + carried.count + k]
                let element = info.shape.flatMap { dims in dims.allSatisfy { $0 != nil } ? dims.compactMap { $0 } : nil } ?? []
                results.append(.tensor(try Tensor(zeros: info.dtype ?? .float, shape: [0] + element)))
            } else {
                results.append(.tensor(try SequenceKernels.stack(scans[k], axis: 0, op: "Loop")))
            }
        }
        return results
    }

    // MARK: - Scan

    /// Opset 9+: no batch axis; per-input scan axes and directions.
    private static func scan(_ inputs: [Value?], _ context: KernelContext) throws(RuntimeError) -> [Value?] {
        guard let body = context.attributes.graph("body") else { throw .invalidArgument("Scan needs a body graph") }
        guard let m = context.attributes.int("num_scan_inputs"), m > 0, Int(m) <= inputs.count else {
            throw .invalidArgument("Scan needs num_scan_inputs between 1 and the number of inputs")
        }
        let scanInputs = Int(m)
        let stateCount = inputs.count - scanInputs
        let scanOutputs = body.outputs.count - stateCount
        guard scanOutputs >= 0 else { throw .invalidArgument("Scan: body gives fewer outputs than there are state variables") }
        var states: [Value] = []
        for i in 0..<stateCount {
            guard let v = inputs[i] else { throw .invalidArgument("Scan: state input \(i) is missing") }
            states.append(v)
        }
        var sequences: [Tensor] = []
        for i in stateCount..<inputs.count { sequences.append(try context.tensor(inputs, i)) }
        let inputAxes = context.attributes.ints("scan_input_axes") ?? []
        let inputDirections = context.attributes.ints("scan_input_directions") ?? []
        var axes: [Int] = []
        var length: Int?
        for (j, t) in sequences.enumerated() {
            let axis = try Broadcast.axis(j < inputAxes.count ? inputAxes[j] : 0, rank: t.rank, op: "Scan")
            guard t.rank > 0 else { throw .invalidShape("Scan: scan input \(j) is a scalar") }
            if let length, length != t.shape[axis] {
                throw .invalidShape("Scan: scan inputs have different lengths \(length) and \(t.shape[axis])")
            }
            length = t.shape[axis]
            axes.append(axis)
        }
        let steps = length ?? 0
        var collected = [[Tensor]](repeating: [], count: scanOutputs)
        for step in 0..<steps {
            var bodyInputs = states
            for (j, t) in sequences.enumerated() {
                let reverse = j < inputDirections.count && inputDirections[j] != 0
                let position = reverse ? steps - 1 - step : step
                let piece = try SequenceKernels.slice(t, axis: axes[j], start: position, length: 1)
                var shape = piece.shape
                shape.remove(at: axes[j])
                bodyInputs.append(.tensor(try piece.reshaped(shape)))
            }
            let out = try context.run(body, inputs: bodyInputs)
            guard out.count == body.outputs.count else { throw .invalidArgument("Scan: body returned \(out.count) outputs") }
            states = Array(out[0..<stateCount])
            for k in 0..<scanOutputs {
                guard case .tensor(let t) = out[stateCount + k] else { throw .invalidArgument("Scan: scan output \(k) must be a tensor") }
                collected[k].append(t)
            }
        }
        let outputAxes = context.attributes.ints("scan_output_axes") ?? []
        let outputDirections = context.attributes.ints("scan_output_directions") ?? []
        var results: [Value?] = states.map { $0 }
        for k in 0..<scanOutputs {
            var items = collected[k]
            if k < outputDirections.count && outputDirections[k] != 0 { items.reverse() }
            guard let first = items.first else {
                let info = body.outputs[stateCount + k]
                results.append(.tensor(try Tensor(zeros: info.dtype ?? .float, shape: [0])))
                continue
            }
            let axis = try Broadcast.axis(k < outputAxes.count ? outputAxes[k] : 0, rank: first.rank + 1, op: "Scan")
            results.append(.tensor(try SequenceKernels.stack(items, axis: axis, op: "Scan")))
        }
        return results
    }

    /// Opset 8: axis 0 is a batch axis, axis 1 the sequence axis; optional per-batch `sequence_lens`.
    private static func scan8(_ inputs: [Value?], _ context: KernelContext) throws(RuntimeError) -> [Value?] {
        guard let body = context.attributes.graph("body") else { throw .invalidArgument("Scan needs a body graph") }
        guard let m = context.attributes.int("num_scan_inputs"), m > 0, Int(m) < inputs.count else {
            throw .invalidArgument("Scan needs num_scan_inputs between 1 and the number of inputs")
        }
        let lens = try context.optionalTensor(inputs, 0)
        let scanInputs = Int(m)
        let stateCount = inputs.count - 1 - scanInputs
        let scanOutputs = body.outputs.count - stateCount
        guard stateCount >= 0, scanOutputs >= 0 else { throw .invalidArgument("Scan: inputs and body outputs do not match") }
        var tensors: [Tensor] = []
        for i in 1..<inputs.count { tensors.append(try context.tensor(inputs, i)) }
        guard let batch = tensors.first?.shape.first else { throw .invalidShape("Scan: inputs need a batch axis") }
        let maxLength = tensors[stateCount...].first.map { $0.rank > 1 ? $0.shape[1] : 0 } ?? 0
        for (j, t) in tensors.enumerated() {
            guard t.rank >= (j < stateCount ? 1 : 2), t.shape[0] == batch else {
                throw .invalidShape("Scan: input \(j + 1) has shape \(t.shape); expected batch \(batch)\(j < stateCount ? "" : " and a sequence axis")")
            }
            if j >= stateCount && t.shape[1] != maxLength { throw .invalidShape("Scan: scan inputs have different lengths") }
        }
        var lengths = [Int](repeating: maxLength, count: batch)
        if let lens {
            let values = lens.int64s()
            guard values.count == batch, values.allSatisfy({ $0 >= 0 && $0 <= Int64(maxLength) }) else {
                throw .invalidArgument("Scan: sequence_lens \(values) must have \(batch) entries in 0...\(maxLength)")
            }
            lengths = values.map { Int($0) }
        }
        let directions = context.attributes.ints("directions") ?? []
        var finalStates = [[Tensor]](repeating: [], count: stateCount)
        var outputsPerBatch = [[Tensor]](repeating: [], count: scanOutputs)
        for b in 0..<batch {
            func row(_ t: Tensor) throws(RuntimeError) -> Tensor {
                let piece = try SequenceKernels.slice(t, axis: 0, start: b, length: 1)
                return try piece.reshaped(Array(piece.shape.dropFirst()))
            }
            var states: [Value] = []
            for j in 0..<stateCount { states.append(.tensor(try row(tensors[j]))) }
            var rows: [Tensor] = []
            for j in stateCount..<tensors.count { rows.append(try row(tensors[j])) }
            var collected = [[Tensor]](repeating: [], count: scanOutputs)
            let steps = lengths[b]
            for step in 0..<steps {
                var bodyInputs = states
                for (j, t) in rows.enumerated() {
                    let reverse = j < directions.count && directions[j] != 0
                    let piece = try SequenceKernels.slice(t, axis: 0, start: reverse ? steps - 1 - step : step, length: 1)
                    bodyInputs.append(.tensor(try piece.reshaped(Array(piece.shape.dropFirst()))))
                }
                let out = try context.run(body, inputs: bodyInputs)
                guard out.count == body.outputs.count else { throw .invalidArgument("Scan: body returned \(out.count) outputs") }
                states = Array(out[0..<stateCount])
                for k in 0..<scanOutputs {
                    guard case .tensor(let t) = out[stateCount + k] else { throw .invalidArgument("Scan: scan output \(k) must be a tensor") }
                    collected[k].append(t)
                }
            }
            for j in 0..<stateCount {
                guard case .tensor(let t) = states[j] else { throw .invalidArgument("Scan: state \(j) must be a tensor") }
                finalStates[j].append(t)
            }
            for k in 0..<scanOutputs {
                // Shorter sequences are padded with zeros up to the longest one.
                var items = collected[k]
                if let first = items.first, items.count < maxLength {
                    let pad = try Tensor(zeros: first.dtype, shape: first.shape)
                    items += [Tensor](repeating: pad, count: maxLength - items.count)
                }
                guard !items.isEmpty else { throw .invalidShape("Scan: a batch entry ran zero steps, so its output shape is unknown") }
                outputsPerBatch[k].append(try SequenceKernels.stack(items, axis: 0, op: "Scan"))
            }
        }
        var results: [Value?] = []
        for j in 0..<stateCount { results.append(.tensor(try SequenceKernels.stack(finalStates[j], axis: 0, op: "Scan"))) }
        for k in 0..<scanOutputs { results.append(.tensor(try SequenceKernels.stack(outputsPerBatch[k], axis: 0, op: "Scan"))) }
        return results
    }
}
