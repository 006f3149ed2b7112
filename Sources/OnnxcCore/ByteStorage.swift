#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Immutable bytes that tensors share without copying: a heap copy, a memory-mapped file, or memory kept
/// alive by another object (a parsed protobuf message).
///
/// `@unchecked Sendable` is sound because the bytes are never written after `init` and the release action
/// runs exactly once, in `deinit`.
public final class ByteStorage: @unchecked Sendable {
    public let baseAddress: UnsafeRawPointer?
    public let count: Int
    private let owner: AnyObject?
    private let release: (() -> Void)?

    /// Wraps memory that `owner` keeps alive; `release` (if any) runs when the last reference goes away.
    public init(base: UnsafeRawPointer?, count: Int, owner: AnyObject?, release: (() -> Void)? = nil) {
        precondition(count >= 0 && (count == 0 || base != nil), "ByteStorage: bad region")
        self.baseAddress = count == 0 ? nil : base
        self.count = count
        self.owner = owner
        self.release = release
    }

    /// Copies `bytes` into a fresh, 64-byte-aligned heap allocation.
    public convenience init<C: Collection>(copying bytes: C) where C.Element == UInt8 {
        let count = bytes.count
        guard count > 0 else {
            self.init(base: nil, count: 0, owner: nil)
            return
        }
        let memory = UnsafeMutableRawPointer.allocate(byteCount: count, alignment: 64)
        let buffer = UnsafeMutableRawBufferPointer(start: memory, count: count)
        buffer.copyBytes(from: bytes)
        self.init(base: UnsafeRawPointer(memory), count: count, owner: nil, release: { memory.deallocate() })
    }

    /// Allocates `count` bytes and lets `fill` write every one of them before the storage becomes immutable.
    public convenience init(count: Int, fill: (UnsafeMutableRawBufferPointer) throws -> Void) rethrows {
        guard count > 0 else {
            self.init(base: nil, count: 0, owner: nil)
            return
        }
        let memory = UnsafeMutableRawPointer.allocate(byteCount: count, alignment: 64)
        do {
            try fill(UnsafeMutableRawBufferPointer(start: memory, count: count))
        } catch {
            memory.deallocate()
            throw error
        }
        self.init(base: UnsafeRawPointer(memory), count: count, owner: nil, release: { memory.deallocate() })
    }

    deinit { release?() }

    /// Scoped access: the storage is kept alive for the whole of `body`.
    public func withUnsafeBytes<R, E: Error>(_ body: (UnsafeRawBufferPointer) throws(E) -> R) throws(E) -> R {
        try withExtendedLifetime(self) { () throws(E) -> R in
            try body(UnsafeRawBufferPointer(start: baseAddress, count: count))
        }
    }

    /// A copy of the bytes.
    public var array: [UInt8] { withUnsafeBytes { Array($0) } }
}

/// A byte range of a `ByteStorage`: the payload of one tensor. Equality compares contents.
public struct ByteSlice: Sendable, Equatable {
    public let storage: ByteStorage
    public let offset: Int
    public let count: Int

    /// A view of `count` bytes at `offset`, or nil when that range is not inside `storage`.
    public init?(_ storage: ByteStorage, offset: Int, count: Int) {
        guard offset >= 0, count >= 0, let end = CheckedSize.add(offset, count), end <= storage.count else { return nil }
        self.storage = storage
        self.offset = offset
        self.count = count
    }

    /// The whole of `storage`.
    public init(_ storage: ByteStorage) {
        self.storage = storage
        self.offset = 0
        self.count = storage.count
    }

    /// A heap copy of `bytes`.
    public init(copying bytes: [UInt8]) { self.init(ByteStorage(copying: bytes)) }

    public static let empty = ByteSlice(ByteStorage(base: nil, count: 0, owner: nil))

    public func withUnsafeBytes<R, E: Error>(_ body: (UnsafeRawBufferPointer) throws(E) -> R) throws(E) -> R {
        try storage.withUnsafeBytes { (all) throws(E) -> R in
            guard count > 0, let base = all.baseAddress else { return try body(UnsafeRawBufferPointer(start: nil, count: 0)) }
            return try body(UnsafeRawBufferPointer(start: base + offset, count: count))
        }
    }

    public var array: [UInt8] { withUnsafeBytes { Array($0) } }

    public static func == (lhs: ByteSlice, rhs: ByteSlice) -> Bool {
        guard lhs.count == rhs.count else { return false }
        if lhs.storage === rhs.storage && lhs.offset == rhs.offset { return true }
        return lhs.withUnsafeBytes { a in
            rhs.withUnsafeBytes { b in
                guard let pa = a.baseAddress, let pb = b.baseAddress else { return true }
                return memcmp(pa, pb, lhs.count) == 0
            }
        }
    }

    /// Reads the element at `index` as a little-endian `T` (unaligned reads are fine).
    public func load<T: FixedWidthInteger>(_ index: Int, as type: T.Type) -> T {
        withUnsafeBytes { T(littleEndian: $0.loadUnaligned(fromByteOffset: index * MemoryLayout<T>.size, as: T.self)) }
    }
}
