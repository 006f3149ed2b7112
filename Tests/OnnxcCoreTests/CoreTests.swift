import Foundation
import OnnxcCore
import OnnxcTestSupport
import Testing

@Suite struct DTypeTests {
    @Test func wireValuesMatchONNX() {
        #expect(DType.float.rawValue == 1)
        #expect(DType.bfloat16.rawValue == 16)
        #expect(DType.int4.rawValue == 22)
        #expect(DType.allCases.count == 23)
    }

    @Test func byteCountsPackFourBitTypes() {
        #expect(DType.int4.byteCount(elements: 5) == 3)
        #expect(DType.uint4.byteCount(elements: 4) == 2)
        #expect(DType.float16.byteCount(elements: 3) == 6)
        #expect(DType.complex128.byteCount(elements: 2) == 32)
        #expect(DType.string.byteCount(elements: 1) == nil)
        #expect(DType.double.byteCount(elements: Int.max / 4) == nil)
    }

    @Test func namesRoundTrip() {
        for type in DType.allCases {
            #expect(DType(name: type.onnxName) == type)
            #expect(DType(name: type.shortName) == type)
        }
    }
}

@Suite struct CheckedSizeTests {
    @Test func elementCountRejectsNegativeAndOverflow() {
        #expect(CheckedSize.elementCount([2, 3, 4]) == 24)
        #expect(CheckedSize.elementCount([]) == 1)
        #expect(CheckedSize.elementCount([0, 1 << 62]) == 0)
        #expect(CheckedSize.elementCount([-1, 3]) == nil)
        #expect(CheckedSize.elementCount([1 << 40, 1 << 40]) == nil)
    }

    @Test func alignUp() {
        #expect(CheckedSize.alignUp(0, to: 64) == 0)
        #expect(CheckedSize.alignUp(1, to: 64) == 64)
        #expect(CheckedSize.alignUp(4096, to: 4096) == 4096)
        #expect(CheckedSize.alignUp(Int.max, to: 64) == nil)
    }
}

@Suite struct TensorDataTests {
    @Test func validatesPayloadSize() throws {
        let bytes = ByteSlice(copying: [UInt8](repeating: 0, count: 12))
        #expect(throws: Never.self) { try TensorData(dtype: .float, dims: [3], payload: .bytes(bytes)) }
        #expect(throws: TensorDataError.byteCountMismatch(expected: 16, actual: 12)) {
            try TensorData(dtype: .float, dims: [4], payload: .bytes(bytes))
        }
        #expect(throws: TensorDataError.negativeDim(-2)) { try TensorData(dtype: .float, dims: [-2], payload: .bytes(bytes)) }
        #expect(throws: TensorDataError.sizeOverflow(dims: [1 << 40, 1 << 40, 1 << 40])) {
            try TensorData(dtype: .float, dims: [1 << 40, 1 << 40, 1 << 40], payload: .bytes(bytes))
        }
        #expect(throws: TensorDataError.payloadKind(.string)) { try TensorData(dtype: .string, dims: [3], payload: .bytes(bytes)) }
        #expect(throws: TensorDataError.stringCountMismatch(expected: 2, actual: 1)) {
            try TensorData(dtype: .string, dims: [2], payload: .strings([[65]]))
        }
    }

    @Test func readsEveryNumericEncoding() throws {
        let int4 = try TensorData(dtype: .int4, dims: [3], payload: .bytes(ByteSlice(copying: [0xF7, 0x08])))
        #expect(int4.numericValue(at: 0) == 7)
        #expect(int4.numericValue(at: 1) == -1)
        #expect(int4.numericValue(at: 2) == -8)
        let half = try TensorData(dtype: .float16, dims: [2], payload: .bytes(ByteSlice(copying: [0x00, 0x3C, 0x00, 0xC0])))
        #expect(half.numericValue(at: 0) == 1)
        #expect(half.numericValue(at: 1) == -2)
        let bf16 = try TensorData(dtype: .bfloat16, dims: [1], payload: .bytes(ByteSlice(copying: [0x80, 0x3F])))
        #expect(bf16.numericValue(at: 0) == 1)
        let i64 = try TensorData(dtype: .int64, dims: [1], payload: .bytes(ByteSlice(copying: [0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF])))
        #expect(i64.formattedValues(limit: 4) == ["-1"])
        #expect(i64.numericValue(at: 1) == nil)
    }

    @Test func float8Variants() {
        // 1.0 in each encoding, and each format's special values.
        #expect(NarrowFloat.float8(0x38, exponentBits: 4, bias: 7, fnuz: false, hasInfinity: false) == 1)
        #expect(NarrowFloat.float8(0x7F, exponentBits: 4, bias: 7, fnuz: false, hasInfinity: false).isNaN)
        #expect(NarrowFloat.float8(0x7E, exponentBits: 4, bias: 7, fnuz: false, hasInfinity: false) == 448)
        #expect(NarrowFloat.float8(0x40, exponentBits: 4, bias: 8, fnuz: true, hasInfinity: false) == 1)
        #expect(NarrowFloat.float8(0x80, exponentBits: 4, bias: 8, fnuz: true, hasInfinity: false).isNaN)
        #expect(NarrowFloat.float8(0x3C, exponentBits: 5, bias: 15, fnuz: false, hasInfinity: true) == 1)
        #expect(NarrowFloat.float8(0x7C, exponentBits: 5, bias: 15, fnuz: false, hasInfinity: true) == .infinity)
        #expect(NarrowFloat.float8(0x40, exponentBits: 5, bias: 16, fnuz: true, hasInfinity: false) == 1)
        #expect(NarrowFloat.float16(0x0001) == 0x1p-24)
        #expect(NarrowFloat.float16(0x7C00) == .infinity)
    }
}

@Suite struct ByteStorageTests {
    @Test func slicesCompareByContent() {
        let a = ByteSlice(copying: [1, 2, 3])
        let b = ByteSlice(copying: [1, 2, 3])
        #expect(a == b)
        #expect(a != ByteSlice(copying: [1, 2, 4]))
        #expect(ByteSlice(a.storage, offset: 1, count: 3) == nil)
        #expect(ByteSlice(a.storage, offset: 1, count: 2)?.array == [2, 3])
    }

    @Test func mappedFileReadsInPlace() throws {
        let directory = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let path = directory.appendingPathComponent("bytes.bin").path
        try Data([9, 8, 7]).write(to: URL(fileURLWithPath: path))
        let storage = try MappedFile.map(path: path)
        #expect(storage.array == [9, 8, 7])
        #expect(throws: FileError.self) { try MappedFile.map(path: directory.appendingPathComponent("missing").path) }
        #expect(throws: FileError.notARegularFile(path: directory.path)) { try MappedFile.map(path: directory.path) }
    }

    @Test func atomicWriterLeavesNothingWithoutCommit() throws {
        let directory = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let path = directory.appendingPathComponent("out.bin").path
        do {
            let writer = try AtomicFileWriter(path: path)
            try writer.write(ByteSlice(copying: [1, 2, 3]))
        }
        #expect(try FileManager.default.contentsOfDirectory(atPath: directory.path).isEmpty)
        let writer = try AtomicFileWriter(path: path)
        try writer.write(ByteSlice(copying: [1, 2, 3]))
        try writer.writeZeros(2)
        #expect(writer.position == 5)
        try writer.commit()
        #expect(try Data(contentsOf: URL(fileURLWithPath: path)) == Data([1, 2, 3, 0, 0]))
        #expect(try FileManager.default.contentsOfDirectory(atPath: directory.path) == ["out.bin"])
        // Not durable (no fsync): the same rename, so the same all-or-nothing file.
        let quick = try AtomicFileWriter(path: path)
        try quick.write(ByteSlice(copying: [9]))
        try quick.commit(durable: false)
        #expect(try Data(contentsOf: URL(fileURLWithPath: path)) == Data([9]))
        #expect(try FileManager.default.contentsOfDirectory(atPath: directory.path) == ["out.bin"])
    }

    @Test func directoryCreateMakesParentsAndAcceptsExistingFolders() throws {
        let directory = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let nested = directory.path + "/a//b/./c/"
        try Directory.create(nested)
        try Directory.create(nested)
        try Directory.create(directory.path + "/a")
        var isFolder: ObjCBool = false
        #expect(FileManager.default.fileExists(atPath: directory.path + "/a/b/c", isDirectory: &isFolder) && isFolder.boolValue)
        let file = directory.path + "/a/file"
        #expect(FileManager.default.createFile(atPath: file, contents: Data([1])))
        #expect(throws: FileError.self) { try Directory.create(file) }
        #expect(throws: FileError.self) { try Directory.create(file + "/below") }
    }
}

@Suite struct JSONTests {
    @Test func serializesDeterministically() {
        let value = JSON.object([("b", .int(1)), ("a", .array([.double(0.5), .string("q\"\n")])), ("c", .object([]))])
        #expect(value.serialized(pretty: false) == #"{"b":1,"a":[0.5,"q\"\n"],"c":{}}"#)
        #expect(value.serialized() == "{\n  \"b\": 1,\n  \"a\": [0.5, \"q\\\"\\n\"],\n  \"c\": {}\n}")
        #expect(JSON.double(.nan).serialized() == "\"NaN\"")
        #expect(JSON.double(3).serialized() == "3.0")
    }

    @Test func parsesBackWithFoundation() throws {
        let value = JSON.object([("x", .array([.int(-3), .double(1e-30), .null, .bool(true)])), ("\u{1}", .string("é"))])
        let parsed = try JSONSerialization.jsonObject(with: Data(value.serialized().utf8)) as? [String: Any]
        #expect(parsed?["\u{1}"] as? String == "é")
        #expect((parsed?["x"] as? [Any])?.count == 4)
    }
}

@Suite struct SHA256Tests {
    func hex(_ bytes: [UInt8]) -> String { bytes.map { String(format: "%02x", $0) }.joined() }

    @Test func knownVectors() {
        #expect(hex([UInt8]().withUnsafeBytes { SHA256.hash($0) }) == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        #expect(hex(Array("abc".utf8).withUnsafeBytes { SHA256.hash($0) }) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        let long = Array("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq".utf8)
        #expect(hex(long.withUnsafeBytes { SHA256.hash($0) }) == "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1")
        // A million 'a's, fed in uneven pieces: the streaming path must agree with the one-shot hash.
        let million = [UInt8](repeating: UInt8(ascii: "a"), count: 1_000_000)
        var hasher = SHA256()
        var offset = 0, piece = 1
        while offset < million.count {
            let end = min(million.count, offset + piece)
            million[offset..<end].withUnsafeBytes { hasher.update($0) }
            offset = end
            piece = piece * 3 % 1000 + 1
        }
        #expect(hex(hasher.finalize()) == "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0")
    }
}
