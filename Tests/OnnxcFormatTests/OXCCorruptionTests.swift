import OnnxcCore
@testable import OnnxcFormat
import Testing

/// The reader treats a file as untrusted: every damaged file gives a `FormatError`, never a crash.
@Suite struct OXCCorruptionTests {
    static let bytes: [UInt8] = (try? OXCWriter.serialize(OXCFixtures.everything())) ?? []

    @Test func truncationAtEverySectionBoundaryAndRandomLengthsIsAnError() throws {
        let bytes = Self.bytes
        let view = OXCLayoutView(bytes)
        var lengths = Set<Int>(0...64)
        for s in view.sections { lengths.formUnion([s.offset, s.offset + 1, s.offset + s.size - 1, s.offset + s.size]) }
        lengths.formUnion([view.tableOffset, view.tableOffset + view.entryBytes * view.sections.count])
        var rng = SplitMix(seed: 1)
        for _ in 0..<300 { lengths.insert(Int(rng.next() % UInt64(bytes.count))) }
        for length in lengths.sorted() where length < bytes.count {
            let error = expectFormatError(Array(bytes.prefix(length)), "truncated to \(length)")
            if length >= 48, let error {
                guard case .truncated = error else {
                    Issue.record("truncated to \(length): \(error)")
                    continue
                }
                #expect(error.description.contains("onnxc compile"))
            }
        }
    }

    @Test func everyHeaderAndSectionTableByteIsProtected() throws {
        let bytes = Self.bytes
        let view = OXCLayoutView(bytes)
        let tableEnd = view.tableOffset + view.entryBytes * view.sections.count
        for i in Array(0..<view.headerBytes) + Array(view.tableOffset..<tableEnd) {
            for mask: UInt8 in [0x01, 0x80] {
                var damaged = bytes
                damaged[i] ^= mask
                _ = expectFormatError(damaged, "byte \(i) ^ \(mask)")
            }
        }
    }

    @Test func flippedBytesInsideEverySectionFailTheChecksum() throws {
        let bytes = Self.bytes
        var rng = SplitMix(seed: 2)
        for section in OXCLayoutView(bytes).sections where section.size > 0 {
            let positions = section.size <= 512 ? Array(0..<section.size) : (0..<200).map { _ in Int(rng.next() % UInt64(section.size)) }
            for p in positions {
                var damaged = bytes
                damaged[section.offset + p] ^= UInt8(truncatingIfNeeded: rng.next() | 1)
                guard let error = expectFormatError(damaged, "section \(section.kind) byte \(p)") else { continue }
                guard case .checksumMismatch(let location, _, _) = error else {
                    Issue.record("section \(section.kind) byte \(p): \(error)")
                    continue
                }
                #expect(location.byteOffset == section.offset)
            }
        }
    }

    /// With the checksums recomputed, damage reaches the structural validation; it must reject or accept the
    /// file cleanly, and whatever it accepts must be writable again.
    @Test func damageBehindValidChecksumsNeverCrashes() throws {
        let bytes = Self.bytes
        let sections = OXCLayoutView(bytes).sections.filter { $0.kind != SectionKind.constants.rawValue }
        var rng = SplitMix(seed: 3)
        var rejected = 0
        for round in 0..<3000 {
            var damaged = bytes
            let section = sections[round % sections.count]
            guard section.size > 0 else { continue }
            for _ in 0..<(1 + Int(rng.next() % 3)) {
                let p = section.offset + Int(rng.next() % UInt64(section.size))
                switch rng.next() % 4 {
                case 0: damaged[p] = 0xFF
                case 1: damaged[p] = 0
                case 2: damaged[p] ^= 0x80
                default: damaged[p] = UInt8(truncatingIfNeeded: rng.next())
                }
            }
            OXCLayoutView.restamp(&damaged)
            do {
                let program = try OXCReader.read(ByteStorage(copying: damaged))
                _ = try? OXCWriter.serialize(program)
            } catch {
                rejected += 1
                #expect(!error.what.isEmpty && error.hint != nil)
            }
        }
        #expect(rejected > 1000)
    }

    /// A constants section big enough to be verified on two threads (9 MiB): a flip in either half, or at the
    /// split, is caught; without the constants check the same file reads.
    @Test func flippedBitsInALargeConstantsSectionFailTheChecksum() throws {
        let count = 9 << 20
        let payload = ByteStorage(count: count) { buffer in
            for i in 0..<buffer.count { buffer[i] = UInt8(truncatingIfNeeded: i &* 2_654_435_761 >> 7) }
        }
        let data = try TensorData(dtype: .float, dims: [Int64(count / 4)], payload: .bytes(try #require(ByteSlice(payload, offset: 0, count: count))))
        let minimal = OXCFixtures.minimal()
        let program = Program(metadata: minimal.metadata,
                              tensors: [ProgramTensor(name: "big", dtype: .float, shape: Shape(fixed: [Int64(count / 4)]), storage: .constant(data, layout: .plain))],
                              graphs: minimal.graphs, arenaBytes: 0)
        let bytes = try OXCWriter.serialize(program)
        _ = try OXCReader.read(ByteStorage(copying: bytes))
        let constants = try #require(OXCLayoutView(bytes).sections.first { $0.kind == SectionKind.constants.rawValue })
        #expect(constants.size >= count)
        for p in [0, constants.size / 2 - 1, constants.size / 2, constants.size / 2 + 64, 3 * constants.size / 4, constants.size - 1] {
            var damaged = bytes
            damaged[constants.offset + p] ^= 0x10
            guard let error = expectFormatError(damaged, "constants byte \(p)") else { continue }
            guard case .checksumMismatch(let location, _, _) = error else {
                Issue.record("constants byte \(p): \(error)")
                continue
            }
            #expect(location.section == "constants")
            _ = try OXCReader.read(ByteStorage(copying: damaged), options: OXCReader.Options(verifyConstantsChecksum: false))
            // The deferred check (`open`, for loaders that build their plan meanwhile) catches the same flip when
            // asked, and a check dropped unasked waits for its threads before the bytes go.
            let opened = try OXCReader.open(ByteStorage(copying: damaged))
            do {
                try opened.check.verify()
                Issue.record("constants byte \(p): the deferred check passed")
            } catch {
                guard case .checksumMismatch(let deferred, _, _) = error else {
                    Issue.record("constants byte \(p), deferred: \(error)")
                    continue
                }
                #expect(deferred == location)
            }
            _ = try OXCReader.open(ByteStorage(copying: damaged))
        }
        try OXCReader.open(ByteStorage(copying: bytes)).check.verify()
    }

    @Test func notAnOXCFile() throws {
        for bytes: [UInt8] in [[], [0x89], Array("ONNX model, not compiled".utf8), [UInt8](repeating: 0, count: 100)] {
            guard let error = expectFormatError(bytes, "garbage") else { continue }
            #expect(error == .notAnOXCFile(byteCount: bytes.count))
            #expect(error.description.contains("onnxc compile"))
        }
    }
}

/// Semantically invalid programs that the writer lets through (it checks only what it must to encode) and the
/// reader rejects by name.
@Suite struct OXCValidationTests {
    static func rejection(_ program: Program) throws -> FormatError? {
        expectFormatError(try OXCWriter.serialize(program), "invalid program")
    }

    @Test func subgraphCyclesAreRejected() throws {
        var program = OXCFixtures.minimal()
        let identity = try #require(Opcode(domain: "", opType: "Loop"))
        program.graphs = [
            ProgramGraph(name: "main", inputs: [], outputs: [], ops: [ProgramOp(name: "loop", opcode: identity, opset: 21, inputs: [], outputs: [], attributes: [ProgramAttribute("body", .graph(1))])]),
            ProgramGraph(name: "body", inputs: [], outputs: [], ops: [ProgramOp(name: "loop2", opcode: identity, opset: 21, inputs: [], outputs: [], attributes: [ProgramAttribute("body", .graphs([0]))])]),
        ]
        let error = try #require(try Self.rejection(program))
        #expect(error.what.contains("cycle"))
        program.graphs[1].ops[0].attributes = [ProgramAttribute("body", .graph(1))]
        #expect(try Self.rejection(program)?.what.contains("cycle") == true)
    }

    @Test func subgraphNestingIsBounded() throws {
        let loop = try #require(Opcode(domain: "", opType: "Loop"))
        func chain(_ depth: Int) -> Program {
            var program = OXCFixtures.minimal()
            program.graphs = (0..<depth).map { g in
                ProgramGraph(name: "g\(g)", inputs: [], outputs: [], ops: g + 1 < depth
                    ? [ProgramOp(name: "n\(g)", opcode: loop, opset: 21, inputs: [], outputs: [], attributes: [ProgramAttribute("body", .graph(g + 1))])]
                    : [])
            }
            return program
        }
        _ = try OXCReader.read(ByteStorage(copying: try OXCWriter.serialize(chain(OXCFormat.maxGraphNestingDepth))))
        #expect(try Self.rejection(chain(OXCFormat.maxGraphNestingDepth + 1))?.what.contains("nest") == true)
    }

    @Test func arenaSlotsMustFitTheArenaAndBeAligned() throws {
        var program = OXCFixtures.minimal()
        program.arenaBytes = 128
        program.tensors = [ProgramTensor(name: "a", dtype: .float, shape: nil, storage: .arena(offset: 64, byteCount: 65))]
        #expect(try Self.rejection(program)?.what.contains("outside the 128-byte arena") == true)
        program.tensors = [ProgramTensor(name: "a", dtype: .float, shape: nil, storage: .arena(offset: 4, byteCount: 4))]
        #expect(try Self.rejection(program)?.what.contains("multiple of 64") == true)
        program.tensors = [ProgramTensor(name: "a", dtype: .float, shape: nil, storage: .arena(offset: 64, byteCount: 64))]
        _ = try OXCReader.read(ByteStorage(copying: try OXCWriter.serialize(program)))
    }

    @Test func unknownLayoutAndWrongParameterCountAreRejected() throws {
        let data = try TensorData(dtype: .float, dims: [1], payload: .bytes(OXCFixtures.floats([1])))
        var program = OXCFixtures.minimal()
        program.tensors = [ProgramTensor(name: "c", dtype: .float, shape: nil, storage: .constant(data, layout: .packed(code: 77, parameters: [])))]
        let unknown = try #require(try Self.rejection(program))
        guard case .unsupported = unknown else { throw unknown }
        program.tensors = [ProgramTensor(name: "c", dtype: .float, shape: nil, storage: .constant(data, layout: .packed(code: 1, parameters: [1, 2])))]
        #expect(try Self.rejection(program)?.what.contains("not 3") == true)
    }

    /// Constant payload sizes are checked against dims × dtype size: patch a dim in the tensor table.
    @Test func constantSizeMustMatchItsDims() throws {
        var program = OXCFixtures.minimal()
        let data = try TensorData(dtype: .float, dims: [2, 3], payload: .bytes(OXCFixtures.floats([1, 2, 3, 4, 5, 6])))
        program.tensors = [ProgramTensor(name: "c", dtype: .float, shape: nil, storage: .constant(data, layout: .plain))]
        var bytes = try OXCWriter.serialize(program)
        let tensors = try #require(OXCLayoutView(bytes).section(SectionKind.tensors.rawValue))
        // count, size, name, dtype, storage class, rank -1, A, B, data dtype, data rank, dim 0 at +44.
        let dim0 = tensors.offset + 4 + 44
        #expect(OXCLayoutView.u64(bytes, dim0) == 2)
        for (value, expected) in [(UInt64(3), "needs 36 bytes but has 24"), (UInt64.max, "negative"), (UInt64(1) << 62, "overflow")] {
            OXCLayoutView.put64(&bytes, dim0, value)
            OXCLayoutView.restamp(&bytes)
            let error = try #require(expectFormatError(bytes, "dim \(value)"))
            #expect(error.what.contains(expected), "\(error)")
            #expect(error.formatLocation?.section == "tensors" && error.formatLocation?.record == 0)
        }
    }
}

/// A small deterministic generator, so failures reproduce.
struct SplitMix {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
