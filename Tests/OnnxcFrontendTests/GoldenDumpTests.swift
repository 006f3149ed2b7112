import OnnxcCore
import OnnxcFrontend
import OnnxcIR
import OnnxcTestSupport
import Testing

/// Dumps of shipped models compared byte for byte with Tests/Golden (re-record with ONNXC_RECORD=1).
@Suite struct GoldenDumpTests {
    @Test(arguments: ["tiny_cnn", "control_flow", "doc_and_metadata", "multi_output", "local_function"])
    func textDump(_ name: String) throws {
        // As the CLI shows it by default: functions kept, so the graph reads as the file has it.
        let model = try ONNXImporter.load(path: Fixtures.model("\(name).onnx"), options: ImportOptions(inlineFunctions: false))
        #expect(Golden.check(TextDump.render(model), named: "\(name).txt") == .matches)
    }

    @Test func jsonDump() throws {
        let model = try ONNXImporter.load(path: Fixtures.model("tiny_cnn.onnx"))
        #expect(Golden.check(JSONDump.render(model).serialized() + "\n", named: "tiny_cnn.json") == .matches)
    }

    @Test func dotDump() throws {
        let model = try ONNXImporter.load(path: Fixtures.model("control_flow.onnx"))
        #expect(Golden.check(DotDump.render(model), named: "control_flow.dot") == .matches)
    }

    @Test func weightsDump() throws {
        let model = try ONNXImporter.load(path: Fixtures.model("mlp.onnx"))
        #expect(Golden.check(TextDump.render(model, options: DumpOptions(includeWeights: true, maximumValues: 4)), named: "mlp.weights.txt") == .matches)
    }
}
