import OnnxcCore
import OnnxcFormat

/// One op of a compiled program, ready to run: its kernel chosen, its attributes decoded and its tensors
/// resolved to ids when the program was loaded, so a run does no lookups by name. Steps are immutable and shared
/// by every executor of a model; what a run changes lives in its `Frame`.
protocol Step: Sendable {
    /// For errors and profiles.
    var node: RuntimeNode { get }
    /// Bytes of the frame's scratch buffer the step uses while it runs (a kernel's workspace), 64-byte aligned.
    var scratchBytes: Int { get }
    func run(_ frame: Frame) throws(RuntimeError)
}

extension Step {
    var scratchBytes: Int { 0 }
}

/// The values of one run, by tensor id, and the run's arena. One per executor; never shared between threads.
final class Frame {
    var values: [Value?]
    /// The values that are windows of a wider tensor (`TensorWindow`), by id; such an id has no entry in `values`
    /// until a reader without row strides asks for a dense copy.
    var windows: [TensorWindow?]
    /// The compiled plan's slots, then (for a model with run-time sizes) the current input shapes' (`ShapePlans`).
    var arena: Arena?
    /// The current input shapes' slots of the tensors sized at run time, by id (empty: none planned).
    var dynamicSlots: [ArenaSlot?] = []
    /// Workspace for the step that runs (the largest any step needs; see `Step.scratchBytes`).
    let scratch: Arena?
    /// Runs the subgraphs of control-flow ops (If, Loop, Scan) by name, with the interpreter.
    let subgraphs: Executor
    /// Outputs written in their planned slot, and arena values copied out of a slot not theirs.
    var arenaStatistics = (inPlace: 0, copied: 0)

    init(values: [Value?], arena: Arena?, scratch: Arena?, subgraphs: Executor) {
        self.values = values
        windows = [TensorWindow?](repeating: nil, count: values.count)
        self.arena = arena
        self.scratch = scratch
        self.subgraphs = subgraphs
    }

    /// The tensor with id `id`, or an error naming what is missing.
    @inline(__always)
    func tensor(_ id: TensorID, _ step: some Step) throws(RuntimeError) -> Tensor {
        guard id >= 0, Int(id) < values.count, case .tensor(let tensor)? = values[Int(id)] ?? materialized(id) else {
            throw .missingInput("\(step.node.opType) input \(id) has no tensor value")
        }
        return tensor
    }

    /// Tensor `id`'s slot: the compiled one, else the one planned for the current input shapes.
    @inline(__always)
    func slot(_ compiled: ArenaSlot?, _ id: TensorID) -> ArenaSlot? {
        if let compiled { return compiled }
        return id >= 0 && Int(id) < dynamicSlots.count ? dynamicSlots[Int(id)] : nil
    }

    /// A fresh output tensor for tensor `id`: its arena slot (`slot(_:_:)`) when it has one of exactly this size, else
    /// the heap. Its bytes are undefined; the step writes them all.
    @inline(__always)
    func output(_ compiled: ArenaSlot?, _ id: TensorID, _ dtype: DType, _ shape: [Int]) throws(RuntimeError) -> Tensor {
        if let slot = slot(compiled, id), let arena, let tensor = Tensor(slot: slot, in: arena, dtype: dtype, shape: shape) {
            arenaStatistics.inPlace += 1
            return tensor
        }
        return try Tensor(uninitialized: dtype, shape: shape)
    }
}

/// A planned arena slot: byte offset and size.
struct ArenaSlot: Sendable, Equatable {
    let offset: Int
    let byteCount: Int
}

extension Tensor {
    /// A tensor over arena memory, when `slot` holds exactly its bytes (nil otherwise: a run-time shape that differs
    /// from the planned one, or a dtype without fixed-width elements).
    init?(slot: ArenaSlot, in arena: Arena, dtype: DType, shape: [Int]) {
        guard dtype != .string, dtype.storageBytes > 0, let count = CheckedSize.elementCount(shape.map(Int64.init)),
              let bytes = dtype.byteCount(elements: count), bytes == slot.byteCount, let base = arena.storage.baseAddress else { return nil }
        let storage = TensorStorage(slot: UnsafeMutableRawPointer(mutating: base + slot.offset), byteCount: bytes, owner: arena.storage)
        self.init(dtype: dtype, shape: shape, storage: storage)
    }
}
