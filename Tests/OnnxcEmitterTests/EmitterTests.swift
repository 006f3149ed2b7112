import Foundation
import Synchronization
import OnnxcCore
import OnnxcEmitter
import OnnxcFormat
import OnnxcFrontend
import OnnxcIR
import OnnxcLowering
import OnnxcPasses
import OnnxcRuntime
import OnnxcTestSupport
import Testing

@Suite struct MemoryPlannerTests {
    func lifetime(_ id: TensorID, _ first: Int, _ last: Int, _ bytes: Int) -> MemoryPlanner.Lifetime {
        MemoryPlanner.Lifetime(id: id, first: first, last: last, bytes: bytes)
    }

    @Test func sharesBytesOnlyBetweenDisjointLifetimes() {
        // a: ops 0-1, b: 1-2 (overlaps a), c: 2-3 (overlaps b, not a), d: 4-4 (alone).
        let plan = MemoryPlanner.plan([lifetime(0, 0, 1, 100), lifetime(1, 1, 2, 200), lifetime(2, 2, 3, 100), lifetime(3, 4, 4, 1000)])
        let a = plan.offsets[0] ?? -1, b = plan.offsets[1] ?? -1, c = plan.offsets[2] ?? -1, d = plan.offsets[3] ?? -1
        #expect([a, b, c, d].allSatisfy { $0 >= 0 && $0 % MemoryPlanner.alignment == 0 })
        // b (200 → 256 bytes) may not overlap a or c; a and c may share.
        func disjoint(_ x: Int, _ xs: Int, _ y: Int, _ ys: Int) -> Bool { x + xs <= y || y + ys <= x }
        #expect(disjoint(a, 128, b, 256) && disjoint(c, 128, b, 256))
        #expect(a == c)
        #expect(d == 0)
        // The largest live set is d alone (1024 aligned) — nothing else is alive then.
        #expect(plan.arenaBytes == 1024)
    }

    @Test func isDeterministicAndNeverOverlapsLiveTensors() {
        var lifetimes: [MemoryPlanner.Lifetime] = []
        var state: UInt64 = 42
        func next() -> Int { state = state &* 6364136223846793005 &+ 1442695040888963407; return Int(state >> 33) }
        for id in 0..<200 {
            let first = next() % 100
            lifetimes.append(lifetime(TensorID(id), first, first + next() % 20, 1 + next() % 5000))
        }
        let plan = MemoryPlanner.plan(lifetimes)
        #expect(MemoryPlanner.plan(lifetimes).offsets == plan.offsets)
        for x in lifetimes {
            for y in lifetimes where x.id < y.id && x.first <= y.last && y.first <= x.last {
                let xo = plan.offsets[x.id] ?? 0, yo = plan.offsets[y.id] ?? 0
                #expect(xo + x.bytes <= yo || yo + y.bytes <= xo, "tensors \(x.id) and \(y.id) are alive together but share bytes")
            }
            #expect((plan.offsets[x.id] ?? 0) + x.bytes <= plan.arenaBytes)
        }
        // Never more than every tensor side by side.
        #expect(plan.arenaBytes <= lifetimes.reduce(0) { $0 + ($1.bytes + 63) / 64 * 64 })
    }
}

/// IR → Program → CompiledModel gives ONNX Runtime's outputs on every shipped reference model.
@Suite struct CompiledModelTests {
    static let referenceFolders = References.folders

    static func readNPY(_ path: String) throws -> OnnxcRuntime.Tensor { try References.readNPY(path) }

    static func compile(_ path: String, level: Int) throws -> (Program, Emitter.Report) {
        let model = try ONNXImporter.load(path: path)
        let (inferred, _) = ShapeInference.infer(model)
        let optimized = try PassManager(passes: Pipelines.passes(level: level, target: .runtime), options: PassOptions(target: .runtime)).run(inferred)
        let (typed, _) = ShapeInference.infer(optimized)
        let metadata = ProgramMetadata(compiler: "test", sourceSHA256: [], sourceName: (path as NSString).lastPathComponent,
                                       producer: model.producerName, optimization: "-O\(level)")
        return try Emitter.emit(typed, metadata: metadata)
    }

    @Test(arguments: referenceFolders, [0, 2])
    func compiledProgramsMatchONNXRuntime(_ name: String, _ level: Int) throws {
        let folder = Fixtures.testdata.appendingPathComponent("reference/\(name)")
        let meta = try References.meta(name)
        let (program, report) = try Self.compile(Fixtures.testdata.appendingPathComponent(meta.model).path, level: level)
        #expect(report.arenaBytes <= report.intermediateBytes)
        let compiled = try CompiledModel(program: program)
        var inputs: [String: Value] = [:]
        for (k, input) in meta.inputs.enumerated() { inputs[input.name] = .tensor(try Self.readNPY("\(folder.path)/input_\(k).npy")) }
        let outputs = try compiled.run(inputs)
        for (k, entry) in meta.outputs.enumerated() {
            let expected = try Self.readNPY("\(folder.path)/output_\(k).npy")
            // Through .npy and back, as `onnxc run` writes outputs: NumPy's fixed-width strings end at a NUL, and
            // the reference went the same way.
            let actual = try NPY.read(try NPY.write(try #require(outputs[entry.name]?.tensor, "\(name) output \(entry.name)")))
            #expect(TensorComparison.difference(actual, expected, rtol: 1e-4, atol: 1e-5) == nil, "\(name) -O\(level) output \(entry.name)")
        }
    }

    @Test func reportsEveryUnsupportedOpAtOnce() throws {
        let graph = Graph(inputs: [Build.input("x", [.fixed(2)])], outputs: [ValueInfo(name: "z", type: nil)],
                          nodes: [Build.node("Frobnicate", ["x"], ["y"], name: "f1"), Build.node("Frobnicate", ["y"], ["w"], name: "f2"),
                                  Build.node("Wibble", ["w"], ["z"], name: "w1")])
        let metadata = ProgramMetadata(compiler: "test", sourceSHA256: [], sourceName: "m", producer: "", optimization: "-O0")
        #expect {
            _ = try Emitter.emit(Build.model(graph), metadata: metadata)
        } throws: { error in
            guard let error = error as? EmitError, case .unsupportedOps(let ops) = error else { return false }
            return ops.map(\.op) == ["Frobnicate", "Wibble"] && ops[0].nodes == ["f1", "f2"]
        }
    }

    @Test func plansStaticIntermediatesIntoOneArena() throws {
        var model = try ONNXImporter.load(path: Fixtures.model("tiny_cnn.onnx"))
        model = try InputShapes.pin(model, ["input": [1, 3, 16, 16]])
        let (inferred, _) = ShapeInference.infer(model)
        let metadata = ProgramMetadata(compiler: "test", sourceSHA256: [], sourceName: "tiny_cnn.onnx", producer: "", optimization: "-O0")
        let (program, report) = try Emitter.emit(inferred, metadata: metadata)
        let arena = program.tensors.filter { if case .arena = $0.storage { true } else { false } }
        #expect(!arena.isEmpty)
        #expect(report.arenaBytes > 0 && report.arenaBytes < report.intermediateBytes)
        // Graph outputs outlive the run: never in the arena.
        for id in program.graphs[0].outputs {
            if case .arena = program.tensors[Int(id)].storage { Issue.record("output \(program.tensors[Int(id)].name) is in the arena") }
        }
    }
}

/// The arena is used, and sharing a slot never changes an answer: views of arena values, kernels' temporaries
/// and sequences holding arena tensors are copied out before their slot is reused.
@Suite struct ArenaExecutionTests {
    func emit(_ model: Model) throws -> Program {
        let (typed, _) = ShapeInference.infer(model)
        let metadata = ProgramMetadata(compiler: "test", sourceSHA256: [], sourceName: "m", producer: "", optimization: "-O0")
        return try Emitter.emit(typed, metadata: metadata).0
    }

    @Test func pinnedCNNRunsInItsArenaWithTheSameOutputs() throws {
        let model = try InputShapes.pin(try ONNXImporter.load(path: Fixtures.model("tiny_cnn.onnx")), ["input": [2, 3, 16, 16]])
        let compiled = try CompiledModel(program: try emit(model))
        let values: [Float] = (0..<1536).map { (i: Int) -> Float in Float(i % 17) / 8 - 1 }
        let x = try OnnxcRuntime.Tensor(values, shape: [2, 3, 16, 16])
        let executor = try compiled.makeExecutor()
        let first = try executor.run(["input": .tensor(x)])
        let second = try executor.run(["input": .tensor(x)])  // the arena is reused as is, not cleared
        let reference = try Executor(graph: try Lowering.lower(model)).run(["input": .tensor(x)])
        for (name, value) in reference {
            let expected = try #require(value.tensor)
            for result in [first, second] {
                #expect(TensorComparison.difference(try #require(result[name]?.tensor), expected, rtol: 0, atol: 0) == nil)
            }
        }
        #expect(executor.arenaStatistics.inPlace > 0)
    }

    @Test func viewsAndSequencesOfArenaValuesSurviveSlotReuse() throws {
        // r = Relu(x); v = Reshape(r) (a view of r's slot); r's slot is free after the Reshape, so n = Neg(x) may
        // take it — v must have been copied out, or y = v + n reads n. s = SequenceConstruct(a) holds a past a's
        // lifetime; z = SequenceAt(s, 0) + m reads it after m may have reused a's slot.
        let nodes: [Node] = [
            Build.node("Relu", ["x"], ["r"]), Build.node("Reshape", ["r", "shape"], ["v"]),
            Build.node("Neg", ["x"], ["n"]), Build.node("Reshape", ["n", "shape"], ["nv"]),
            Build.node("Add", ["v", "nv"], ["y"]),
            Build.node("Sigmoid", ["x"], ["a"]), Build.node("SequenceConstruct", ["a"], ["s"]),
            Build.node("Tanh", ["x"], ["m"]), Build.node("SequenceAt", ["s", "zero"], ["a0"]),
            Build.node("Add", ["a0", "m"], ["z"]),
        ]
        let initializers: [OnnxcIR.Tensor] = [try Build.int64Tensor("shape", [2], [8, 4]), try Build.int64Tensor("zero", [], [0])]
        let outputs: [ValueInfo] = [ValueInfo(name: "y", type: nil), ValueInfo(name: "z", type: nil)]
        let graph = Graph(inputs: [Build.input("x", [.fixed(4), .fixed(8)])], outputs: outputs, initializers: initializers, nodes: nodes)
        let model = Build.model(graph)
        let program = try emit(model)
        let planned = program.tensors.filter { if case .arena = $0.storage { true } else { false } }.map(\.name)
        #expect(planned.contains("r") && planned.contains("n") && planned.contains("a"))
        let values: [Float] = (0..<32).map { (i: Int) -> Float in Float(i) / 8 - 2 }
        let x = try OnnxcRuntime.Tensor(values, shape: [4, 8])
        let executor = try CompiledModel(program: program).makeExecutor()
        let result = try executor.run(["x": .tensor(x)])
        let reference = try Executor(graph: try Lowering.lower(model)).run(["x": .tensor(x)])
        for name in ["y", "z"] {
            #expect(TensorComparison.difference(try #require(result[name]?.tensor), try #require(reference[name]?.tensor), rtol: 0, atol: 0) == nil, "output \(name)")
        }
        #expect(executor.arenaStatistics.copied > 0)
    }
}

/// Tensors whose size depends on a symbolic dim get arena slots after the first run of each input shape: the
/// following runs of that shape place them in the arena, other shapes are recorded and planned in turn, and a
/// data-dependent size simply falls back to the heap — with the same answers throughout.
@Suite struct ShapePlanTests {
    @Test func runTimeSizesArePlannedPerInputShape() throws {
        // x [batch, 8] → r = Relu(x) → v = Reshape(r, [-1, 4]) (a view) → s = Sigmoid(v) → m = Mul(s, s) →
        // w = Reshape(m, shape of x) → y = Add(w, x); n = NonZero(r) (a data-dependent size) → z = Cast(n) output.
        let nodes: [Node] = [
            Build.node("Relu", ["x"], ["r"]), Build.node("Reshape", ["r", "quarters"], ["v"]),
            Build.node("Sigmoid", ["v"], ["s"]), Build.node("Mul", ["s", "s"], ["m"]),
            Build.node("Shape", ["x"], ["xs"]), Build.node("Reshape", ["m", "xs"], ["w"]),
            Build.node("Add", ["w", "x"], ["y"]),
            Build.node("NonZero", ["r"], ["n"]), Build.node("Cast", ["n"], ["z"], [Attribute("to", .int(1))]),
        ]
        let graph = Graph(inputs: [Build.input("x", [.symbolic("batch"), .fixed(8)])],
                          outputs: [ValueInfo(name: "y", type: nil), ValueInfo(name: "z", type: nil)],
                          initializers: [try Build.int64Tensor("quarters", [2], [-1, 4])], nodes: nodes)
        let model = Build.model(graph)
        let (typed, _) = ShapeInference.infer(model)
        let metadata = ProgramMetadata(compiler: "test", sourceSHA256: [], sourceName: "m", producer: "", optimization: "-O0")
        let program = try Emitter.emit(typed, metadata: metadata).0
        // Only the Shape output ([2] int64) has a size known at compile time.
        #expect(program.arenaBytes == MemoryPlanner.alignment)
        let executor = try CompiledModel(program: program).makeExecutor()
        let reference = try Executor(graph: try Lowering.lower(model))
        var placed = executor.arenaStatistics.inPlace, recorded: Int?
        for (run, batch) in [2, 2, 3, 2, 3, 3].enumerated() {
            let values = (0..<(batch * 8)).map { Float(($0 * 7 + run) % 11) - 5 }
            let x = try OnnxcRuntime.Tensor(values, shape: [batch, 8])
            let result = try executor.run(["x": .tensor(x)])
            let expected = try reference.run(["x": .tensor(x)])
            for name in ["y", "z"] {
                #expect(TensorComparison.difference(try #require(result[name]?.tensor), try #require(expected[name]?.tensor), rtol: 0, atol: 0) == nil,
                        "run \(run) (batch \(batch)): output \(name)")
            }
            // The first run of each batch size records (only the compiled slot is used); every later one also
            // places the run-time-sized tensors in the arena.
            let delta = executor.arenaStatistics.inPlace - placed
            placed += delta
            if run == 0 || run == 2 {
                #expect(delta == recorded ?? delta, "run \(run) should only record")
                recorded = delta
            } else {
                #expect(delta >= (recorded ?? 0) + 3, "run \(run): \(delta) values in the arena")
            }
        }
    }
}

/// Element-wise float32 Add/Sub/Mul/Div write over an operand of the output's shape that they read last (its slot,
/// through its views), and nowhere else: not over an operand read later, a smaller broadcast operand, a graph input,
/// or one a second operand shares.
@Suite struct InPlaceTests {
    static func offset(_ program: Program, _ name: String) -> Int? {
        guard let tensor = program.tensors.first(where: { $0.name == name }), case .arena(let offset, _) = tensor.storage else { return nil }
        return offset
    }

    @Test func elementwiseOutputsTakeTheSlotOfAnOperandTheyReadLast() throws {
        let nodes: [Node] = [
            Build.node("Relu", ["x"], ["r"]), Build.node("Sigmoid", ["x"], ["s"]),
            Build.node("Mul", ["r", "s"], ["m"]),            // r's last reader: m over r (s is read again below)
            Build.node("Tanh", ["m"], ["t"]),
            Build.node("Add", ["t", "s"], ["u"]),            // both last read here: u over t, the first operand
            Build.node("Neg", ["u"], ["q"]),
            Build.node("Sub", ["q", "column"], ["d"]),       // the [4, 1] constant broadcasts; q is read again
            Build.node("Mul", ["x", "d"], ["e"]),            // x is a graph input: e over d
            Build.node("Reshape", ["e", "shape"], ["ev"]),   // a view of e
            Build.node("Div", ["ev", "ev"], ["f"]),          // both operands share e's slot: f gets its own
            Build.node("Add", ["f", "q"], ["y"]),
        ]
        let initializers: [OnnxcIR.Tensor] = [try Build.floatTensor("column", [4, 1], [1, 2, 3, 4]),
                                              try Build.int64Tensor("shape", [2], [4, 8])]
        let graph = Graph(inputs: [Build.input("x", [.fixed(4), .fixed(8)])], outputs: [ValueInfo(name: "y", type: nil)],
                          initializers: initializers, nodes: nodes)
        let model = Build.model(graph)
        let (typed, _) = ShapeInference.infer(model)
        let metadata = ProgramMetadata(compiler: "test", sourceSHA256: [], sourceName: "m", producer: "", optimization: "-O0")
        let program = try Emitter.emit(typed, metadata: metadata).0
        func slot(_ name: String) -> Int? { Self.offset(program, name) }
        #expect(slot("m") != nil && slot("m") == slot("r"))
        #expect(slot("u") != nil && slot("u") == slot("t"))
        #expect(slot("d") != slot("q"))
        #expect(slot("e") != nil && slot("e") == slot("d"))
        #expect(slot("f") != slot("e"))

        let x = try OnnxcRuntime.Tensor((0..<32).map { Float($0) / 8 - 2 }, shape: [4, 8])
        let executor = try CompiledModel(program: program).makeExecutor()
        for _ in 0..<2 {  // the arena is reused as is
            let result = try #require(try executor.run(["x": .tensor(x)])["y"]?.tensor)
            let reference = try #require(try Executor(graph: try Lowering.lower(model)).run(["x": .tensor(x)])["y"]?.tensor)
            #expect(TensorComparison.difference(result, reference, rtol: 0, atol: 0) == nil)
        }
    }
}

@Suite struct WeightPackingTests {
    @Test func convolutionWeightsArePrepackedAndGiveTheSameOutputs() throws {
        let model = try InputShapes.pin(try ONNXImporter.load(path: Fixtures.model("tiny_cnn.onnx")), ["input": [2, 3, 16, 16]])
        let (typed, _) = ShapeInference.infer(model)
        let metadata = ProgramMetadata(compiler: "test", sourceSHA256: [], sourceName: "m", producer: "", optimization: "-O0")
        let (packed, report) = try Emitter.emit(typed, metadata: metadata)
        let (plain, _) = try Emitter.emit(typed, metadata: metadata, prepackWeights: false)
        // Both convolutions' weights and the classifier's Gemm weight.
        #expect(report.prepackedWeights == 3)
        let layouts = packed.tensors.compactMap { tensor -> ConstantLayout? in
            if case .constant(_, let layout) = tensor.storage { return layout }
            return nil
        }
        #expect(layouts.filter { $0 != .plain }.count == 3)
        // Through the file format and back, as a run would see it.
        let reread = try OXCReader.read(ByteStorage(copying: try OXCWriter.serialize(packed)))
        let values: [Float] = (0..<1536).map { (i: Int) -> Float in Float(i % 23) / 11 - 1 }
        let x = try OnnxcRuntime.Tensor(values, shape: [2, 3, 16, 16])
        let a = try CompiledModel(program: reread).run(["input": .tensor(x)])
        let b = try CompiledModel(program: plain).run(["input": .tensor(x)])
        for (name, value) in b {
            #expect(TensorComparison.difference(try #require(a[name]?.tensor), try #require(value.tensor), rtol: 1e-6, atol: 1e-7) == nil)
        }
    }

    @Test func weightsPackedForAnotherKernelAreRefused() throws {
        let model = try InputShapes.pin(try ONNXImporter.load(path: Fixtures.model("tiny_cnn.onnx")), ["input": [1, 3, 16, 16]])
        let metadata = ProgramMetadata(compiler: "test", sourceSHA256: [], sourceName: "m", producer: "", optimization: "-O0")
        var (program, _) = try Emitter.emit(ShapeInference.infer(model).0, metadata: metadata)
        for (i, tensor) in program.tensors.enumerated() {
            if case .constant(let data, .packed(let code, var parameters)) = tensor.storage {
                // The last parameter of every packed layout is the kernel's panel size.
                parameters[parameters.count - 1] += 2
                program.tensors[i].storage = .constant(data, layout: .packed(code: code, parameters: parameters))
            }
        }
        #expect(throws: RuntimeError.self) { _ = try CompiledModel(program: program) }
    }
}

/// One loaded model, many threads: each run has its own executor and arena, and the kernels' pool takes
/// concurrent callers.
@Suite struct ConcurrentRunTests {
    @Test func concurrentRunsOfOneModelAgree() throws {
        let model = try InputShapes.pin(try ONNXImporter.load(path: Fixtures.model("tiny_cnn.onnx")), ["input": [4, 3, 16, 16]])
        let metadata = ProgramMetadata(compiler: "test", sourceSHA256: [], sourceName: "m", producer: "", optimization: "-O2")
        let (program, _) = try Emitter.emit(ShapeInference.infer(model).0, metadata: metadata)
        let compiled = try CompiledModel(program: program)
        let values: [Float] = (0..<3072).map { (i: Int) -> Float in Float(i % 29) / 14 - 1 }
        let x = try OnnxcRuntime.Tensor(values, shape: [4, 3, 16, 16])
        let expected = try #require(try compiled.run(["input": .tensor(x)])["output"]?.tensor)
        let mismatches = Mutex(0)
        DispatchQueue.concurrentPerform(iterations: 16) { _ in
            for _ in 0..<5 {
                let same = (try? compiled.run(["input": .tensor(x)])["output"]?.tensor).flatMap { $0 }
                    .map { TensorComparison.difference($0, expected, rtol: 0, atol: 0) == nil } ?? false
                if !same { mismatches.withLock { $0 += 1 } }
            }
        }
        #expect(mismatches.withLock { $0 } == 0)
    }

    /// The recurrent ops' projections are made once at load and shared: concurrent runs of the int8-dynamic form
    /// (per-run grids, the few-row kernel threaded) agree with a lone run.
    @Test func concurrentRunsOfARecurrentModelAgree() throws {
        let model = try ONNXImporter.load(path: Fixtures.model("recurrent.onnx"))
        let (quantized, _) = try QDQInsertion.insert(try InputShapes.pin(model, ["features": [5, 2, 12]]), ranges: [:], options: QuantizationOptions(dynamic: true))
        let lowered = try Pipelines.quantizedLowering().run(ShapeInference.infer(quantized).0)
        let metadata = ProgramMetadata(compiler: "test", sourceSHA256: [], sourceName: "m", producer: "", optimization: "-O int8-dynamic")
        let (program, _) = try Emitter.emit(ShapeInference.infer(lowered).0, metadata: metadata)
        let compiled = try CompiledModel(program: program)
        let x = try OnnxcRuntime.Tensor((0..<120).map { Float($0 % 17) / 8 - 1 }, shape: [5, 2, 12])
        let expected = try #require(try compiled.run(["features": .tensor(x)])["tags"]?.tensor)
        let mismatches = Mutex(0)
        DispatchQueue.concurrentPerform(iterations: 8) { _ in
            for _ in 0..<5 {
                // To 1e-5, not bit for bit: another suite may switch the process-wide instruction set, and with it the
                // vector activations, while this runs; a shared buffer written by two runs would be far off.
                let same = (try? compiled.run(["features": .tensor(x)])["tags"]?.tensor).flatMap { $0 }
                    .map { TensorComparison.difference($0, expected, rtol: 0, atol: 1e-5) == nil } ?? false
                if !same { mismatches.withLock { $0 += 1 } }
            }
        }
        #expect(mismatches.withLock { $0 } == 0)
    }
}
