import Foundation
import OnnxcCore
import OnnxcFormat
import Testing

@Suite struct CRC32CTests {
    /// Check value from the CRC catalogue, and the iSCSI vectors of RFC 3720 appendix B.4.
    @Test func knownVectors() {
        #expect(CRC32C.checksum(Array("123456789".utf8)) == 0xE306_9283)
        #expect(CRC32C.checksum([UInt8]()) == 0)
        #expect(CRC32C.checksum([UInt8](repeating: 0, count: 32)) == 0x8A91_36AA)
        #expect(CRC32C.checksum([UInt8](repeating: 0xFF, count: 32)) == 0x62A8_AB43)
        #expect(CRC32C.checksum((0..<32).map(UInt8.init)) == 0x46DD_794E)
        #expect(CRC32C.checksum((0..<32).reversed().map(UInt8.init)) == 0x113F_DB5C)
    }

    @Test func incrementalEqualsOneShotAtEverySplit() {
        var rng = SplitMix(seed: 9)
        let bytes = (0..<300).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
        let whole = CRC32C.checksum(bytes)
        for split in 0...bytes.count {
            var crc = CRC32C()
            crc.update(bytes[..<split])
            crc.update(bytes[split...])
            #expect(crc.value == whole)
        }
        var zeros = CRC32C()
        zeros.update([1, 2, 3])
        zeros.updateZeros(1000)
        #expect(zeros.value == CRC32C.checksum([1, 2, 3] + [UInt8](repeating: 0, count: 1000)))
    }

    /// The interleaved path for long inputs against a bit-at-a-time reference, at lengths around its block
    /// size and at unaligned starts.
    @Test func longInputsMatchTheBitwiseDefinition() {
        func reference(_ bytes: ArraySlice<UInt8>) -> UInt32 {
            var crc: UInt32 = 0xFFFF_FFFF
            for byte in bytes {
                crc ^= UInt32(byte)
                for _ in 0..<8 { crc = (crc & 1) != 0 ? (crc >> 1) ^ 0x82F6_3B78 : crc >> 1 }
            }
            return ~crc
        }
        var rng = SplitMix(seed: 11)
        let bytes = (0..<(8 * 4096 + 64)).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
        for (start, length) in [(0, 3 * 4096 - 1), (0, 3 * 4096), (1, 3 * 4096 + 17), (3, 6 * 4096), (7, 8 * 4096 + 5)] {
            let slice = bytes[start..<(start + length)]
            #expect(CRC32C.checksum(slice) == reference(slice), "start \(start) length \(length)")
        }
    }

    /// Speed, in a release build only: `ONNXC_FORMAT_BENCH=1 swift test -c release -Xswiftc -enable-testing
    /// --filter FormatBenchmark`.
    @Test(.enabled(if: ProcessInfo.processInfo.environment["ONNXC_FORMAT_BENCH"] != nil))
    func formatBenchmark() throws {
        let megabytes = 100
        let storage = ByteStorage(count: megabytes << 20) { buffer in
            for i in 0..<buffer.count { buffer[i] = UInt8(truncatingIfNeeded: i &* 2_654_435_761 >> 7) }
        }
        var best = Double.infinity
        for _ in 0..<5 {
            let start = DispatchTime.now().uptimeNanoseconds
            let value = storage.withUnsafeBytes { CRC32C.checksum($0) }
            best = min(best, Double(DispatchTime.now().uptimeNanoseconds - start) / 1e6)
            #expect(value != 0)
        }
        print("CRC32C of \(megabytes) MB: \(best) ms (\(Double(megabytes) / 1.024 / best) GB/s)")
        #expect(best < 100)

        // A program of ~100 MB of weights in 1 MB constants.
        var tensors: [ProgramTensor] = []
        for i in 0..<megabytes {
            let slice = try #require(ByteSlice(storage, offset: i << 20, count: 1 << 20))
            let data = try TensorData(dtype: .float, dims: [512, 512], payload: .bytes(slice))
            tensors.append(ProgramTensor(name: "w\(i)", dtype: .float, shape: Shape(fixed: [512, 512]), storage: .constant(data, layout: .plain)))
        }
        let program = Program(metadata: ProgramMetadata(compiler: "bench", sourceSHA256: [], sourceName: "", producer: "", optimization: ""),
                              tensors: tensors, graphs: [ProgramGraph(name: "main", inputs: [], outputs: [], ops: [])], arenaBytes: 0)
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("oxc-bench-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let path = folder.appendingPathComponent("bench.oxc").path
        var start = DispatchTime.now().uptimeNanoseconds
        try OXCWriter.write(program, to: path)
        let writeMs = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e6
        start = DispatchTime.now().uptimeNanoseconds
        let read = try OXCReader.read(path: path)
        let readMs = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e6
        start = DispatchTime.now().uptimeNanoseconds
        let lazy = try OXCReader.read(path: path, options: OXCReader.Options(verifyConstantsChecksum: false))
        let lazyMs = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e6
        start = DispatchTime.now().uptimeNanoseconds
        let inMemory = try OXCWriter.serialize(program)
        let serializeMs = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e6
        #expect(read.tensors.count == megabytes && lazy.tensors.count == megabytes && inMemory.count > megabytes << 20)
        print("write \(megabytes) MB program to file (fsync included): \(writeMs) ms; serialize in memory: \(serializeMs) ms")
        print("read (map + verify every CRC): \(readMs) ms; read without the constants CRC: \(lazyMs) ms")
    }
}
