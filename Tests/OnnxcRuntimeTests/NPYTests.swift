import OnnxcCore
import OnnxcRuntime
import Testing

@Suite struct NPYTests {
    @Test func roundTripsEveryNumPyType() throws {
        let tensors: [Tensor] = [
            try Tensor([Float(1.5), -2, .infinity], shape: [3]),
            try Tensor([Double(1e-300), 2], shape: [2, 1]),
            try Tensor([Float16(0.5)], shape: []),
            try Tensor([Int8(-1), 2], shape: [2]),
            try Tensor([Int16(-300)], shape: [1]),
            try Tensor([Int32.min, 7], shape: [2]),
            try Tensor([Int64.max], shape: [1, 1, 1]),
            try Tensor([UInt8(255)], shape: [1]),
            try Tensor([UInt16(65535)], shape: [1]),
            try Tensor([UInt32.max], shape: [1]),
            try Tensor([UInt64.max], shape: [1]),
            try Tensor([true, false], shape: [2]),
            try Tensor(zeros: .float, shape: [0, 3]),
            Tensor(strings: ["héllo", "", "✓"], shape: [3]),
        ]
        for tensor in tensors {
            let back = try NPY.read(try NPY.write(tensor))
            #expect(TensorComparison.difference(back, tensor, rtol: 0, atol: 0) == nil, "\(tensor.dtype) \(tensor.shape)")
        }
    }

    /// Mapped storage (or any storage) of an aligned little-endian file is used in place; the same values as the
    /// decoding path either way, and the streaming writer gives the same bytes as the array writer.
    @Test func readsAlignedStorageInPlace() throws {
        let tensor = try Tensor((0..<48).map { Float($0) / 3 }, shape: [2, 4, 6])
        let bytes = try NPY.write(tensor)
        // Storage whose base is 64-byte aligned, as a mapping is: the data (at offset 64·k) is borrowed.
        let storage = ByteStorage(count: bytes.count) { out in out.copyBytes(from: bytes) }
        let read = try NPY.read(storage)
        #expect(read.shape == [2, 4, 6] && read.array(Float.self) == tensor.array(Float.self))
        let base = try #require(storage.baseAddress), data = try #require(read.unsafeBaseAddress)
        #expect(data >= base && data < base + storage.count, "aligned data is used in place")
        // Big-endian and Fortran files decode (copied), with the same result as the array reader.
        let big = Self.file(descr: ">i4", shape: "(2,)", payload: [0, 0, 0, 1, 0xFF, 0xFF, 0xFF, 0xFE])
        let bigStorage = ByteStorage(count: big.count) { out in out.copyBytes(from: big) }
        #expect(try NPY.read(bigStorage).array(Int32.self) == [1, -2])
        var streamed: [UInt8] = []
        _ = try NPY.write(tensor) { (piece: UnsafeRawBufferPointer) throws(NPY.Failure) in streamed += Array(piece) }.get()
        #expect(streamed == bytes)
    }

    static func file(descr: String, fortran: String = "False", shape: String, payload: [UInt8]) -> [UInt8] {
        let header = "{'descr': '\(descr)', 'fortran_order': \(fortran), 'shape': \(shape), }\n"
        return [0x93, 0x4E, 0x55, 0x4D, 0x50, 0x59, 1, 0, UInt8(header.utf8.count), 0] + Array(header.utf8) + payload
    }

    @Test func readsBigEndianAndVersionTwo() throws {
        let big = try NPY.read(Self.file(descr: ">i4", shape: "(2,)", payload: [0, 0, 0, 1, 0xFF, 0xFF, 0xFF, 0xFE]))
        #expect(big.array(Int32.self) == [1, -2])
        var v2 = Self.file(descr: "<f4", shape: "()", payload: [0, 0, 0x80, 0x3F])
        let headerLength = Int(v2[8])
        v2 = Array(v2[0..<6]) + [2, 0, UInt8(headerLength), 0, 0, 0] + Array(v2[10...])
        #expect(try NPY.read(v2).array(Float.self) == [1])
    }

    @Test func rejectsWhatItCannotRepresent() {
        #expect(throws: NPY.Failure.self) { try NPY.read(Self.file(descr: "<f4", fortran: "True", shape: "(1,)", payload: [0, 0, 0, 0])) }
        #expect(throws: NPY.Failure.self) { try NPY.read(Self.file(descr: "|O", shape: "(1,)", payload: [])) }
        #expect(throws: NPY.Failure.self) { try NPY.read(Self.file(descr: "<f4", shape: "(4,)", payload: [0, 0])) }
        #expect(throws: NPY.Failure.self) { try NPY.read([1, 2, 3]) }
        #expect(throws: NPY.Failure.self) { try NPY.write(try Tensor(zeros: .bfloat16, shape: [1])) }
    }
}
