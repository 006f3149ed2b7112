import OnnxcCore
import OnnxcEmitter
import OnnxcFormat
import OnnxcIR
import OnnxcLowering
import OnnxcRuntime
import OnnxcTestSupport
import Testing

/// LayerNormalization through the compiled path (`NormalizationSteps`, `ck_layernorm` into the planned slot) and
/// through the interpreter, both against the formula in doubles: row lengths that exercise the kernel's 32-float
/// blocks, its 8-float steps and its scalar tail, several normalized axes, scale with leading 1s, no bias, and a
/// node that asks for Mean and InvStdDev (which stays with the registered kernel).
@Suite struct NormalizationCompileTests {
    struct Case: CustomStringConvertible, Sendable {
        var shape: [Int]
        var axis: Int64 = -1
        var bias = true
        var leadingOnes = 0
        var statistics = false
        var description: String { "\(shape) axis \(axis)\(bias ? "" : " no bias")\(leadingOnes > 0 ? " scale 1×\(leadingOnes)" : "")\(statistics ? " stats" : "")" }
    }

    static let cases: [Case] = [
        Case(shape: [2, 5, 139]),
        Case(shape: [3, 128], bias: false),
        Case(shape: [2, 4, 6], axis: 1),
        Case(shape: [4, 40], leadingOnes: 1),
        Case(shape: [1, 7], axis: 0),
        Case(shape: [3, 64], statistics: true),
    ]

    static func model(_ c: Case) throws -> Model {
        let rank = Int64(c.shape.count)
        let axis = Int(c.axis < 0 ? c.axis + rank : c.axis)
        let inner = c.shape[axis...].map(Int64.init)
        let length = inner.reduce(1, *)
        let parameterDims = Array(repeating: Int64(1), count: c.leadingOnes) + inner
        var initializers = [try Build.floatTensor("scale", parameterDims, scale(Int(length)))]
        var inputs = ["x", "scale"]
        if c.bias {
            initializers.append(try Build.floatTensor("bias", parameterDims, bias(Int(length))))
            inputs.append("bias")
        }
        let outputs = c.statistics ? ["y", "mean", "inv_std"] : ["y"]
        let graph = Graph(name: "layernorm", inputs: [Build.input("x", c.shape.map { .fixed(Int64($0)) })],
                          outputs: outputs.map { ValueInfo(name: $0, type: nil) }, initializers: initializers,
                          nodes: [Build.node("LayerNormalization", inputs, outputs, name: "ln",
                                             [Attribute("axis", .int(c.axis)), Attribute("epsilon", .float(1e-3))])])
        return Build.model(graph)
    }

    static func scale(_ length: Int) -> [Float] { Pseudorandom.floats(length, seed: 2).map { 1 + $0 * 0.5 } }
    static func bias(_ length: Int) -> [Float] { Pseudorandom.floats(length, seed: 3) }

    static func input(_ c: Case) throws -> OnnxcRuntime.Tensor {
        let count = c.shape.reduce(1, *)
        // An offset well away from zero: the variance must not be lost to the mean.
        return try OnnxcRuntime.Tensor(Pseudorandom.floats(count, seed: 7).map { 3 + $0 * 2 }, shape: c.shape)
    }

    /// y = (x − mean) / √(var + ε) · scale + bias per row, in doubles.
    static func reference(_ c: Case, _ x: [Float], scale: [Float], bias: [Float]?) -> [Float] {
        let axis = Int(c.axis < 0 ? c.axis + Int64(c.shape.count) : c.axis)
        let length = c.shape[axis...].reduce(1, *)
        var y = [Float](repeating: 0, count: x.count)
        for row in stride(from: 0, to: x.count, by: length) {
            let values = x[row..<row + length].map(Double.init)
            let mean = values.reduce(0, +) / Double(length)
            let variance = values.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Double(length)
            let inv = 1 / (variance + 1e-3).squareRoot()
            for j in 0..<length {
                y[row + j] = Float((values[j] - mean) * inv * Double(scale[j]) + Double(bias?[j] ?? 0))
            }
        }
        return y
    }

    @Test(arguments: cases)
    func compiledAndInterpretedMatchTheFormula(_ c: Case) throws {
        let model = try Self.model(c)
        let x = try Self.input(c)
        let interpreted = try Executor(graph: try Lowering.lower(model)).run(["x": .tensor(x)]).compactMapValues(\.tensor)
        let (typed, _) = ShapeInference.infer(model)
        let metadata = ProgramMetadata(compiler: "test", sourceSHA256: [], sourceName: "layernorm", producer: "", optimization: "-O0")
        let (program, _) = try Emitter.emit(typed, metadata: metadata)
        let loaded = try CompiledModel(program: try OXCReader.read(ByteStorage(copying: try OXCWriter.serialize(program))))
        // Twice: the second run reuses the executor's arena.
        _ = try loaded.run(["x": .tensor(x)])
        let compiled = try loaded.run(["x": .tensor(x)]).compactMapValues(\.tensor)
        let axis = Int(c.axis < 0 ? c.axis + Int64(c.shape.count) : c.axis)
        let length = c.shape[axis...].reduce(1, *)
        let expected = try OnnxcRuntime.Tensor(Self.reference(c, x.array(Float.self), scale: Self.scale(length), bias: c.bias ? Self.bias(length) : nil),
                                               shape: c.shape)
        for (path, outputs) in [("compiled", compiled), ("interpreted", interpreted)] {
            let y = try #require(outputs["y"], "\(c): \(path) has no y")
            #expect(TensorComparison.difference(y, expected, rtol: 1e-5, atol: 1e-5) == nil, "\(c): \(path)")
            #expect(Set(outputs.keys) == Set(c.statistics ? ["y", "mean", "inv_std"] : ["y"]), "\(c): \(path)")
        }
        if c.statistics {
            let mean = try #require(compiled["mean"]), interpretedMean = try #require(interpreted["mean"])
            #expect(TensorComparison.difference(mean, interpretedMean, rtol: 0, atol: 0) == nil, "\(c): Mean")
        }
    }
}
