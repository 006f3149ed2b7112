import OnnxcCore
import OnnxcEmitter
import OnnxcFormat
import OnnxcIR
import OnnxcLowering
import OnnxcRuntime
import OnnxcTestSupport
import Testing

/// Channel windows (`ChannelWindows`): a CSP block compiled with its Split parts and Concat operands inside the
/// Concat result's slot gives the bytes the same program with a slot per tensor gives, through the file format; an
/// operand written by an op without a strided form is still copied; a window read by such an op (here a Sum put in
/// an Add's place) gets a dense copy; and the reader refuses a window outside the arena or narrower than its rows.
@Suite struct ChannelWindowTests {
    /// x [2, 8, 10, 10] → 1×1 Conv + Relu → Split(axis 1) a, b → b: 3×3 Conv + Relu → c; d = b + c; e = MaxPool(d);
    /// s = Sigmoid(a) → Concat(a, b, d, e, s) → 1×1 Conv → y [2, 12, 10, 10].
    static func model() throws -> Model {
        let weights = ChannelsLastCompileTests.weights
        let nodes = [
            Build.node("Conv", ["x", "w1", "w1_b"], ["h"], name: "cv1"),
            Build.node("Relu", ["h"], ["h_relu"], name: "cv1_relu"),
            Build.node("Split", ["h_relu", "sizes"], ["a", "b"], name: "split", [Attribute("axis", .int(1))]),
            Build.node("Conv", ["b", "w2", "w2_b"], ["c"], name: "bottleneck", [Attribute("pads", .ints([1, 1, 1, 1]))]),
            Build.node("Relu", ["c"], ["c_relu"], name: "bottleneck_relu"),
            Build.node("Add", ["b", "c_relu"], ["d"], name: "residual"),
            Build.node("MaxPool", ["d"], ["e"], name: "pool",
                       [Attribute("kernel_shape", .ints([3, 3])), Attribute("pads", .ints([1, 1, 1, 1]))]),
            Build.node("Sigmoid", ["a"], ["s"], name: "gate"),
            Build.node("Concat", ["a", "b", "d", "e", "s"], ["cat"], name: "concat", [Attribute("axis", .int(1))]),
            Build.node("Conv", ["cat", "w3", "w3_b"], ["y"], name: "cv2"),
        ]
        var initializers = [try Build.int64Tensor("sizes", [2], [8, 8])]
        for (i, (name, dims)) in [("w1", [Int64(16), 8, 1, 1]), ("w2", [8, 8, 3, 3]), ("w3", [12, 40, 1, 1])].enumerated() {
            initializers += [try weights(name, dims, 2 * i + 1), try weights(name + "_b", [dims[0]], 2 * i + 2)]
        }
        let graph = Graph(inputs: [Build.input("x", [.fixed(2), .fixed(8), .fixed(10), .fixed(10)])], outputs: [ValueInfo(name: "y", type: nil)],
                          initializers: initializers, nodes: nodes)
        return Build.model(graph)
    }

    static func windows(_ program: Program) -> [String: (offset: Int, rowStride: Int)] {
        var found: [String: (offset: Int, rowStride: Int)] = [:]
        for tensor in program.tensors {
            if case .window(let offset, let rowStride) = tensor.storage { found[tensor.name] = (offset, rowStride) }
        }
        return found
    }

    static func run(_ program: Program, _ x: OnnxcRuntime.Tensor) throws -> [Float] {
        let reread = try OXCReader.read(ByteStorage(copying: try OXCWriter.serialize(program)))
        return try #require(try CompiledModel(program: reread).run(["x": .tensor(x)])["y"]?.tensor).array(Float.self)
    }

    static func input() throws -> OnnxcRuntime.Tensor {
        try OnnxcRuntime.Tensor(Pseudorandom.floats(2 * 8 * 10 * 10, seed: 11), shape: [2, 8, 10, 10])
    }

    @Test func partsAndOperandsShareTheConcatSlotAndRunAsWithOwnSlots() throws {
        let optimized = try ChannelsLastCompileTests.optimized(try Self.model())
        let (windowed, report) = try Emitter.emit(optimized, metadata: ChannelsLastCompileTests.metadata)
        let (separate, separateReport) = try Emitter.emit(optimized, metadata: ChannelsLastCompileTests.metadata, channelWindows: false)
        let windows = Self.windows(windowed)
        #expect(Self.windows(separate).isEmpty)
        // The Conv's output (channels 0…16), the Split's part b (8…16), the Add's and the pool's outputs (16…24, 24…32)
        // are channel ranges of the Concat's [2, 10, 10, 40] result. Part a stays dense (the Sigmoid reads it) and is
        // copied, as is the Sigmoid's output.
        let concat = try #require(windowed.tensors.first { $0.name.hasPrefix("cat") && !$0.name.contains("nchw") })
        guard case .arena(let base, _) = concat.storage else {
            Issue.record("the Concat result has no slot: \(concat.storage)")
            return
        }
        let placed = windows.filter { $0.value.rowStride == 40 }
        #expect(placed.count == 4, "\(windows.keys.sorted())")
        #expect(Set(placed.values.map { ($0.offset - base) / 4 }) == [0, 8, 16, 24])
        #expect(!windows.keys.contains { $0.hasPrefix("a") || $0.hasPrefix("s") })
        #expect(report.arenaBytes < separateReport.arenaBytes)

        let x = try Self.input()
        let fromWindows = try Self.run(windowed, x)
        #expect(fromWindows == (try Self.run(separate, x)))
        let interpreted = try #require(try Executor(graph: try Lowering.lower(try Self.model())).run(["x": .tensor(x)])["y"]?.tensor)
        let scale = interpreted.doubles().map(abs).max() ?? 0
        #expect(TensorComparison.difference(try OnnxcRuntime.Tensor(fromWindows, shape: [2, 12, 10, 10]), interpreted,
                                            rtol: 0, atol: 2e-5 * (1 + scale)) == nil)
    }

    /// A Sum in the Add's place has no strided step: it reads dense copies of its window operands, and its output,
    /// planned as a window, is copied into the Concat's slot.
    @Test func opsWithoutStridedStepsReadDenseCopies() throws {
        let optimized = try ChannelsLastCompileTests.optimized(try Self.model())
        var (program, _) = try Emitter.emit(optimized, metadata: ChannelsLastCompileTests.metadata)
        let x = try Self.input()
        let expected = try Self.run(program, x)
        let sum = try #require(Opcode(domain: "", opType: "Sum"))
        let index = try #require(program.graphs[0].ops.firstIndex { $0.opcode.opType == "Add" })
        #expect(program.graphs[0].ops[index].inputs.contains { id in Self.windows(program)[program.tensors[Int(id)].name] != nil })
        program.graphs[0].ops[index].opcode = sum
        #expect(try Self.run(program, x) == expected)
    }

    @Test func windowsOutsideTheArenaOrNarrowerThanTheirRowsAreRefused() throws {
        let optimized = try ChannelsLastCompileTests.optimized(try Self.model())
        let (program, _) = try Emitter.emit(optimized, metadata: ChannelsLastCompileTests.metadata)
        let index = try #require(program.tensors.firstIndex { if case .window = $0.storage { true } else { false } })
        guard case .window(let offset, let rowStride) = program.tensors[index].storage,
              let width = program.tensors[index].shape?.fixedDims?.last else { return }
        for (badOffset, badStride) in [(program.arenaBytes, rowStride), (offset, Int(width) - 1), (offset + 2, rowStride),
                                       (Int.max / 2, rowStride), (offset, Int.max / 4)] {
            var broken = program
            broken.tensors[index].storage = .window(offset: badOffset, rowStride: badStride)
            let bytes = try OXCWriter.serialize(broken)
            #expect(throws: FormatError.self) { _ = try OXCReader.read(ByteStorage(copying: bytes)) }
        }
    }
}
