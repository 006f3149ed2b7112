import Foundation
import OnnxcCore
@testable import OnnxcCLI
import OnnxcRuntime
import OnnxcTestSupport
import Testing

/// The `.npz` reader on NumPy's own files (testdata/npz, written by scripts/gen_testdata.py) and on damaged and
/// hand-built archives: zip64 directories, and sizes that must be refused before anything is allocated.
@Suite struct NPZArchiveTests {
    static let folder = Fixtures.testdata.appendingPathComponent("npz").path

    static func expectFixtureArrays(_ arrays: [String: OnnxcRuntime.Tensor]) {
        #expect(arrays.keys.sorted() == ["flags", "ids", "x", "zeros"])
        #expect(arrays["x"]?.dtype == .float && arrays["x"]?.shape == [2, 3])
        #expect(arrays["x"]?.array(Float.self) == [-2.5, -1.5, -0.5, 0.5, 1.5, 2.5])
        #expect(arrays["ids"]?.dtype == .int64 && arrays["ids"]?.array(Int64.self) == [7, -1, 1 << 40])
        #expect(arrays["flags"]?.dtype == .bool && arrays["flags"]?.shape == [2, 2])
        #expect(arrays["flags"]?.array(Bool.self) == [true, false, false, true])
        #expect(arrays["zeros"]?.shape == [64, 64] && arrays["zeros"]?.array(Float.self).allSatisfy { $0 == 0 } == true)
    }

    @Test func readsStoredAndDeflatedArchives() throws {
        Self.expectFixtureArrays(try NPZArchive.read(Self.folder + "/stored.npz"))
        Self.expectFixtureArrays(try NPZArchive.read(Self.folder + "/compressed.npz"))
    }

    /// Every prefix of a deflated archive is an error naming the file, never a crash or a partial result.
    @Test func everyTruncationIsAnError() throws {
        let bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: Self.folder + "/compressed.npz")))
        let directory = try Fixtures.temporaryDirectory()
        let path = directory.appendingPathComponent("cut.npz").path
        for length in 0..<bytes.count {
            try Data(bytes[..<length]).write(to: URL(fileURLWithPath: path))
            #expect(throws: CommandFailure.self, "length \(length)") { try NPZArchive.read(path) }
        }
    }

    /// A flipped byte inside a member's data either fails its inflate or CRC-32, or inflates to the very same bytes
    /// (deflate has redundant encodings: a match distance into a run of zeros, padding bits after the last code):
    /// damage never yields different arrays.
    @Test func damagedMemberDataIsAnErrorOrHarmless() throws {
        let bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: Self.folder + "/compressed.npz")))
        let members = try bytes.withUnsafeBytes { try NPZArchive.members($0) }
        #expect(members.count == 4 && members.allSatisfy { $0.method == 8 })
        let original = try NPZArchive.read(Self.folder + "/compressed.npz")
        let directory = try Fixtures.temporaryDirectory()
        let path = directory.appendingPathComponent("flipped.npz").path
        var failed = 0, flips = 0
        for member in members {
            let local = member.localHeaderOffset
            let start = local + 30 + Int(bytes[local + 26]) + Int(bytes[local + 27]) << 8 + Int(bytes[local + 28]) + Int(bytes[local + 29]) << 8
            for position in start..<(start + member.compressedSize) {
                var damaged = bytes
                damaged[position] ^= 0x10
                try Data(damaged).write(to: URL(fileURLWithPath: path))
                flips += 1
                guard let arrays = try? NPZArchive.read(path) else {
                    failed += 1
                    continue
                }
                let same = arrays.keys.sorted() == original.keys.sorted() && arrays.allSatisfy { name, tensor in
                    original[name].map { o in o.shape == tensor.shape && o.withBytes { a in tensor.withBytes { b in a.elementsEqual(b) } } } ?? false
                }
                #expect(same, "\(member.name) byte \(position - start) read as different arrays")
            }
        }
        #expect(flips > 300 && failed >= flips - 8, "\(failed) of \(flips) flips were errors")
    }

    /// A stored archive whose central directory gives the sizes and the offset only in a zip64 extra field, behind
    /// a zip64 end-of-central-directory record, as zip64 writers do for members and archives over 4 GiB.
    @Test func readsZip64Directories() throws {
        let npy = try NPY.write(try OnnxcRuntime.Tensor([Float(1), 2, 3], shape: [3]))
        let archive = Self.storedArchive(name: "w.npy", content: npy, zip64: true)
        let arrays = try Self.read(archive)
        #expect(arrays["w"]?.array(Float.self) == [1, 2, 3])
        // The same member through a plain directory.
        #expect(try Self.read(Self.storedArchive(name: "w.npy", content: npy, zip64: false))["w"]?.array(Float.self) == [1, 2, 3])
    }

    /// Offsets near the top of the 64-bit range (a zip64 locator, a member's local header) are errors, not overflows.
    @Test func hugeZip64OffsetsAreErrors() throws {
        let npy = try NPY.write(try OnnxcRuntime.Tensor([Float(1)], shape: [1]))
        var archive = Self.storedArchive(name: "w.npy", content: npy, zip64: true)
        // The locator's record offset: 12 bytes before the 22-byte end record.
        let at = archive.count - 22 - 12
        for (i, byte) in withUnsafeBytes(of: UInt64(Int64.max - 8).littleEndian, Array.init).enumerated() { archive[at + i] = byte }
        #expect(throws: CommandFailure.self) { try Self.read(archive) }
    }

    /// A member that claims to inflate to more than onnxc allocates for one array is refused before allocation.
    @Test func refusesOversizedMembersBeforeAllocating() throws {
        let npy = try NPY.write(try OnnxcRuntime.Tensor([Float(1)], shape: [1]))
        let archive = Self.storedArchive(name: "w.npy", content: npy, zip64: true, claimedSize: UInt64(OnnxcRuntime.Tensor.allocationLimit) + 1)
        #expect {
            try Self.read(archive)
        } throws: { error in
            (error as? CommandFailure)?.message.contains("more than onnxc allocates") == true
        }
    }

    @Test func refusesEncryptedAndUnknownMethods() throws {
        let npy = try NPY.write(try OnnxcRuntime.Tensor([Float(1)], shape: [1]))
        for (flags, method, reason) in [(UInt16(1), UInt16(0), "encrypted"), (0, 12, "compression method 12")] {
            let archive = Self.storedArchive(name: "w.npy", content: npy, zip64: false, flags: flags, method: method)
            #expect {
                try Self.read(archive)
            } throws: { error in
                (error as? CommandFailure)?.message.contains(reason) == true
            }
        }
    }

    static func read(_ archive: [UInt8]) throws -> [String: OnnxcRuntime.Tensor] {
        let path = try Fixtures.temporaryDirectory().appendingPathComponent("built.npz").path
        try Data(archive).write(to: URL(fileURLWithPath: path))
        return try NPZArchive.read(path)
    }

    /// One stored member in a zip archive, built field by field.
    static func storedArchive(name: String, content: [UInt8], zip64: Bool, claimedSize: UInt64? = nil,
                              flags: UInt16 = 0, method: UInt16 = 0) -> [UInt8] {
        var out: [UInt8] = []
        func u16(_ v: UInt16) { out += [UInt8(v & 0xFF), UInt8(v >> 8)] }
        func u32(_ v: UInt32) { u16(UInt16(v & 0xFFFF)); u16(UInt16(v >> 16)) }
        func u64(_ v: UInt64) { u32(UInt32(v & 0xFFFF_FFFF)); u32(UInt32(v >> 32)) }
        let crc = UInt32(truncatingIfNeeded: CRC32Reference.checksum(content))
        let size = claimedSize ?? UInt64(content.count)
        let nameBytes = Array(name.utf8)
        // Local header, then the data.
        u32(0x0403_4B50); u16(20); u16(flags); u16(method); u16(0); u16(0); u32(crc)
        u32(UInt32(content.count)); u32(UInt32(truncatingIfNeeded: size)); u16(UInt16(nameBytes.count)); u16(0)
        out += nameBytes
        out += content
        // Central directory.
        let directoryOffset = out.count
        u32(0x0201_4B50); u16(45); u16(zip64 ? 45 : 20); u16(flags); u16(method); u16(0); u16(0); u32(crc)
        u32(zip64 ? 0xFFFF_FFFF : UInt32(content.count)); u32(zip64 ? 0xFFFF_FFFF : UInt32(truncatingIfNeeded: size))
        u16(UInt16(nameBytes.count)); u16(zip64 ? 28 : 0); u16(0); u16(0); u16(0); u32(0); u32(zip64 ? 0xFFFF_FFFF : 0)
        out += nameBytes
        if zip64 { u16(1); u16(24); u64(size); u64(UInt64(content.count)); u64(0) }
        let directorySize = out.count - directoryOffset
        if zip64 {
            let record = out.count
            u32(0x0606_4B50); u64(44); u16(45); u16(45); u32(0); u32(0); u64(1); u64(1)
            u64(UInt64(directorySize)); u64(UInt64(directoryOffset))
            u32(0x0706_4B50); u32(0); u64(UInt64(record)); u32(1)
        }
        u32(0x0605_4B50); u16(0); u16(0); u16(zip64 ? 0xFFFF : 1); u16(zip64 ? 0xFFFF : 1)
        u32(zip64 ? 0xFFFF_FFFF : UInt32(directorySize)); u32(zip64 ? 0xFFFF_FFFF : UInt32(directoryOffset)); u16(0)
        return out
    }
}

/// Bitwise CRC-32 (the zip polynomial), independent of the zlib code under test.
enum CRC32Reference {
    static func checksum(_ bytes: [UInt8]) -> UInt32 {
        var crc: UInt32 = 0xFFFF_FFFF
        for byte in bytes {
            crc ^= UInt32(byte)
            for _ in 0..<8 { crc = crc & 1 == 1 ? (crc >> 1) ^ 0xEDB8_8320 : crc >> 1 }
        }
        return ~crc
    }
}
