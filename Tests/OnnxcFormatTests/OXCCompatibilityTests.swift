import Foundation
import OnnxcCore
@testable import OnnxcFormat
import Testing

/// Versioning rules of schemas/oxc-format.md: a newer minor still reads, a newer major is refused by name,
/// and the spec's tables are the code's tables.
@Suite struct OXCCompatibilityTests {
    @Test func newerMinorWithTrailingFieldsAndUnknownSectionsStillReads() throws {
        let program = try OXCFixtures.everything()
        var future = WriterExtensions()
        future.minorVersion = 7
        future.extraHeaderBytes = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]
        future.extraSectionEntryBytes = [0xAA, 0xBB, 0xCC, 0xDD, 0xEE, 0xFF, 0x11, 0x22]
        future.extraRecordBytes = [0xDE, 0xAD, 0xBE, 0xEF, 0x01, 0x02, 0x03]
        future.extraSections = [(kind: 900, flags: 0, bytes: Array("a section from the future".utf8)), (kind: 901, flags: 0, bytes: [])]
        let bytes = try OXCWriter.serialize(program, extensions: future)
        #expect(bytes.count > (try OXCWriter.serialize(program)).count)
        let read = try OXCReader.read(ByteStorage(copying: bytes))
        #expect(ProgramDiff.differences(program, read) == [])
    }

    @Test func unknownCriticalSectionIsRefused() throws {
        var future = WriterExtensions()
        future.minorVersion = 1
        future.extraSections = [(kind: 900, flags: 1, bytes: [1, 2, 3])]
        let bytes = try OXCWriter.serialize(OXCFixtures.minimal(), extensions: future)
        let error = try #require(expectFormatError(bytes, "critical section"))
        guard case .unsupported = error else { throw error }
        #expect(error.description.contains("newer onnxc"))
    }

    @Test func newerMajorIsRefusedWithAClearMessage() throws {
        var future = WriterExtensions()
        future.majorVersion = 2
        future.minorVersion = 3
        let bytes = try OXCWriter.serialize(OXCFixtures.minimal(), extensions: future)
        let error = try #require(expectFormatError(bytes, "major 2"))
        #expect(error == .unsupportedVersion(major: 2, minor: 3))
        #expect(error.description.contains("2.3 is newer than this onnxc reads (1.x)"))
        #expect(error.description.contains("newer onnxc"))
        // A future major may change everything after the version: the refusal must not depend on the rest.
        var garbage = Array(bytes.prefix(12))
        garbage += [UInt8](repeating: 0xFF, count: 20)
        #expect(expectFormatError(garbage, "major 2, garbage after") == .unsupportedVersion(major: 2, minor: 3))
    }

    @Test func unknownOpcodeIsUnsupportedNotMalformed() throws {
        var program = OXCFixtures.minimal()
        let relu = try #require(Opcode(domain: "", opType: "Relu"))
        program.graphs[0].ops = [ProgramOp(name: "r", opcode: relu, opset: 14, inputs: [], outputs: [], attributes: [])]
        var bytes = try OXCWriter.serialize(program)
        let ops = try #require(OXCLayoutView(bytes).section(SectionKind.ops.rawValue))
        let opcodeAt = ops.offset + 4 + 4
        #expect(OXCLayoutView.u32(bytes, opcodeAt) == relu.rawValue)
        OXCLayoutView.put32(&bytes, opcodeAt, UInt32(Opcodes.table.count + 1))
        OXCLayoutView.restamp(&bytes)
        let error = try #require(expectFormatError(bytes, "future opcode"))
        guard case .unsupported(let location, _) = error else { throw error }
        #expect(location.section == "ops" && location.record == 0 && location.byteOffset == opcodeAt)
        OXCLayoutView.put32(&bytes, opcodeAt, 0)
        OXCLayoutView.restamp(&bytes)
        let zero = try #require(expectFormatError(bytes, "opcode 0"))
        guard case .malformed = zero else { throw zero }
    }

    // MARK: The spec and the code agree

    static let specPath = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("schemas/oxc-format.md").path

    /// The rows between `<!-- BEGIN name -->` and `<!-- END name -->`, split into trimmed cells, without the
    /// header and separator rows.
    static func table(_ name: String) throws -> [[String]] {
        let text = try String(contentsOfFile: specPath, encoding: .utf8)
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        let begin = try #require(lines.firstIndex(of: "<!-- BEGIN \(name) -->"))
        let end = try #require(lines.firstIndex(of: "<!-- END \(name) -->"))
        return lines[(begin + 1)..<end].filter { $0.hasPrefix("|") }.dropFirst(2).map { line in
            line.split(separator: "|", omittingEmptySubsequences: false).dropFirst().dropLast()
                .map { $0.trimmingCharacters(in: .whitespaces).replacingOccurrences(of: "`", with: "") }
        }
    }

    @Test func specOpcodeTableIsOpcodesTable() throws {
        let rows = try Self.table("opcodes")
        let expected = Opcodes.table.enumerated().map { i, entry in
            ["\(i + 1)", entry.domain.isEmpty ? "ai.onnx" : entry.domain, entry.opType]
        }
        #expect(rows.count == expected.count)
        for (row, want) in zip(rows, expected) where row != want {
            Issue.record("spec row \(row) != code \(want)")
        }
    }

    @Test func specLayoutTableIsTheReadersTable() throws {
        let rows = try Self.table("layouts")
        #expect(rows.map { $0[0] } == ["0", "1", "2", "3", "4", "5", "6", "7"])
        // Plain and the float16 wrapper (its parameter count follows its inner code) are not in the fixed table.
        let fixed = (0...UInt32(rows.count + 1)).compactMap { code in ConstantLayoutCode.parameterCount(code).map { (code, $0) } }
        #expect(rows.count == fixed.count + 2)
        #expect(rows.first { $0[0] == "1" }?[2] == "[k, n, nr]")
        #expect(rows.first { $0[0] == "2" }?[2] == "[M, C, kh, kw, MR]")
        for (code, count) in fixed {
            let listed = rows.first { $0[0] == String(code) }?[2].split(separator: ",").count
            #expect(listed == count, "layout \(code): the spec lists \(listed ?? 0) parameters, the reader expects \(count)")
        }
    }
}
