internal import CZlib
import OnnxcCore
import OnnxcRuntime

/// Reads NumPy `.npz` files: zip archives of `.npy` members, stored (`numpy.savez`) or deflated
/// (`numpy.savez_compressed`), zip64 included (NumPy writes every member with zip64 headers).
///
/// The archive is untrusted input: every offset and size is checked against the file before use, a member's
/// inflated size is checked against the allocation limit before its buffer exists, and each member's CRC-32 is
/// verified. Encrypted members, multi-disk archives and methods other than stored and deflate are refused.
enum NPZArchive {
    struct Member {
        let name: String
        let method: UInt16
        let crc: UInt32
        let compressedSize: Int
        let size: Int
        let localHeaderOffset: Int
    }

    /// The arrays in the archive, keyed by member name without `.npy`.
    static func read(_ path: String) throws(CommandFailure) -> [String: Tensor] {
        let storage = try InputFiles.map(path)
        do {
            return try storage.withUnsafeBytes { (bytes) throws(NPZError) in
                var arrays: [String: Tensor] = [:]
                for member in try members(bytes) where member.name.hasSuffix(".npy") {
                    arrays[String(member.name.dropLast(4))] = try extract(member, from: bytes)
                }
                return arrays
            }
        } catch {
            throw CommandFailure(file: path, what: error.description, hint: "save arrays with numpy.savez or numpy.savez_compressed")
        }
    }

    /// The central directory's entries.
    static func members(_ bytes: UnsafeRawBufferPointer) throws(NPZError) -> [Member] {
        let reader = Reader(bytes: bytes)
        // The end-of-central-directory record: 22 bytes plus a comment of up to 65,535, so within the last 65,557.
        let earliest = max(0, bytes.count - 22 - 0xFFFF)
        guard bytes.count >= 22,
              let end = stride(from: bytes.count - 22, through: earliest, by: -1).first(where: { reader.u32($0) == 0x0605_4B50 }) else {
            throw .invalid("not a zip archive (no end-of-central-directory record)")
        }
        guard reader.u16(end + 4) == 0, reader.u16(end + 6) == 0 else { throw .invalid("a multi-disk zip archive") }
        var count = Int(reader.u16(end + 10))
        var directorySize = Int(reader.u32(end + 12))
        var directoryOffset = Int(reader.u32(end + 16))
        if count == 0xFFFF || directorySize == 0xFFFF_FFFF || directoryOffset == 0xFFFF_FFFF {
            // zip64: a locator just before the record points at the zip64 end-of-central-directory record.
            guard end >= 20, reader.u32(end - 20) == 0x0706_4B50, let record = reader.offset(end - 12),
                  record <= bytes.count - 56, reader.u32(record) == 0x0606_4B50 else {
                throw .invalid("a zip64 archive without a valid zip64 end-of-central-directory record")
            }
            guard let c = reader.offset(record + 32), let s = reader.offset(record + 40), let o = reader.offset(record + 48) else {
                throw .invalid("zip64 directory sizes out of range")
            }
            (count, directorySize, directoryOffset) = (c, s, o)
        }
        guard directoryOffset <= bytes.count, directorySize <= bytes.count - directoryOffset else {
            throw .invalid("the central directory lies outside the file")
        }
        var members: [Member] = []
        var at = directoryOffset
        let directoryEnd = directoryOffset + directorySize
        for _ in 0..<count {
            guard at + 46 <= directoryEnd, reader.u32(at) == 0x0201_4B50 else { throw .invalid("a damaged central directory entry") }
            let flags = reader.u16(at + 8), method = reader.u16(at + 10)
            let nameLength = Int(reader.u16(at + 28)), extraLength = Int(reader.u16(at + 30)), commentLength = Int(reader.u16(at + 32))
            let next = at + 46 + nameLength + extraLength + commentLength
            guard next <= directoryEnd else { throw .invalid("a central directory entry runs past the directory") }
            let name = String(decoding: UnsafeRawBufferPointer(rebasing: bytes[(at + 46)..<(at + 46 + nameLength)]), as: UTF8.self)
            guard flags & 1 == 0 else { throw .invalid("\(name) is encrypted") }
            var compressed = Int(reader.u32(at + 20)), size = Int(reader.u32(at + 24)), local = Int(reader.u32(at + 42))
            // zip64 extra field (id 1): the 64-bit values of the fields that read 0xFFFFFFFF, in this order.
            var extra = at + 46 + nameLength
            let extraEnd = extra + extraLength
            while extra + 4 <= extraEnd {
                let id = reader.u16(extra), length = Int(reader.u16(extra + 2))
                guard extra + 4 + length <= extraEnd else { throw .invalid("\(name): a damaged extra field") }
                if id == 1 {
                    var field = extra + 4
                    let fieldEnd = field + length
                    func wide(_ value: inout Int) throws(NPZError) {
                        guard value == 0xFFFF_FFFF else { return }
                        guard field + 8 <= fieldEnd, let wide = reader.offset(field) else { throw .invalid("\(name): a damaged zip64 field") }
                        value = wide
                        field += 8
                    }
                    try wide(&size)
                    try wide(&compressed)
                    try wide(&local)
                }
                extra += 4 + length
            }
            members.append(Member(name: name, method: method, crc: reader.u32(at + 16), compressedSize: compressed, size: size,
                                  localHeaderOffset: local))
            at = next
        }
        return members
    }

    /// One member's bytes, inflated if deflated, CRC-checked, read as a `.npy` array.
    static func extract(_ member: Member, from bytes: UnsafeRawBufferPointer) throws(NPZError) -> Tensor {
        let reader = Reader(bytes: bytes)
        let local = member.localHeaderOffset
        guard local <= bytes.count - 30, reader.u32(local) == 0x0403_4B50 else { throw .invalid("\(member.name): no local header") }
        let start = local + 30 + Int(reader.u16(local + 26)) + Int(reader.u16(local + 28))
        guard start <= bytes.count, member.compressedSize <= bytes.count - start else {
            throw .invalid("\(member.name): its data runs past the end of the file")
        }
        guard member.size <= Tensor.allocationLimit else {
            throw .invalid("\(member.name): \(member.size) bytes inflated is more than onnxc allocates for one array")
        }
        let data = UnsafeRawBufferPointer(rebasing: bytes[start..<(start + member.compressedSize)])
        let content: ByteStorage
        switch member.method {
        case 0:
            guard member.compressedSize == member.size else { throw .invalid("\(member.name): stored with two different sizes") }
            content = ByteStorage(copying: data)
        case 8:
            var status: Int32 = 0
            content = ByteStorage(count: member.size) { out in
                status = onnxc_inflate_raw(out.baseAddress?.assumingMemoryBound(to: UInt8.self), out.count,
                                           data.baseAddress?.assumingMemoryBound(to: UInt8.self), data.count)
            }
            guard status == 0 else {
                throw .invalid("\(member.name): " + (status == -2 ? "inflates to more than its recorded \(member.size) bytes"
                                                                  : "corrupt or truncated compressed data"))
            }
        default:
            throw .invalid("\(member.name): compression method \(member.method) (only stored and deflate are read)")
        }
        let crc = content.withUnsafeBytes { UInt32(truncatingIfNeeded: onnxc_crc32($0.baseAddress?.assumingMemoryBound(to: UInt8.self), $0.count)) }
        guard crc == member.crc else { throw .invalid("\(member.name): CRC-32 mismatch (the file is damaged)") }
        do {
            return try NPY.read(content)
        } catch {
            throw .invalid("\(member.name): \(error.description)")
        }
    }

    /// Little-endian fields at byte offsets the caller has bounds-checked (reads past the end give 0).
    private struct Reader {
        let bytes: UnsafeRawBufferPointer

        func u16(_ at: Int) -> UInt16 {
            guard at >= 0, at <= bytes.count - 2 else { return 0 }
            return UInt16(bytes[at]) | UInt16(bytes[at + 1]) << 8
        }

        func u32(_ at: Int) -> UInt32 {
            guard at >= 0, at <= bytes.count - 4 else { return 0 }
            return UInt32(u16(at)) | UInt32(u16(at + 2)) << 16
        }

        /// A 64-bit size or offset, nil beyond Int's range.
        func offset(_ at: Int) -> Int? {
            guard at >= 0, at <= bytes.count - 8 else { return nil }
            let value = UInt64(u32(at)) | UInt64(u32(at + 4)) << 32
            return value <= UInt64(Int.max) ? Int(value) : nil
        }
    }
}

enum NPZError: Error, CustomStringConvertible {
    case invalid(String)

    var description: String {
        switch self {
        case .invalid(let what): return what
        }
    }
}
