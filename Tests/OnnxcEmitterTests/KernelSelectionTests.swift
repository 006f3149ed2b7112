import OnnxcCore
import OnnxcEmitter
import OnnxcFormat
import OnnxcIR
import OnnxcLowering
import OnnxcRuntime
import OnnxcTestSupport
import Testing

/// The compiler's kernel choice: which NhwcConv ops get the Winograd kernel (`algorithm = "winograd"`), and that
/// the compiled program computes the same outputs with it as without it and as the interpreter on the source.
@Suite struct KernelSelectionTests {
    /// x [batch, 64, 28, 28] → a: 3×3 64→24 (196 tiles: Winograd) + Relu → g: 1×1 24→136 → h: 3×3 136→24 (196 tiles
    /// but more input channels than Winograd takes: direct) → b: 3×3/2 24→24 (stride 2: direct) → c: 3×3 24→8 at
    /// 14×14 (49 tiles and 24 input channels: direct).
    static func model(batch: Dim) throws -> Model {
        func conv(_ x: String, _ y: String, _ dims: [Int64], _ attributes: [Attribute], seed: Int) throws -> (Node, [OnnxcIR.Tensor]) {
            let w = try Build.floatTensor(y + "_w", dims, Pseudorandom.floats(Int(dims.reduce(1, *)), seed: seed).map { $0 * 0.2 })
            let b = try Build.floatTensor(y + "_b", [dims[0]], Pseudorandom.floats(Int(dims[0]), seed: seed + 1))
            return (Build.node("Conv", [x, y + "_w", y + "_b"], [y], name: y, attributes), [w, b])
        }
        let pad1 = Attribute("pads", .ints([1, 1, 1, 1]))
        let layers = [
            try conv("x", "a", [24, 64, 3, 3], [pad1], seed: 1),
            try conv("a_relu", "g", [136, 24, 1, 1], [], seed: 3),
            try conv("g", "h", [24, 136, 3, 3], [pad1], seed: 5),
            try conv("h", "b", [24, 24, 3, 3], [pad1, Attribute("strides", .ints([2, 2]))], seed: 7),
            try conv("b", "c", [8, 24, 3, 3], [pad1], seed: 9),
        ]
        var nodes = layers.map(\.0)
        nodes.insert(Build.node("Relu", ["a"], ["a_relu"], name: "relu"), at: 1)
        let graph = Graph(inputs: [Build.input("x", [batch, .fixed(64), .fixed(28), .fixed(28)])], outputs: [ValueInfo(name: "c", type: nil)],
                          initializers: layers.flatMap(\.1), nodes: nodes)
        return Build.model(graph)
    }

    static func winogradOps(_ program: Program) -> [String] {
        program.graphs[0].ops.filter { KernelSelection.variant($0) == "winograd" }.map(\.name).sorted()
    }

    @Test(arguments: [Dim.fixed(1), Dim.symbolic("batch")])
    func winogradWhereMeasuredFaster(_ batch: Dim) throws {
        let original = try Self.model(batch: batch)
        let optimized = try ChannelsLastCompileTests.optimized(original)
        let (program, _) = try Emitter.emit(optimized, metadata: ChannelsLastCompileTests.metadata)
        #expect(Self.winogradOps(program) == ["a"])
        let (direct, _) = try Emitter.emit(optimized, metadata: ChannelsLastCompileTests.metadata, winograd: false)
        #expect(Self.winogradOps(direct).isEmpty)

        // A symbolic batch runs with two images: the geometry is not the planned one (no workspace in the frame).
        let images = batch == .fixed(1) ? 1 : 2
        let x = try OnnxcRuntime.Tensor(Pseudorandom.floats(images * 64 * 28 * 28, seed: 11), shape: [images, 64, 28, 28])
        let reread = try OXCReader.read(ByteStorage(copying: try OXCWriter.serialize(program)))
        let winograd = try #require(try CompiledModel(program: reread).run(["x": .tensor(x)])["c"]?.tensor)
        let plain = try #require(try CompiledModel(program: direct).run(["x": .tensor(x)])["c"]?.tensor)
        let interpreted = try #require(try Executor(graph: try Lowering.lower(original)).run(["x": .tensor(x)])["c"]?.tensor)
        let scale = interpreted.doubles().map(abs).max() ?? 0
        #expect(winograd.shape == interpreted.shape)
        #expect(TensorComparison.difference(winograd, interpreted, rtol: 0, atol: 2e-5 * (1 + scale)) == nil)
        #expect(TensorComparison.difference(winograd, plain, rtol: 0, atol: 2e-5 * (1 + scale)) == nil)
        #expect(winograd.array(Float.self) != plain.array(Float.self), "the Winograd kernel did not run")
    }
}
