import OnnxcCore
import OnnxcEmitter
import OnnxcFormat
import OnnxcIR
import OnnxcLowering
import OnnxcPasses
import OnnxcRuntime
import OnnxcTestSupport
import Testing

/// A small MobileNet-shaped CNN through the compile path (-O2 for the runtime, the layout stage, the emitter):
/// NhwcConv weights are stored in the indirect GEMM's layout (code 3, per group) or the depthwise layout (code 4)
/// with the parameters the loader checks; the program runs through the file format with the same outputs as the
/// interpreter on the original model (and bit for bit as the unpacked program), and the loader refuses NHWC
/// constants packed for another kernel.
@Suite struct ChannelsLastCompileTests {
    static func weights(_ name: String, _ dims: [Int64], seed: Int) throws -> OnnxcIR.Tensor {
        try Build.floatTensor(name, dims, Pseudorandom.floats(Int(dims.reduce(1, *)), seed: seed).map { $0 * 0.3 })
    }

    /// x [2, 3, 12, 12] → stem 3×3/2 + Clip(0, 6) → depthwise 3×3 + Relu → pointwise 1×1 → grouped (2) 3×3 →
    /// GlobalAveragePool → Flatten → Gemm [10].
    static func model() throws -> Model {
        func conv(_ x: String, _ y: String, _ w: String, _ attributes: [Attribute]) -> Node {
            Build.node("Conv", [x, w, w + "_b"], [y], name: y, attributes)
        }
        let pad1 = Attribute("pads", .ints([1, 1, 1, 1]))
        let nodes = [
            conv("x", "stem", "stem_w", [pad1, Attribute("strides", .ints([2, 2]))]),
            Build.node("Clip", ["stem", "zero", "six"], ["stem_clip"], name: "clip"),
            conv("stem_clip", "dw", "dw_w", [pad1, Attribute("group", .int(16))]),
            Build.node("Relu", ["dw"], ["dw_relu"], name: "relu"),
            conv("dw_relu", "pw", "pw_w", []),
            conv("pw", "grouped", "grouped_w", [pad1, Attribute("group", .int(2))]),
            Build.node("GlobalAveragePool", ["grouped"], ["pool"], name: "pool"),
            Build.node("Flatten", ["pool"], ["flat"], name: "flatten"),
            Build.node("Gemm", ["flat", "fc_w", "fc_b"], ["y"], name: "fc", [Attribute("transB", .int(1))]),
        ]
        var initializers = [try Build.floatTensor("zero", [], [0]), try Build.floatTensor("six", [], [6])]
        for (i, (name, dims)) in [("stem_w", [Int64(16), 3, 3, 3]), ("dw_w", [16, 1, 3, 3]), ("pw_w", [24, 16, 1, 1]),
                                  ("grouped_w", [24, 12, 3, 3])].enumerated() {
            initializers += [try weights(name, dims, seed: 2 * i + 1), try weights(name + "_b", [dims[0]], seed: 2 * i + 2)]
        }
        initializers += [try weights("fc_w", [10, 24], seed: 20), try weights("fc_b", [10], seed: 21)]
        let graph = Graph(inputs: [Build.input("x", [.fixed(2), .fixed(3), .fixed(12), .fixed(12)])], outputs: [ValueInfo(name: "y", type: nil)],
                          initializers: initializers, nodes: nodes)
        return Build.model(graph)
    }

    /// -O2 for the runtime, then the layout stage's drivers, as `onnxc compile` runs them.
    static func optimized(_ model: Model) throws -> Model {
        let options = PassOptions(target: .runtime)
        var current = try PassManager(passes: Pipelines.passes(level: 2, target: .runtime), options: options).run(ShapeInference.infer(model).0)
        current = ShapeInference.infer(current).0
        for driver in Pipelines.layoutDrivers(options: options) { current = try driver.run(current) }
        return ShapeInference.infer(current).0
    }

    static let metadata = ProgramMetadata(compiler: "test", sourceSHA256: [], sourceName: "m", producer: "", optimization: "-O2")

    static func packedLayouts(_ program: Program) -> [(code: UInt32, parameters: [Int64])] {
        program.tensors.compactMap { tensor in
            if case .constant(_, .packed(let code, let parameters)) = tensor.storage { return (code, parameters) }
            return nil
        }
    }

    @Test func nhwcWeightsArePrepackedAndRunLikeTheInterpreter() throws {
        let original = try Self.model()
        let optimized = try Self.optimized(original)
        #expect(optimized.graph.nodes.filter { $0.opType == "NhwcConv" }.count == 4)
        #expect(optimized.graph.nodes.filter { $0.opType == "Transpose" }.count == 1)

        let (packed, report) = try Emitter.emit(optimized, metadata: Self.metadata)
        let (plain, _) = try Emitter.emit(optimized, metadata: Self.metadata, prepackWeights: false)
        // The four convolutions' weights and the classifier's Gemm weight (GEMM B panels).
        #expect(report.prepackedWeights == 5)
        #expect(Self.packedLayouts(packed).filter { $0.code == ConstantLayoutCode.packedGEMMBPanels }.count == 1)
        let layouts = Self.packedLayouts(packed)
        let nr = Int64(PrepackedWeights.channelsLastPanelWidth)
        #expect(layouts.filter { $0.code == ConstantLayoutCode.packedNHWCConvWeights }.map(\.parameters).sorted { $0.lexicographicallyPrecedes($1) }
                == [[16, 3, 3, 3, 1, nr], [24, 12, 3, 3, 2, nr], [24, 16, 1, 1, 1, nr]])
        #expect(layouts.filter { $0.code == ConstantLayoutCode.packedNHWCDepthwiseWeights }.map(\.parameters) == [[16, 1, 3, 3, nr]])
        #expect(Self.packedLayouts(plain).isEmpty)

        let x = try OnnxcRuntime.Tensor(Pseudorandom.floats(2 * 3 * 12 * 12, seed: 7), shape: [2, 3, 12, 12])
        let reread = try OXCReader.read(ByteStorage(copying: try OXCWriter.serialize(packed)))
        let fromFile = try #require(try CompiledModel(program: reread).run(["x": .tensor(x)])["y"]?.tensor)
        let unpacked = try #require(try CompiledModel(program: plain).run(["x": .tensor(x)])["y"]?.tensor)
        // The same kernel on the same packed panels (packed at compile time, or per call from plain weights).
        #expect(fromFile.array(Float.self) == unpacked.array(Float.self))
        let interpreted = try #require(try Executor(graph: try Lowering.lower(original)).run(["x": .tensor(x)])["y"]?.tensor)
        let scale = interpreted.doubles().map(abs).max() ?? 0
        #expect(TensorComparison.difference(fromFile, interpreted, rtol: 0, atol: 2e-5 * (1 + scale)) == nil)
    }

    /// A panel width (NR) or a size that is not this runtime's, or a payload of the wrong length, is refused at load.
    @Test(arguments: [ConstantLayoutCode.packedNHWCConvWeights, ConstantLayoutCode.packedNHWCDepthwiseWeights])
    func nhwcWeightsPackedForAnotherKernelAreRefused(_ code: UInt32) throws {
        let (program, _) = try Emitter.emit(try Self.optimized(try Self.model()), metadata: Self.metadata)
        let index = try #require(program.tensors.firstIndex { tensor in
            if case .constant(_, .packed(let c, _)) = tensor.storage { return c == code }
            return false
        })
        guard case .constant(let data, .packed(_, let parameters)) = program.tensors[index].storage else { return }
        #expect(throws: Never.self) { _ = try CompiledModel(program: program) }

        var wrongWidth = program
        var widened = parameters
        widened[widened.count - 1] += 8
        wrongWidth.tensors[index].storage = .constant(data, layout: .packed(code: code, parameters: widened))
        #expect(throws: RuntimeError.self) { _ = try CompiledModel(program: wrongWidth) }

        var wrongSize = program
        var grown = parameters
        grown[0] += 16
        if code == ConstantLayoutCode.packedNHWCConvWeights { grown[4] = 1 }
        wrongSize.tensors[index].storage = .constant(data, layout: .packed(code: code, parameters: grown))
        #expect(throws: RuntimeError.self) { _ = try CompiledModel(program: wrongSize) }
    }
}
