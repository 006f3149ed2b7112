import Foundation
import OnnxcCore
import OnnxcFrontend
import OnnxcIR
import OnnxcPasses
import OnnxcRuntime
import OnnxcTestSupport
import Testing

/// Every shipped model gives the same outputs at -O0, -O1 and -O2 (through onnxc's runtime, on the ONNX
/// Runtime reference inputs).
@Suite struct PipelineTests {
    static let models = ["tiny_cnn", "mlp", "attributes", "control_flow", "multi_output", "symbolic_dims", "local_function",
                         "sparse_initializer", "unsorted", "doc_and_metadata", "all_dtypes_ort", "recurrent"]

    @Test(arguments: models)
    func levelsAgree(_ name: String) throws {
        let model = try ONNXImporter.load(path: Fixtures.model("\(name).onnx"))
        let folder = Fixtures.testdata.appendingPathComponent("reference/\(name)")
        var inputs: [String: OnnxcRuntime.Tensor] = [:]
        for (k, info) in model.graph.runtimeInputs.enumerated() {
            let data = try Data(contentsOf: folder.appendingPathComponent("input_\(k).npy"))
            inputs[info.name] = try NPY.read(Array(data))
        }
        for level in [1, 2] {
            let (inferred, _) = ShapeInference.infer(model)
            let optimized = try PassManager(passes: Pipelines.passes(level: level)).run(inferred)
            try Verifier.verify(optimized)
            try PassTesting.expectSameOutputs(model, optimized, inputs)
        }
    }

    @Test func exportedTransformerShrinks() throws {
        let model = try ONNXImporter.load(path: Fixtures.testdata.appendingPathComponent("exported/bert_tiny.onnx").path)
        let (inferred, _) = ShapeInference.infer(model)
        let manager = PassManager(passes: Pipelines.passes(level: 1))
        let optimized = try manager.run(inferred)
        #expect(optimized.graph.nodes.count < model.graph.nodes.count * 2 / 3)
        #expect(!optimized.graph.nodes.contains { $0.opType == "Constant" || $0.opType == "Identity" })
        #expect(manager.statistics.contains { $0.id == "constant-folding" && $0.changes > 0 })
        let ids = try OnnxcRuntime.Tensor((0..<16).map { Int64($0 * 7 % 1000) }, shape: [2, 8])
        let mask = try OnnxcRuntime.Tensor([Int64](repeating: 1, count: 16), shape: [2, 8])
        try PassTesting.expectSameOutputs(model, optimized, ["input_ids": ids, "attention_mask": mask])
    }
}
