import OnnxcCore
import OnnxcFrontend
import OnnxcIR
import OnnxcTestSupport
import Testing

/// Dumps of shipped models compared byte for byte with Tests/Golden (re-record with ONNXC_RECORD=1).
/// Like `onnxc dump` by default, the graph goes through shape inference first, so every node output shows
/// its inferred type.
@Suite struct GoldenDumpTests {
    func load(_ name: String, inlineFunctions: Bool = true) throws -> Model {
        let model = try ONNXImporter.load(path: Fixtures.model(name), options: ImportOptions(inlineFunctions: inlineFunctions))
        let (inferred, diagnostics) = ShapeInference.infer(model)
        #expect(diagnostics.isEmpty, "\(diagnostics)")
        return inferred
    }

    @Test(arguments: ["tiny_cnn", "control_flow", "doc_and_metadata", "multi_output", "local_function"])
    func textDump(_ name: String) throws {
        // As the CLI shows it by default: functions kept, so the graph reads as the file has it.
        let model = try load("\(name).onnx", inlineFunctions: false)
        #expect(Golden.check(TextDump.render(model), named: "\(name).txt") == .matches)
    }

    @Test func jsonDump() throws {
        let model = try load("tiny_cnn.onnx")
        #expect(Golden.check(JSONDump.render(model).serialized() + "\n", named: "tiny_cnn.json") == .matches)
    }

    @Test func dotDump() throws {
        let model = try load("control_flow.onnx")
        #expect(Golden.check(DotDump.render(model), named: "control_flow.dot") == .matches)
    }

    @Test func weightsDump() throws {
        let model = try load("mlp.onnx")
        #expect(Golden.check(TextDump.render(model, options: DumpOptions(includeWeights: true, maximumValues: 4)), named: "mlp.weights.txt") == .matches)
    }
}
