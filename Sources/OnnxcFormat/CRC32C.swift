/// CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), the checksum of every `.oxc` section.
///
/// Table-driven, slicing-by-8: eight 256-entry tables let the loop fold eight input bytes per step with
/// independent lookups. CRC-32C rather than zlib's CRC-32 because it detects more error patterns at this length
/// and is what iSCSI, ext4 and Snappy framing use, so external tools can check our sections.
/// `CRC32C.checksum("123456789") == 0xE3069283`.
public struct CRC32C: Sendable {
    /// The running register (pre-inverted); read the result from `value`.
    private var state: UInt32 = 0xFFFF_FFFF

    public init() {}

    /// The checksum of everything given to `update` so far.
    public var value: UInt32 { ~state }

    public mutating func update(_ buffer: UnsafeRawBufferPointer) {
        guard let start = buffer.baseAddress, buffer.count > 0 else { return }
        state = Self.tables.withUnsafeBufferPointer { tables in
            guard let t = tables.baseAddress else { return state }
            return Self.fold(state, start, buffer.count, t)
        }
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

    private static let zeros = [UInt8](repeating: 0, count: 256)

    @inline(__always)
    private static func fold(_ initial: UInt32, _ start: UnsafeRawPointer, _ count: Int, _ t: UnsafePointer<UInt32>) -> UInt32 {
        var crc = initial
        var p = start
        var left = count
        while left >= 8 {
            let word = UInt64(littleEndian: p.loadUnaligned(as: UInt64.self))
            let lo = UInt32(truncatingIfNeeded: word) ^ crc
            let hi = UInt32(truncatingIfNeeded: word >> 32)
            crc = t[7 &* 256 &+ Int(lo & 0xFF)] ^ t[6 &* 256 &+ Int((lo >> 8) & 0xFF)]
                ^ t[5 &* 256 &+ Int((lo >> 16) & 0xFF)] ^ t[4 &* 256 &+ Int(lo >> 24)]
                ^ t[3 &* 256 &+ Int(hi & 0xFF)] ^ t[2 &* 256 &+ Int((hi >> 8) & 0xFF)]
                ^ t[1 &* 256 &+ Int((hi >> 16) & 0xFF)] ^ t[Int(hi >> 24)]
            p += 8
            left &-= 8
        }
        while left > 0 {
            crc = t[Int((crc ^ UInt32(p.load(as: UInt8.self))) & 0xFF)] ^ (crc >> 8)
            p += 1
            left &-= 1
        }
        return crc
    }

    /// `tables[k * 256 + b]`: the CRC of byte `b` followed by `k` zero bytes.
    private static let tables: [UInt32] = {
        var t = [UInt32](repeating: 0, count: 8 * 256)
        for b in 0..<256 {
            var crc = UInt32(b)
            for _ in 0..<8 { crc = (crc & 1) != 0 ? (crc >> 1) ^ 0x82F6_3B78 : crc >> 1 }
            t[b] = crc
        }
        for k in 1..<8 {
            for b in 0..<256 {
                let previous = t[(k - 1) * 256 + b]
                t[k * 256 + b] = (previous >> 8) ^ t[Int(previous & 0xFF)]
            }
        }
        return t
    }()
}
