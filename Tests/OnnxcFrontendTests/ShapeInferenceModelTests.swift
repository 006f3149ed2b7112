import OnnxcCore
import OnnxcFrontend
import OnnxcIR
import OnnxcTestSupport
import Testing

/// Shape inference on the shipped models: no contradictions, declared inputs untouched, every node output of
/// the default domain typed. scripts/check_shape_inference.py compares every value with onnx.shape_inference.
@Suite struct ShapeInferenceModelTests {
    static let models = Fixtures.allModels()

    @Test(arguments: models)
    func infersWithoutDiagnostics(_ path: String) throws {
        let model = try ONNXImporter.load(path: path)
        let (inferred, diagnostics) = ShapeInference.infer(model)
        #expect(diagnostics.isEmpty, "\(path): \(diagnostics)")
        #expect(inferred.graph.inputs == model.graph.inputs)
        #expect(inferred.graph.nodes.count == model.graph.nodes.count)
        // Exceptions: ops whose outputs are not tensors (Optional, sequences) and custom domains.
        let untyped = inferred.graph.nodes.filter { $0.domain.isEmpty && !$0.opType.hasPrefix("Optional") && !$0.opType.hasPrefix("Sequence") }
            .flatMap(\.outputs).filter { !$0.isEmpty && inferred.graph.declaredType(of: $0) == nil }
        #expect(untyped.isEmpty, "\(path): untyped \(untyped)")
    }

    @Test func symbolicDimsModel() throws {
        let (model, diagnostics) = ShapeInference.infer(try ONNXImporter.load(path: Fixtures.model("symbolic_dims.onnx")))
        #expect(diagnostics.isEmpty)
        #expect(model.graph.declaredType(of: "x_t")?.description == "f32[seq,batch,16]")
        #expect(model.graph.declaredType(of: "y")?.description == "f32[seq,batch,8]")
    }

    @Test func tinyCNNRecordsEveryIntermediateValue() throws {
        let (model, _) = ShapeInference.infer(try ONNXImporter.load(path: Fixtures.model("tiny_cnn.onnx")))
        // Every intermediate value got an entry in value_info.
        let produced = model.graph.nodes.flatMap(\.outputs).filter { name in !model.graph.outputs.contains { $0.name == name } }
        let recorded = Set(model.graph.valueInfo.map(\.name))
        #expect(produced.allSatisfy { recorded.contains($0) })
    }

    @Test func inferredModelStillVerifiesAndRoundTrips() throws {
        let (model, _) = ShapeInference.infer(try ONNXImporter.load(path: Fixtures.model("control_flow.onnx")))
        try Verifier.verify(model)
        let bytes = try ONNXExporter.serialize(model)
        let again = try ONNXImporter.load(bytes: bytes, directory: Fixtures.testdata.path)
        #expect(again.graph.valueInfo.count == model.graph.valueInfo.count)
    }
}
