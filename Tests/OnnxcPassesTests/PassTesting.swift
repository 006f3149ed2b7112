import OnnxcCore
import OnnxcIR
import OnnxcLowering
import OnnxcPasses
import OnnxcRuntime
import OnnxcTestSupport
import Testing

/// ONNX Runtime's TransformerTester idea: run a model with and without a pass and compare outputs.
enum PassTesting {
    /// Runs `pass` (alone, through the driver, so results are sorted and verified) and returns the model.
    static func apply(_ pass: any Pass, to model: Model, target: OptimizationTarget = .onnx) throws -> Model {
        try PassManager(passes: [pass], options: PassOptions(target: target)).run(model)
    }

    static func outputs(_ model: Model, _ inputs: [String: OnnxcRuntime.Tensor]) throws -> [String: OnnxcRuntime.Tensor] {
        let results = try Executor(graph: try Lowering.lower(model)).run(inputs.mapValues { .tensor($0) })
        return results.compactMapValues(\.tensor)
    }

    /// Expects the same outputs, within float rounding, from both models.
    static func expectSameOutputs(_ a: Model, _ b: Model, _ inputs: [String: OnnxcRuntime.Tensor],
                                  sourceLocation: SourceLocation = #_sourceLocation) throws {
        let x = try outputs(a, inputs), y = try outputs(b, inputs)
        #expect(Set(x.keys) == Set(y.keys), sourceLocation: sourceLocation)
        for (name, tensor) in x {
            guard let other = y[name] else { continue }
            #expect(TensorComparison.difference(other, tensor, rtol: 1e-5, atol: 1e-6) == nil, "output \(name)", sourceLocation: sourceLocation)
        }
    }

    static func floats(_ name: String, _ dims: [Int64], _ values: [Float]) throws -> OnnxcIR.Tensor {
        try Build.floatTensor(name, dims, values)
    }

    static func input(_ values: [Float], _ shape: [Int]) throws -> OnnxcRuntime.Tensor {
        try OnnxcRuntime.Tensor(values, shape: shape)
    }
}
