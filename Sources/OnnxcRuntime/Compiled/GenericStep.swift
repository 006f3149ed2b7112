import OnnxcCore
import OnnxcFormat

/// An op without a specialized step: its registered kernel runs on the values by id, with the outputs' arena slots
/// offered (`ArenaOffer`), as the interpreter runs it. Control-flow ops see the main-graph values their subgraphs
/// read in a scope built for the call.
struct GenericStep: Step {
    let node: RuntimeNode
    let kernel: Kernel
    let inputs: [TensorID]
    let outputs: [TensorID]
    /// The outputs' planned slots (nil: allocated by the kernel).
    let slots: [ArenaSlot?]
    /// Main-graph values the node's subgraphs read, by name (empty for ops without subgraphs).
    let captures: [(name: String, id: TensorID)]

    func run(_ frame: Frame) throws(RuntimeError) {
        var values: [Value?] = []
        values.reserveCapacity(inputs.count)
        for (slot, id) in inputs.enumerated() {
            guard id >= 0 else {
                values.append(nil)
                continue
            }
            guard let value = frame.values[Int(id)] ?? frame.materialized(id) else {
                throw .atNode(node: node.displayName, op: node.opType, .missingInput("input \(node.inputs[slot]) has no value"))
            }
            values.append(value)
        }
        var captured: [String: Value] = [:]
        for capture in captures { if let value = frame.values[Int(capture.id)] ?? frame.materialized(capture.id) { captured[capture.name] = value } }
        let context = KernelContext(node: node, scope: Scope(values: captured, parent: nil), executor: frame.subgraphs)
        let resolved = zip(slots, outputs).map { frame.slot($0, $1) }
        let planned = resolved.compactMap { $0 }
        let offer = frame.arena.flatMap { planned.isEmpty ? nil : ArenaOffer(arena: $0, slots: planned) }
        let results: [Value?]
        do {
            results = try ArenaOffer.with(offer) { () throws(RuntimeError) in try kernel(values, context) }
        } catch {
            if case .atNode = error { throw error }
            throw .atNode(node: node.displayName, op: node.opType, error)
        }
        for (index, id) in outputs.enumerated() where id >= 0 && index < results.count {
            guard let value = results[index] else { continue }
            frame.values[Int(id)] = settled(value, slot: resolved[index], frame)
        }
    }

    /// Keeps an arena-backed result only in its own slot: one in another slot (a kernel's temporary, a view of an
    /// arena input, a sequence holding arena tensors) is copied out, since that slot is reused when its owner's
    /// lifetime ends.
    private func settled(_ value: Value, slot: ArenaSlot?, _ frame: Frame) -> Value {
        guard let arena = frame.arena, let start = arena.storage.baseAddress else { return value }
        let own = slot.map { start + $0.offset }
        func detached(_ tensor: Tensor, own: UnsafeRawPointer?) -> Tensor {
            guard let base = tensor.unsafeBaseAddress, arena.contains(base) else { return tensor }
            if base == own {
                frame.arenaStatistics.inPlace += 1
                return tensor
            }
            frame.arenaStatistics.copied += 1
            return tensor.copiedToHeap()
        }
        switch value {
        case .tensor(let tensor): return .tensor(detached(tensor, own: own))
        case .sequence(let type, let tensors): return .sequence(elementType: type, tensors.map { detached($0, own: nil) })
        case .none: return value
        }
    }
}
