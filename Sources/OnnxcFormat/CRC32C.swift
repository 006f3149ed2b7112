internal import CChecksum

/// CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), the checksum of every `.oxc` section.
///
/// Computed by `CChecksum`, by the fastest way this CPU has (chosen at run time): 512-bit VPCLMULQDQ folding
/// (~59 GB/s in cache), the SSE4.2 `crc32` instruction over three interleaved streams (~29 GB/s), or
/// slicing-by-16 tables (~4 GB/s). CRC-32C rather than zlib's CRC-32
/// because it detects more error patterns at this length, has an instruction on x86-64 and arm64, and is what
/// iSCSI, ext4 and Snappy framing use, so external tools can check our sections.
/// `CRC32C.checksum("123456789") == 0xE3069283`.
public struct CRC32C: Sendable {
    /// The checksum of everything given to `update` so far.
    public private(set) var value: UInt32 = 0

    public init() {}

    public mutating func update(_ buffer: UnsafeRawBufferPointer) {
        guard let start = buffer.baseAddress, buffer.count > 0 else { return }
        value = cc_crc32c(value, start, buffer.count)
    }

    public mutating func update<C: Collection>(_ bytes: C) where C.Element == UInt8 {
        if let done: Void = bytes.withContiguousStorageIfAvailable({ update(UnsafeRawBufferPointer($0)) }) {
            return done
        }
        let copy = Array(bytes)
        copy.withUnsafeBytes { update($0) }
    }

    /// Feeds `count` zero bytes (alignment padding).
    public mutating func updateZeros(_ count: Int) {
        var left = count
        while left > 0 {
            let n = min(left, Self.zeros.count)
            Self.zeros.withUnsafeBytes { update(UnsafeRawBufferPointer(rebasing: $0[0..<n])) }
            left -= n
        }
    }

    public static func checksum(_ buffer: UnsafeRawBufferPointer) -> UInt32 {
        var crc = CRC32C()
        crc.update(buffer)
        return crc.value
    }

    public static func checksum<C: Collection>(_ bytes: C) -> UInt32 where C.Element == UInt8 {
        var crc = CRC32C()
        crc.update(bytes)
        return crc.value
    }

    /// The same value as `checksum(buffer)`, computed in pieces on up to `maxThreads` threads (nil: the cores
    /// this process may use, at most 4; below 1 counts as 1) when the buffer is large enough to gain (4 MiB per thread or more):
    /// reading a large mapped section is bound by page faults and memory bandwidth, which a second core doubles.
    public static func checksum(_ buffer: UnsafeRawBufferPointer, maxThreads: Int?) -> UInt32 {
        guard let start = buffer.baseAddress, buffer.count > 0 else { return 0 }
        return cc_crc32c_parallel(0, start, buffer.count, Int32(clamping: maxThreads.map { max($0, 1) } ?? 0))
    }

    /// The checksum of `a` followed by `b`, from `first = checksum(a)`, `second = checksum(b)` and `b.count`.
    public static func combine(_ first: UInt32, _ second: UInt32, secondCount: Int) -> UInt32 {
        cc_crc32c_combine(first, second, UInt64(max(secondCount, 0)))
    }

    private static let zeros = [UInt8](repeating: 0, count: 256)
}
