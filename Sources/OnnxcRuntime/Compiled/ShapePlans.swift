import OnnxcCore
import OnnxcFormat

/// Arena slots for the intermediates whose size the compiler could not know (a dim left symbolic: `onnxc compile`
/// without `--input-shape`), planned at the first run of each new set of input shapes and kept for the next runs
/// with the same shapes. That first run allocates them on the heap and records each one's size and the steps that
/// write it and release it; `MemoryPlanner` then places them after the compiled plan's own slots, as the compiler
/// would have. A later value whose size differs under the same input shapes (a data-dependent shape) only misses
/// its slot: `Frame.output` and the arena offer take a slot of exactly the value's size or none.
struct ShapePlans {
    /// The slots of one set of input shapes, by tensor id, and the arena they need (the compiled part included).
    struct Plan {
        let slots: [ArenaSlot?]
        let arenaBytes: Int
    }

    /// The tensors planned per shape: sized at run time, of the main graph, not a graph output.
    let planned: [Bool]
    let staticBytes: Int
    /// Most recently used last, at most `capacity` (a server sees a few batch sizes or sequence lengths).
    private var plans: [(key: [[Int]], plan: Plan)] = []
    static let capacity = 8

    init(program: Program, outputs: [TensorID]) {
        var planned = [Bool](repeating: false, count: program.tensors.count)
        let kept = Set(outputs)
        for op in program.graphs[0].ops {
            for id in op.outputs where id >= 0 && !kept.contains(id) {
                if case .dynamic = program.tensors[Int(id)].storage { planned[Int(id)] = true }
            }
        }
        self.planned = planned
        staticBytes = program.arenaBytes
    }

    var isNeeded: Bool { planned.contains(true) }

    mutating func plan(for key: [[Int]]) -> Plan? {
        guard let index = plans.firstIndex(where: { $0.key == key }) else { return nil }
        let entry = plans.remove(at: index)
        plans.append(entry)
        return entry.plan
    }

    mutating func insert(_ plan: Plan, for key: [[Int]]) {
        if plans.count >= Self.capacity { plans.removeFirst() }
        plans.append((key, plan))
    }

    /// What the first run of a shape saw of the planned tensors.
    struct Recording {
        /// Per planned tensor: bytes, the step that wrote it, the step after which it was released.
        var bytes: [TensorID: Int] = [:]
        var first: [TensorID: Int] = [:]
        var last: [TensorID: Int] = [:]
        /// A view (its bytes at the start of another planned tensor's, with the same size) → that tensor.
        var root: [TensorID: TensorID] = [:]

        /// After step `index` wrote `outputs` from `inputs`.
        mutating func wrote(_ outputs: [TensorID], reading inputs: [TensorID], at index: Int, _ values: [Value?], planned: [Bool]) {
            for id in outputs where id >= 0 && planned[Int(id)] {
                guard case .tensor(let tensor)? = values[Int(id)], tensor.dtype != .string, tensor.dtype.storageBytes > 0,
                      let count = CheckedSize.elementCount(tensor.shape.map(Int64.init)), let size = tensor.dtype.byteCount(elements: count),
                      size > 0 else { continue }
                first[id] = index
                last[id] = index
                if let base = tensor.unsafeBaseAddress,
                   let source = inputs.first(where: { input in
                       guard input >= 0, bytes[input] == size, case .tensor(let t)? = values[Int(input)] else { return false }
                       return t.unsafeBaseAddress == base
                   }) {
                    root[id] = root[source] ?? source
                    continue
                }
                bytes[id] = size
            }
        }

        mutating func released(_ ids: [TensorID], at index: Int) {
            for id in ids where first[id] != nil { last[id] = index }
        }

        /// Slots after the compiled plan's `staticBytes`; a view shares its root's slot, which lives until the
        /// view's release.
        func plan(tensors: Int, staticBytes: Int) -> Plan {
            var end = last
            for (view, root) in root { end[root] = max(end[root] ?? 0, last[view] ?? 0) }
            let lifetimes = bytes.map { id, size in
                MemoryPlanner.Lifetime(id: id, first: first[id] ?? 0, last: end[id] ?? first[id] ?? 0, bytes: size)
            }
            let layout = MemoryPlanner.plan(lifetimes)
            let base = CheckedSize.alignUp(staticBytes, to: MemoryPlanner.alignment) ?? staticBytes
            var slots = [ArenaSlot?](repeating: nil, count: tensors)
            for (id, offset) in layout.offsets {
                if let size = bytes[id] { slots[Int(id)] = ArenaSlot(offset: base + offset, byteCount: size) }
            }
            for (view, root) in root { slots[Int(view)] = slots[Int(root)] }
            return Plan(slots: slots, arenaBytes: layout.arenaBytes > 0 ? base + layout.arenaBytes : staticBytes)
        }
    }
}
