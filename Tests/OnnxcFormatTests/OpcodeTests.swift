import OnnxcFormat
import Testing

@Suite struct OpcodeTests {
    @Test func opcodesRoundTripAndRejectUnknowns() throws {
        let conv = try #require(Opcode(domain: "", opType: "Conv"))
        #expect(conv.opType == "Conv" && conv.domain == "")
        #expect(Opcode(rawValue: conv.rawValue) == conv)
        #expect(Opcode(domain: "ai.onnx", opType: "Conv") == conv)
        #expect(Opcode(domain: "ai.onnxc", opType: "FusedConv") != nil)
        #expect(Opcode(rawValue: 0) == nil)
        #expect(Opcode(rawValue: UInt32(Opcodes.table.count + 1)) == nil)
        #expect(Opcode(domain: "", opType: "NoSuchOp") == nil)
    }
}
