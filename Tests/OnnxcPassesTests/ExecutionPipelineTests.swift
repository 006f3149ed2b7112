import Foundation
import OnnxcCore
import OnnxcFrontend
import OnnxcIR
import OnnxcPasses
import OnnxcRuntime
import OnnxcTestSupport
import Testing

/// The whole runtime-target -O2 pipeline (standard and execution fusions) against -O0 on exported models.
@Suite struct ExecutionPipelineTests {
    static func optimized(_ model: Model) throws -> Model {
        try PassManager(passes: Pipelines.passes(level: 2, target: .runtime), options: PassOptions(target: .runtime)).run(model)
    }

    /// Deterministic inputs for every graph input: floats in [-1, 1), integers in [1, 8); symbolic dims are 1.
    static func inputs(_ model: Model) throws -> [String: OnnxcRuntime.Tensor] {
        var feeds: [String: OnnxcRuntime.Tensor] = [:]
        let initializers = Set(model.graph.initializers.map(\.name))
        for input in model.graph.inputs where !initializers.contains(input.name) {
            guard let type = input.type?.tensorType else { continue }
            let shape = (type.shape?.dims ?? []).map { Int($0.fixedValue ?? 1) }
            let count = shape.reduce(1, *)
            if type.elementType == .int64 {
                feeds[input.name] = try OnnxcRuntime.Tensor((0..<count).map { Int64($0 % 7 + 1) }, shape: shape)
            } else {
                feeds[input.name] = try OnnxcRuntime.Tensor((0..<count).map { Float(($0 * 37) % 101) / 50.5 - 1 }, shape: shape)
            }
        }
        return feeds
    }

    /// bert_tiny (opset 17): its Erf GELUs become ai.onnxc::Gelu and then FusedMatMul epilogues; its Linear layers
    /// ([B, S, K] × [K, N] + [N]) FusedMatMul with a bias.
    @Test func bertTinyMatchesO0() throws {
        let path = Fixtures.testdata.appendingPathComponent("exported/bert_tiny.onnx").path
        let model = try ONNXImporter.load(path: path)
        let result = try ExecutionPipelineTests.optimized(model)
        let fused = result.graph.nodes.filter { $0.domain == RuntimeOps.domain }
        #expect(fused.filter { $0.opType == "FusedMatMul" && $0.inputs.count == 3 }.count >= 8)
        #expect(fused.contains { $0.attribute("activation") == .string(Array("Gelu".utf8)) })
        #expect(!result.graph.nodes.contains { $0.opType == "Erf" })
        let feeds = try ExecutionPipelineTests.inputs(model)
        let a = try PassTesting.outputs(model, feeds), b = try PassTesting.outputs(result, feeds)
        for (name, tensor) in a {
            let other = try #require(b[name])
            #expect(TensorComparison.difference(other, tensor, rtol: 1e-4, atol: 1e-5) == nil, "output \(name)")
        }
    }

    /// Manual end-to-end check on large models: ONNXC_E2E_MODELS=a.onnx:b.onnx swift test --filter largeModels
    /// prints nodes before and after and checks the outputs against -O0 within rtol 1e-4.
    @Test(.enabled(if: ProcessInfo.processInfo.environment["ONNXC_E2E_MODELS"] != nil))
    func largeModelsMatchO0() throws {
        let paths = (ProcessInfo.processInfo.environment["ONNXC_E2E_MODELS"] ?? "").split(separator: ":").map(String.init)
        for path in paths {
            let model = try ONNXImporter.load(path: path)
            let result = try ExecutionPipelineTests.optimized(model)
            var histogram: [String: Int] = [:]
            for node in result.graph.nodes where node.domain == RuntimeOps.domain {
                let activation = FusionSupportForTests.string(node.attribute("activation")) ?? "-"
                histogram["\(node.opType)(\(activation))", default: 0] += 1
            }
            let feeds = try ExecutionPipelineTests.inputs(model)
            let a = try PassTesting.outputs(model, feeds), b = try PassTesting.outputs(result, feeds)
            var worst = 0.0
            for (name, tensor) in a {
                let other = try #require(b[name])
                let x = tensor.doubles(), y = other.doubles()
                for i in x.indices { worst = max(worst, abs(x[i] - y[i]) / max(abs(x[i]), 1e-3)) }
                #expect(TensorComparison.difference(other, tensor, rtol: 1e-4, atol: 1e-4) == nil, "\(path): output \(name)")
            }
            print("E2E \(path): nodes \(model.graph.nodes.count) -> \(result.graph.nodes.count); runtime ops \(histogram.sorted { $0.key < $1.key }); max rel diff \(worst)")
        }
    }
}

enum FusionSupportForTests {
    static func string(_ value: OnnxcIR.AttributeValue?) -> String? {
        if case .string(let bytes)? = value { return String(decoding: bytes, as: UTF8.self) }
        return nil
    }
}
