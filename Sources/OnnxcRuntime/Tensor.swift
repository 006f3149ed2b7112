public import OnnxcCore
#if canImport(Glibc)
import Glibc
#endif

/// Memory that kernels write once while producing a tensor and only read afterwards.
///
/// `@unchecked Sendable`: a kernel writes a storage it has just allocated before publishing the tensor;
/// after that nothing mutates it, so sharing across threads is safe.
public final class TensorStorage: @unchecked Sendable {
    public let base: UnsafeMutableRawPointer
    public let byteCount: Int
    /// Keeps borrowed memory alive (a compiled model's mapped constants); nil when this storage owns `base`.
    private let owner: ByteStorage?

    /// Zero-filled (unless `zeroed` is false: for kernels that write every byte), 64-byte aligned; in the running
    /// node's planned arena slot when one of this size is offered (see `Arena`).
    public init(byteCount: Int, zeroed: Bool = true) {
        self.byteCount = byteCount
        if byteCount > 0, let offer = ArenaOffer.current, let slot = offer.take(byteCount) {
            base = slot
            owner = offer.arena.storage
        } else {
            base = UnsafeMutableRawPointer.allocate(byteCount: max(byteCount, 1), alignment: 64)
            owner = nil
        }
        if zeroed { base.initializeMemory(as: UInt8.self, repeating: 0, count: max(byteCount, 1)) }
    }

    /// `byteCount` bytes of an arena at `base` (kept alive by `owner`), not initialized: the caller writes them.
    init(slot base: UnsafeMutableRawPointer, byteCount: Int, owner: ByteStorage) {
        self.base = base
        self.byteCount = byteCount
        self.owner = owner
    }

    /// The bytes of `slice`, in place. Sound because tensors are never written after they are published
    /// (kernels write only the outputs they allocate), so read-only mapped memory is never stored to.
    init?(borrowing slice: ByteSlice) {
        guard slice.count > 0, let start = slice.storage.baseAddress else { return nil }
        base = UnsafeMutableRawPointer(mutating: start + slice.offset)
        byteCount = slice.count
        owner = slice.storage
    }

    deinit { if owner == nil { base.deallocate() } }
}

/// A dense runtime tensor: element type, concrete shape, and either packed little-endian bytes or strings.
/// Tensors are values: kernels allocate their outputs and never modify inputs.
public struct Tensor: Sendable {
    public let dtype: DType
    public let shape: [Int]
    public let count: Int
    let storage: TensorStorage?
    public let strings: [String]?
    /// Set for compile-time prepacked weights: the storage holds the packed layout, not `shape` row-major, and
    /// only kernels that ask for it (Conv through the packed GEMM) may read it.
    public private(set) var packing: Packing?

    public enum Packing: Sendable, Equatable {
        /// GEMM A panels (CKernels' packed A) of `rows` × `columns`, the weights of a 2-D, one-group convolution.
        case gemmA(rows: Int, columns: Int)
        /// Channels-last convolution weights as per-group GEMM B panels (`ck_conv_nhwc_pack`) for `groups` groups.
        case nhwcConvolution(groups: Int)
        /// Channels-last depthwise weights in channel blocks (`ck_depthwise_nhwc_pack`).
        case nhwcDepthwise
        /// GEMM B panels (CKernels' packed B) of a product's k × n weight operand (the logical tensor is [k, n], or
        /// [n, k] for a Gemm with transB).
        case gemmB(k: Int, n: Int)
        /// int8 channels-last convolution weights (`ck_qconv_nhwc_pack`) for `groups` groups; also a QGemm's [N, K]
        /// weight as [N, K, 1, 1].
        case quantizedNHWC(groups: Int)
        /// int8 channels-last depthwise weights (`ck_qdepthwise_nhwc_pack`).
        case quantizedDepthwise
    }

    /// A tensor whose bytes the caller writes before publishing it (every byte: they start undefined). For
    /// kernels that overwrite their whole output, where zero-filling first would only cost a pass over memory.
    public init(uninitialized dtype: DType, shape: [Int]) throws(RuntimeError) {
        guard dtype != .string else {
            try self.init(zeros: dtype, shape: shape)
            return
        }
        try self.init(zeros: dtype, shape: shape, zeroed: false)
    }

    /// A zero-filled (or empty-string) tensor.
    public init(zeros dtype: DType, shape: [Int]) throws(RuntimeError) {
        try self.init(zeros: dtype, shape: shape, zeroed: true)
    }

    private init(zeros dtype: DType, shape: [Int], zeroed: Bool) throws(RuntimeError) {
        guard shape.allSatisfy({ $0 >= 0 }), let count = CheckedSize.elementCount(shape.map(Int64.init)) else {
            throw .invalidShape("shape \(shape) is negative or too large")
        }
        self.dtype = dtype
        self.shape = shape
        self.count = count
        if dtype == .string {
            storage = nil
            strings = [String](repeating: "", count: count)
        } else {
            guard let bytes = dtype.byteCount(elements: count) else { throw .invalidShape("shape \(shape) is too large") }
            guard bytes <= Tensor.allocationLimit else {
                throw .invalidShape("a \(dtype.onnxName) tensor of shape \(shape) needs \(bytes) bytes, more than this machine's memory")
            }
            storage = TensorStorage(byteCount: bytes, zeroed: zeroed)
            strings = nil
        }
    }

    public init(strings: [String], shape: [Int]) {
        dtype = .string
        self.shape = shape
        count = strings.count
        storage = nil
        self.strings = strings
    }

    /// A tensor of `T` elements (in row-major order) with the given shape.
    public init<T: TensorElement>(_ values: [T], shape: [Int]) throws(RuntimeError) {
        try self.init(zeros: T.dtype, shape: shape)
        guard values.count == count else { throw .invalidShape("\(values.count) values for shape \(shape)") }
        values.withUnsafeBytes { source in
            guard let from = source.baseAddress else { return }
            storage?.base.copyMemory(from: from, byteCount: source.count)
        }
    }

    public static func scalar<T: TensorElement>(_ value: T) -> Tensor {
        // A one-element tensor of a fixed-width type always fits.
        (try? Tensor([value], shape: [])) ?? Tensor(strings: [], shape: [0])
    }

    /// Wraps bytes from an ONNX tensor (packed little-endian, as `raw_data`).
    public init(_ data: TensorData) throws(RuntimeError) {
        let shape = data.dims.map { Int($0) }
        switch data.payload {
        case .strings(let values):
            self.init(strings: values.map { String(decoding: $0, as: UTF8.self) }, shape: shape)
        case .bytes(let slice):
            try self.init(zeros: data.dtype, shape: shape)
            let base = storage?.base
            slice.withUnsafeBytes { source in
                guard let from = source.baseAddress, let base else { return }
                base.copyMemory(from: from, byteCount: source.count)
            }
        }
    }

    /// Uses the bytes of `data` in place when they are 64-byte aligned (a compiled model's constants, read from
    /// the mapped file), and copies them otherwise.
    public init(borrowing data: TensorData) throws(RuntimeError) {
        guard case .bytes(let slice) = data.payload, let start = slice.storage.baseAddress,
              Int(bitPattern: start + slice.offset) % 64 == 0, let borrowed = TensorStorage(borrowing: slice) else {
            try self.init(data)
            return
        }
        let shape = data.dims.map { Int($0) }
        self.init(dtype: data.dtype, shape: shape, count: data.elementCount, storage: borrowed, strings: nil)
    }

    /// The first byte of the elements (nil for strings and empty storage). Valid while this tensor or a copy
    /// of it is alive: for the executor's arena checks and the C interface's output pointers.
    public var unsafeBaseAddress: UnsafeRawPointer? { storage.map { UnsafeRawPointer($0.base) } }

    /// The same values in freshly allocated memory (outside any arena slot).
    func copiedToHeap() -> Tensor {
        guard let storage else { return self }
        let copy = ArenaOffer.with(nil) { TensorStorage(byteCount: storage.byteCount) }
        copy.base.copyMemory(from: storage.base, byteCount: storage.byteCount)
        return Tensor(dtype: dtype, shape: shape, count: count, storage: copy, strings: strings)
    }

    /// The largest single tensor we try to allocate: the machine's physical memory. Anything larger cannot
    /// succeed, and failing allocations abort the process; shapes computed from hostile inputs or attributes
    /// must become an error instead.
    public static let allocationLimit: Int = {
        let pages = sysconf(Int32(_SC_PHYS_PAGES)), pageSize = sysconf(Int32(_SC_PAGESIZE))
        guard pages > 0, pageSize > 0 else { return Int.max }
        let (bytes, overflow) = pages.multipliedReportingOverflow(by: pageSize)
        return overflow ? Int.max : bytes
    }()

    public var rank: Int { shape.count }
    public var byteCount: Int { storage?.byteCount ?? 0 }

    /// Read-only typed access. `T` must be the storage type of `dtype` (see `TensorElement`).
    public func withValues<T: TensorElement, R, E: Error>(_ type: T.Type, _ body: (UnsafeBufferPointer<T>) throws(E) -> R) throws(E) -> R {
        precondition(T.dtype.storageWidth == dtype.storageWidth && dtype != .string, "withValues: \(T.self) cannot view \(dtype)")
        let base = storage?.base.assumingMemoryBound(to: T.self)
        return try withExtendedLifetime(storage) { () throws(E) -> R in
            try body(UnsafeBufferPointer(start: base, count: dtype.bitWidth == 4 ? 0 : count))
        }
    }

    /// Write access for the kernel that just created this tensor and has not yet returned it.
    public func withMutableValues<T: TensorElement, R, E: Error>(_ type: T.Type, _ body: (UnsafeMutableBufferPointer<T>) throws(E) -> R) throws(E) -> R {
        precondition(T.dtype.storageWidth == dtype.storageWidth && dtype != .string, "withMutableValues: \(T.self) cannot view \(dtype)")
        let base = storage?.base.assumingMemoryBound(to: T.self)
        return try withExtendedLifetime(storage) { () throws(E) -> R in
            try body(UnsafeMutableBufferPointer(start: base, count: dtype.bitWidth == 4 ? 0 : count))
        }
    }

    /// Raw bytes (packed, little-endian), for dtypes without a Swift element type (bfloat16, float8, 4-bit).
    public func withBytes<R, E: Error>(_ body: (UnsafeRawBufferPointer) throws(E) -> R) throws(E) -> R {
        try withExtendedLifetime(storage) { () throws(E) -> R in try body(UnsafeRawBufferPointer(start: storage?.base, count: byteCount)) }
    }

    public func withMutableBytes<R, E: Error>(_ body: (UnsafeMutableRawBufferPointer) throws(E) -> R) throws(E) -> R {
        try withExtendedLifetime(storage) { () throws(E) -> R in try body(UnsafeMutableRawBufferPointer(start: storage?.base, count: byteCount)) }
    }

    /// A copy of the elements as `T` (the storage type of `dtype`).
    public func array<T: TensorElement>(_ type: T.Type) -> [T] { withValues(T.self) { Array($0) } }

    /// The same elements under another shape with the same element count.
    public func reshaped(_ newShape: [Int]) throws(RuntimeError) -> Tensor {
        guard let newCount = CheckedSize.elementCount(newShape.map(Int64.init)), newCount == count else {
            throw .invalidShape("cannot reshape \(shape) (\(count) elements) to \(newShape)")
        }
        return Tensor(dtype: dtype, shape: newShape, count: count, storage: storage, strings: strings)
    }

    /// A numeric tensor over `storage` (whose byte count matches `shape`).
    init(dtype: DType, shape: [Int], storage: TensorStorage) {
        self.init(dtype: dtype, shape: shape, count: shape.reduce(1, *), storage: storage, strings: nil)
    }

    private init(dtype: DType, shape: [Int], count: Int, storage: TensorStorage?, strings: [String]?, packing: Packing? = nil) {
        self.dtype = dtype
        self.shape = shape
        self.count = count
        self.storage = storage
        self.strings = strings
        self.packing = packing
    }

    /// Prepacked weights (a compiled model's constant with a packed layout), borrowed in place: `shape` is the
    /// logical shape, `data` the packed bytes.
    public init(packed data: TensorData, shape: [Int], packing: Packing) throws(RuntimeError) {
        let quantized = packing == .quantizedDepthwise || { if case .quantizedNHWC = packing { true } else { false } }()
        guard quantized ? (data.dtype == .int8 || data.dtype == .uint8) : data.dtype == .float, case .bytes(let slice) = data.payload, let start = slice.storage.baseAddress,
              Int(bitPattern: start + slice.offset) % 64 == 0, let borrowed = TensorStorage(borrowing: slice),
              let count = CheckedSize.elementCount(shape.map(Int64.init)) else {
            throw .invalidArgument("prepacked weights must be 64-byte aligned \(quantized ? "bytes" : "float32 values")")
        }
        // The logical element type: float32 weights, or the int8 weights an integer kernel packed.
        self.init(dtype: quantized ? .int8 : .float, shape: shape, count: count, storage: borrowed, strings: nil, packing: packing)
    }

    /// Values widened to Double (strings and complex types are not numeric): for shape inputs, tests, printing.
    public func doubles() -> [Double] {
        withBytes { raw in
            (0..<count).map { Tensor.numeric(raw, dtype, $0) }
        }
    }

    /// Integer values (for shape-like inputs: axes, pads, sizes), exact for int32/int64.
    public func int64s() -> [Int64] {
        switch dtype {
        case .int64: return array(Int64.self)
        case .int32: return array(Int32.self).map(Int64.init)
        default: return doubles().map { Int64(exactly: $0.rounded(.towardZero)) ?? ($0 > 0 ? Int64.max : Int64.min) }
        }
    }

    static func numeric(_ raw: UnsafeRawBufferPointer, _ dtype: DType, _ i: Int) -> Double {
        dtype.numericValue(in: raw, at: i) ?? .nan
    }
}

extension DType {
    /// Bytes per element in memory; 4-bit types are packed two per byte and have no element view.
    var storageWidth: Int { (bitWidth ?? 0) / 8 }

    /// Bytes per element for byte-wise copies (4-bit and string types have none).
    public var storageBytes: Int { storageWidth }
}

/// Swift types that view tensor storage directly. Bool is stored as one byte (0 or 1), as ONNX does.
public protocol TensorElement: Sendable {
    static var dtype: DType { get }
}

extension Float: TensorElement { public static var dtype: DType { .float } }
extension Double: TensorElement { public static var dtype: DType { .double } }
extension Float16: TensorElement { public static var dtype: DType { .float16 } }
extension Int8: TensorElement { public static var dtype: DType { .int8 } }
extension Int16: TensorElement { public static var dtype: DType { .int16 } }
extension Int32: TensorElement { public static var dtype: DType { .int32 } }
extension Int64: TensorElement { public static var dtype: DType { .int64 } }
extension UInt8: TensorElement { public static var dtype: DType { .uint8 } }
extension UInt16: TensorElement { public static var dtype: DType { .uint16 } }
extension UInt32: TensorElement { public static var dtype: DType { .uint32 } }
extension UInt64: TensorElement { public static var dtype: DType { .uint64 } }
extension Bool: TensorElement { public static var dtype: DType { .bool } }
