import Foundation
import OnnxcCore
import OnnxcFormat
import OnnxcTestSupport
import Testing

@Suite struct OXCRoundTripTests {
    @Test func everythingRoundTripsInMemory() throws {
        let program = try OXCFixtures.everything()
        let bytes = try OXCWriter.serialize(program)
        let storage = ByteStorage(copying: bytes)
        let read = try OXCReader.read(storage)
        #expect(ProgramDiff.differences(program, read) == [])
        // Writing is deterministic: the read program writes the same bytes.
        #expect(try OXCWriter.serialize(read) == bytes)
    }

    @Test func minimalProgramRoundTrips() throws {
        let program = OXCFixtures.minimal()
        let read = try OXCReader.read(ByteStorage(copying: try OXCWriter.serialize(program)))
        #expect(ProgramDiff.differences(program, read) == [])
    }

    @Test func constantsAreAlignedSlicesOfTheInput() throws {
        let storage = ByteStorage(copying: try OXCWriter.serialize(try OXCFixtures.everything()))
        let read = try OXCReader.read(storage)
        var byteConstants = 0
        for tensor in read.tensors {
            guard case .constant(let data, _) = tensor.storage, case .bytes(let slice) = data.payload else { continue }
            byteConstants += 1
            #expect(slice.storage === storage, "\(tensor.name) was copied")
            #expect(slice.offset % OXCFormat.constantAlignment == 0, "\(tensor.name) at \(slice.offset)")
            if let base = storage.baseAddress {
                #expect(Int(bitPattern: base + slice.offset) % 64 == 0)
            }
        }
        #expect(byteConstants == 5)
    }

    @Test func misalignedStorageIsCopiedOnceToKeepConstantsAligned() throws {
        let bytes = try OXCWriter.serialize(try OXCFixtures.everything())
        let padded = ByteStorage(copying: [0] + bytes)
        let base = try #require(padded.baseAddress)
        let shifted = ByteStorage(base: base + 1, count: bytes.count, owner: padded)
        let read = try OXCReader.read(shifted)
        #expect(ProgramDiff.differences(try OXCFixtures.everything(), read) == [])
        for tensor in read.tensors {
            guard case .constant(let data, _) = tensor.storage, let slice = data.bytes, let b = slice.storage.baseAddress else { continue }
            #expect(Int(bitPattern: b + slice.offset) % 64 == 0)
        }
    }

    @Test func writtenFileMapsAndReadsBack() throws {
        let folder = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: folder) }
        let path = folder.appendingPathComponent("model.oxc").path
        let program = try OXCFixtures.everything()
        try OXCWriter.write(program, to: path)
        let onDisk = try Data(contentsOf: URL(fileURLWithPath: path))
        #expect([UInt8](onDisk) == (try OXCWriter.serialize(program)))
        let mapped = try MappedFile.map(path: path)
        let read = try OXCReader.read(mapped)
        #expect(ProgramDiff.differences(program, read) == [])
        if case .constant(let data, _)? = read.tensors.first(where: { $0.name == "w" })?.storage {
            #expect(data.bytes?.storage === mapped)
        } else {
            Issue.record("w is not a constant")
        }
        #expect(ProgramDiff.differences(program, try OXCReader.read(path: path)) == [])
        // Only the final file remains: the temporary sibling was renamed.
        #expect(try FileManager.default.contentsOfDirectory(atPath: folder.path) == ["model.oxc"])
    }

    /// The file is written in 2 MiB chunks, whole chunks straight from a payload when one starts at a chunk
    /// boundary: constants that end short of, exactly at and past boundaries give the bytes `serialize` gives.
    @Test func fileWrittenInChunksHasTheSerializedBytes() throws {
        let folder = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: folder) }
        let minimal = OXCFixtures.minimal()
        var tensors: [ProgramTensor] = []
        for (i, floats) in [5, (3 << 19) + 3, 1 << 20, 16, (1 << 19) - 16, 3 << 18].enumerated() {
            let payload = ByteStorage(count: floats * 4) { buffer in
                for j in 0..<buffer.count { buffer[j] = UInt8(truncatingIfNeeded: (j &+ i) &* 2_654_435_761 >> 9) }
            }
            let slice = try #require(ByteSlice(payload, offset: 0, count: floats * 4))
            let data = try TensorData(dtype: .float, dims: [Int64(floats)], payload: .bytes(slice))
            tensors.append(ProgramTensor(name: "c\(i)", dtype: .float, shape: Shape(fixed: [Int64(floats)]), storage: .constant(data, layout: .plain)))
        }
        let program = Program(metadata: minimal.metadata, tensors: tensors, graphs: minimal.graphs, arenaBytes: 0)
        let path = folder.appendingPathComponent("chunks.oxc").path
        try OXCWriter.write(program, to: path)
        let onDisk = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
        let serialized = try OXCWriter.serialize(program)
        #expect(onDisk.count == serialized.count && onDisk.count > 3 * (2 << 20))
        #expect(onDisk == serialized)
        #expect(ProgramDiff.differences(program, try OXCReader.read(path: path)) == [])
    }

    @Test func fileStartsWithTheMagicAndVersion() throws {
        let bytes = try OXCWriter.serialize(OXCFixtures.minimal())
        #expect(Array(bytes.prefix(8)) == [0x89, 0x4F, 0x58, 0x43, 0x0D, 0x0A, 0x1A, 0x0A])
        #expect(OXCLayoutView.u16(bytes, 8) == OXCFormat.majorVersion && OXCLayoutView.u16(bytes, 10) == OXCFormat.minorVersion)
        #expect(OXCLayoutView.u64(bytes, 16) == UInt64(bytes.count))
        let view = OXCLayoutView(bytes)
        #expect(view.sections.map(\.kind).sorted() == Array(1...8))
        #expect((view.section(4)?.offset ?? 1) % 64 == 0)
    }

    @Test func writerRejectsWhatTheFormatCannotHold() throws {
        var program = OXCFixtures.minimal()
        program.graphs[0].inputs = [3]
        #expect(throws: FormatError.self) { try OXCWriter.serialize(program) }
        program = OXCFixtures.minimal()
        program.tensors = [ProgramTensor(name: "a", dtype: .float, shape: Shape(fixed: [-1]), storage: .dynamic)]
        #expect(throws: FormatError.self) { try OXCWriter.serialize(program) }
        program = OXCFixtures.minimal()
        program.tensors = [ProgramTensor(name: "a", dtype: .float, shape: nil, storage: .arena(offset: -64, byteCount: 4))]
        #expect(throws: FormatError.self) { try OXCWriter.serialize(program) }
        let failed = OXCFixtures.minimal()
        do {
            try OXCWriter.write(failed, to: "/nonexistent-folder/x.oxc")
            Issue.record("wrote into a missing folder")
        } catch {
            guard case .file = error else { throw error }
            #expect(error.hint?.isEmpty == false)
        }
    }
}
