import CChecksum
import Foundation
import OnnxcCore
import OnnxcFormat
import Testing

/// CRC-32C by the bitwise definition (schemas/oxc-format.md), the reference every fast path is checked against.
private func bitwiseCRC32C<C: Collection>(_ bytes: C) -> UInt32 where C.Element == UInt8 {
    var crc: UInt32 = 0xFFFF_FFFF
    for byte in bytes {
        crc ^= UInt32(byte)
        for _ in 0..<8 { crc = (crc & 1) != 0 ? (crc >> 1) ^ 0x82F6_3B78 : crc >> 1 }
    }
    return ~crc
}

private func randomBytes(_ count: Int, seed: UInt64) -> [UInt8] {
    var rng = SplitMix(seed: seed)
    var words = (0..<(count + 7) / 8).map { _ in rng.next() }
    return words.withUnsafeMutableBytes { Array($0.prefix(count)) }
}

/// Every path this CPU has (on one without SSE4.2 or AVX-512 the missing ones compute the fallback, so the
/// comparisons still hold, but test less).
private let paths: [cc_crc32c_path] = [CC_CRC32C_PORTABLE, CC_CRC32C_SSE42, CC_CRC32C_AVX512]

private func checksum(_ path: cc_crc32c_path, _ bytes: ArraySlice<UInt8>, seed: UInt32 = 0) -> UInt32 {
    bytes.withUnsafeBytes { cc_crc32c_with(path, seed, $0.baseAddress, $0.count) }
}

@Suite struct CRC32CTests {
    /// Check value from the CRC catalogue, and the iSCSI vectors of RFC 3720 appendix B.4, on every path.
    @Test func knownVectors() {
        let vectors: [([UInt8], UInt32)] = [
            (Array("123456789".utf8), 0xE306_9283),
            ([], 0),
            ([UInt8](repeating: 0, count: 32), 0x8A91_36AA),
            ([UInt8](repeating: 0xFF, count: 32), 0x62A8_AB43),
            ((0..<32).map(UInt8.init), 0x46DD_794E),
            ((0..<32).reversed().map(UInt8.init), 0x113F_DB5C),
        ]
        for (bytes, expected) in vectors {
            #expect(CRC32C.checksum(bytes) == expected)
            for path in paths { #expect(checksum(path, bytes[...]) == expected, "path \(path.rawValue)") }
        }
    }

    /// The x86-64 machines onnxc is benchmarked on have the instructions; if this fails on one that should,
    /// loads silently take the slow path.
    @Test func bestPathIsReported() {
        #if arch(x86_64)
        let cpuinfo = (try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8)) ?? ""
        if cpuinfo.contains(" sse4_2") && cpuinfo.contains(" pclmulqdq") {
            #expect(cc_crc32c_best_path().rawValue >= CC_CRC32C_SSE42.rawValue)
        }
        if cpuinfo.contains(" avx512f") && cpuinfo.contains(" vpclmulqdq") {
            #expect(cc_crc32c_best_path() == CC_CRC32C_AVX512)
        }
        #endif
    }

    /// Every length 0…300 at every start offset 0…15 (so every alignment of the 8- and 64-byte loads), on every
    /// path, from a non-zero running checksum, against the bitwise definition.
    @Test func everyPathMatchesTheDefinitionOnShortBuffers() {
        let bytes = randomBytes(300 + 16, seed: 21)
        for start in 0..<16 {
            for length in 0...300 {
                let slice = bytes[start..<(start + length)]
                let expected = bitwiseCRC32C(bytes[0..<start] + slice)
                let prefix = bitwiseCRC32C(bytes[0..<start])
                for path in paths {
                    let got = checksum(path, slice, seed: prefix)
                    if got != expected { Issue.record("path \(path.rawValue) start \(start) length \(length): \(got) != \(expected)") }
                }
            }
        }
    }

    /// Lengths around the block sizes of each path (the portable path's 3 × 4 KiB, SSE4.2's 3 × 256 B and
    /// 3 × 8 KiB, AVX-512's 1 KiB minimum and 256-byte steps) at random offsets, and a few MB.
    @Test func everyPathAgreesOnLongBuffers() {
        let bytes = randomBytes(3 << 20, seed: 23)
        var rng = SplitMix(seed: 29)
        var lengths = [767, 768, 769, 1023, 1024, 1025, 1087, 1279, 1280, 12_287, 12_288, 12_289, 24_575, 24_576,
                       24_577, 49_152 + 7, 100_000, 1 << 20, (3 << 20) - 64]
        for _ in 0..<40 { lengths.append(Int(rng.next() % 200_000)) }
        for length in lengths {
            let start = Int(rng.next() % 64)
            let slice = bytes[start..<(start + length)]
            let expected = checksum(CC_CRC32C_PORTABLE, slice)
            for path in paths.dropFirst() { #expect(checksum(path, slice) == expected, "path \(path.rawValue) length \(length) start \(start)") }
            #expect(CRC32C.checksum(slice) == expected)
        }
        // The portable path itself, at its stream boundaries, against the definition.
        for (start, length) in [(0, 3 * 4096 - 1), (0, 3 * 4096), (1, 3 * 4096 + 17), (3, 6 * 4096), (7, 8 * 4096 + 5)] {
            let slice = bytes[start..<(start + length)]
            #expect(checksum(CC_CRC32C_PORTABLE, slice) == bitwiseCRC32C(slice), "start \(start) length \(length)")
        }
    }

    @Test func combineJoinsAdjacentPieces() {
        let bytes = randomBytes(70_000, seed: 31)
        var rng = SplitMix(seed: 37)
        var splits = [0, 1, 7, 8, 255, 256, 4096, 69_999, 70_000]
        for _ in 0..<50 { splits.append(Int(rng.next() % 70_001)) }
        let whole = CRC32C.checksum(bytes)
        for split in splits {
            let first = CRC32C.checksum(bytes[..<split]), second = CRC32C.checksum(bytes[split...])
            #expect(CRC32C.combine(first, second, secondCount: bytes.count - split) == whole, "split \(split)")
        }
        #expect(cc_crc32c_combine(0x1234_5678, CRC32C.checksum([UInt8]()), 0) == 0x1234_5678)
        // Pieces of 4 GiB and more need all 64 bits of the length: moving past 2^32 bytes at once is moving past
        // 2^31 twice (a length cut to 32 bits would move by nothing).
        let once = cc_crc32c_combine(0x1234_5678, 0, 1 << 32)
        #expect(once == cc_crc32c_combine(cc_crc32c_combine(0x1234_5678, 0, 1 << 31), 0, 1 << 31))
        #expect(once != 0x1234_5678)
    }

    @Test func incrementalEqualsOneShotAtEverySplit() {
        let bytes = randomBytes(300, seed: 9)
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

    /// Split across threads, the value is the one-thread value, whatever the thread count, the length (below,
    /// at and above the size that starts a second thread) and the remainder of the split.
    @Test func parallelChecksumIsTheSequentialOne() {
        let bytes = randomBytes(17 << 20 + 13, seed: 41)
        bytes.withUnsafeBytes { all in
            for length in [0, 1, 5_000, (8 << 20) - 1, 8 << 20, (8 << 20) + 1, (12 << 20) + 63, all.count] {
                let buffer = UnsafeRawBufferPointer(rebasing: all[0..<length])
                let expected = cc_crc32c_with(CC_CRC32C_PORTABLE, 0, buffer.baseAddress, length)
                for threads in [nil, 1, 2, 3, 4, 64] {
                    #expect(CRC32C.checksum(buffer, maxThreads: threads) == expected, "length \(length) threads \(String(describing: threads))")
                }
                #expect(cc_crc32c_parallel(0xDEAD_BEEF, buffer.baseAddress, length, 2)
                        == cc_crc32c_with(CC_CRC32C_PORTABLE, 0xDEAD_BEEF, buffer.baseAddress, length))
            }
        }
    }

    /// Speed, in a release build only: `ONNXC_FORMAT_BENCH=1 swift test -c release -Xswiftc -enable-testing
    /// --filter formatBenchmark`. Prints; asserts nothing about time (shared machines are noisy).
    @Test(.enabled(if: ProcessInfo.processInfo.environment["ONNXC_FORMAT_BENCH"] != nil))
    func formatBenchmark() throws {
        let megabytes = 100
        let storage = ByteStorage(count: megabytes << 20) { buffer in
            for i in 0..<buffer.count { buffer[i] = UInt8(truncatingIfNeeded: i &* 2_654_435_761 >> 7) }
        }
        /// Best of `repeats` over the first `bytes` of the storage, in ms, and the GB/s that makes.
        func best(_ bytes: Int, repeats: Int, _ body: (UnsafeRawBufferPointer) -> UInt32) -> (ms: Double, gbs: Double) {
            var best = Double.infinity
            for _ in 0..<repeats {
                let start = DispatchTime.now().uptimeNanoseconds
                let value = storage.withUnsafeBytes { body(UnsafeRawBufferPointer(rebasing: $0[0..<bytes])) }
                best = min(best, Double(DispatchTime.now().uptimeNanoseconds - start) / 1e6)
                #expect(value != 0)
            }
            return (best, Double(bytes) / (best * 1e6))
        }
        for path in paths {
            let inCache = best(256 << 10, repeats: 2000) { cc_crc32c_with(path, 0, $0.baseAddress, $0.count) }
            let fromMemory = best(megabytes << 20, repeats: 5) { cc_crc32c_with(path, 0, $0.baseAddress, $0.count) }
            print("CRC32C path \(path.rawValue): 256 KiB in cache \(inCache.gbs) GB/s; \(megabytes) MiB from memory \(fromMemory.ms) ms (\(fromMemory.gbs) GB/s)")
        }
        let parallel = best(megabytes << 20, repeats: 5) { CRC32C.checksum($0, maxThreads: nil) }
        print("CRC32C on every core, \(megabytes) MiB from memory: \(parallel.ms) ms (\(parallel.gbs) GB/s)")

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
