internal import CKernels
import OnnxcCore
import OnnxcFormat

/// A tensor inside a wider one's memory (a `.window` of the compiled plan, `ChannelWindows` in the emitter): its
/// rows, runs of its last dim's elements, lie `rowStride` elements apart. Only steps that pass row strides to their
/// kernels read or write one (`Frame.strided`, `Frame.output(window:slot:…)`); every other reader gets a dense copy
/// (`Frame.materialized`), so a window is never misread as dense.
struct TensorWindow {
    let dtype: DType
    let shape: [Int]
    let base: UnsafeMutableRawPointer
    /// Elements from one row's start to the next's (the last dim when dense).
    let rowStride: Int
    /// Keeps the memory alive: the arena's storage, or the dense tensor this window wraps.
    let owner: AnyObject?

    var width: Int { shape.last ?? 1 }
    var count: Int { shape.reduce(1, *) }
    var rows: Int { width > 0 ? count / width : 0 }
    var floats: UnsafeMutablePointer<Float> { base.assumingMemoryBound(to: Float.self) }

    /// A dense tensor as a window of itself (nil for strings and tensors without storage).
    init?(_ tensor: Tensor) {
        guard let storage = tensor.storage, tensor.dtype != .string, tensor.packing == nil else { return nil }
        dtype = tensor.dtype
        shape = tensor.shape
        base = storage.base
        rowStride = tensor.shape.last ?? 1
        owner = storage
    }

    /// A dense tensor as a window, or an error for one without numeric storage.
    static func dense(_ tensor: Tensor) throws(RuntimeError) -> TensorWindow {
        guard let window = TensorWindow(tensor) else { throw .invalidArgument("a \(tensor.dtype.onnxName) tensor without numeric storage") }
        return window
    }

    init(dtype: DType, shape: [Int], base: UnsafeMutableRawPointer, rowStride: Int, owner: AnyObject?) {
        self.dtype = dtype
        self.shape = shape
        self.base = base
        self.rowStride = rowStride
        self.owner = owner
    }

    /// The part from channel `channel` on, `width` channels wide (a Concat's operand, a Split's part).
    func part(channel: Int, width: Int) -> TensorWindow {
        TensorWindow(dtype: dtype, shape: shape.dropLast() + [width], base: base + channel * dtype.storageBytes, rowStride: rowStride,
                     owner: owner)
    }

    /// Copies this window's rows to `target` (another window of the same shape and dtype), unless they are the same bytes.
    func copy(to target: TensorWindow) {
        let elementBytes = dtype.storageBytes
        guard target.base != base || target.rowStride != rowStride, rows > 0, width > 0 else { return }
        ck_copy_rows(rows, width * elementBytes, base, rowStride * elementBytes, target.base, target.rowStride * elementBytes)
    }
}

/// A window's place in the arena, as compiled: the byte offset of its first element and its row stride.
struct WindowSlot: Sendable, Equatable {
    let offset: Int
    let rowStride: Int
    /// The compiled shape (the reader checked that it fits in the arena at this offset and stride).
    let shape: [Int]
}

extension Frame {
    /// Tensor `id` for a step that takes row strides: its window, or its dense tensor as one.
    @inline(__always)
    func strided(_ id: TensorID, _ step: some Step) throws(RuntimeError) -> TensorWindow {
        if id >= 0, Int(id) < windows.count, let window = windows[Int(id)] { return window }
        guard let window = TensorWindow(try tensor(id, step)) else {
            throw .atNode(node: step.node.displayName, op: step.node.opType, .invalidArgument("input \(id) has no numeric tensor value"))
        }
        return window
    }

    /// Where a step writes output `id` of this dtype and shape: its planned window when it has one of exactly this
    /// shape, else a fresh dense tensor (its arena slot or the heap), returned as a window of itself.
    @inline(__always)
    func output(window planned: WindowSlot?, slot: ArenaSlot?, _ id: TensorID, _ dtype: DType, _ shape: [Int]) throws(RuntimeError)
        -> (window: TensorWindow, dense: Tensor?) {
        if let planned, planned.shape == shape, let arena, let start = arena.storage.baseAddress {
            return (TensorWindow(dtype: dtype, shape: shape, base: UnsafeMutableRawPointer(mutating: start + planned.offset),
                                 rowStride: planned.rowStride, owner: arena.storage), nil)
        }
        let tensor = try output(slot, id, dtype, shape)
        return (try TensorWindow.dense(tensor), tensor)
    }

    /// Publishes what `output(window:slot:...)` gave: the dense tensor as the value, or the window.
    @inline(__always)
    func publish(_ id: TensorID, _ result: (window: TensorWindow, dense: Tensor?)) {
        if let dense = result.dense {
            values[Int(id)] = .tensor(dense)
            windows[Int(id)] = nil
        } else {
            values[Int(id)] = nil
            windows[Int(id)] = result.window
        }
    }

    /// A dense copy of window `id` for readers without row strides, kept as the value so later readers share it.
    func materialized(_ id: TensorID) -> Value? {
        guard id >= 0, Int(id) < windows.count, let window = windows[Int(id)],
              let tensor = try? Tensor(uninitialized: window.dtype, shape: window.shape), let target = TensorWindow(tensor) else { return nil }
        window.copy(to: target)
        values[Int(id)] = .tensor(tensor)
        return .tensor(tensor)
    }
}
