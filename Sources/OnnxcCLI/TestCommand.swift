import ArgumentParser
import OnnxcCore
import OnnxcFrontend
import OnnxcFormat
import OnnxcEmitter
import OnnxcIR
import OnnxcLowering
import OnnxcRuntime

/// `onnxc test DIR...`: runs ONNX backend test folders (model.onnx + test_data_set_*/{input,output}_N.pb),
/// like ONNX Runtime's onnx_test_runner.
struct Test: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "test",
        abstract: "Run ONNX backend test folders and compare outputs with the expected ones.",
        discussion: """
            Each DIR is a test folder (model.onnx and test_data_set_*/) or a folder of them. A test passes when every \
            output has the expected type and shape and |actual - expected| <= atol + rtol * |expected| elementwise \
            (NaN matches NaN). Prints one line per test and `N passed, N failed`.
            """)

    @Argument(help: "Test folders, or folders containing test folders.")
    var directories: [String]

    @Option(help: "Relative tolerance.")
    var rtol: Double = 1e-3

    @Option(help: "Absolute tolerance.")
    var atol: Double = 1e-5

    @Option(help: ArgumentHelp("""
        The conformance list: one test per line, `test_name` for a test that must pass, `- test_name  # reason` for \
        an excluded one (the reason is required). A listed test that fails fails the run.
        """, valueName: "file"))
    var expected: String?

    @Flag(help: "Print results as JSON.")
    var json = false

    @Option(name: .customShort("O", allowingJoined: true),
            help: ArgumentHelp("Optimize each model for the onnxc runtime first: -O0 (as written), -O1, -O2.", valueName: "level"))
    var level: String = "0"

    @Flag(help: "Compile each model (emit, write .oxc bytes, read them back) and run the compiled program.")
    var compiled = false

    func validate() throws {
        _ = try OptimizationLevel.parse(level)
    }

    func run() throws {
        let level = try OptimizationLevel.parse(level)
        let folders = try testFolders()
        var results: [(name: String, passed: Bool, detail: String)] = []
        for folder in folders {
            let name = Text.lastPathComponent(folder)
            let outcome = BackendTest.run(folder: folder, level: level, compiled: compiled, rtol: rtol, atol: atol)
            results.append((name, outcome == nil, outcome ?? ""))
            if !json { Output.write(outcome.map { "FAIL \(name): \($0)\n" } ?? "PASS \(name)\n") }
        }
        let passed = results.filter(\.passed).count
        var regressions: [String] = []
        var newPasses: [String] = []
        if let expected {
            let list = try ConformanceList.read(expected)
            let passing = Set(results.filter(\.passed).map(\.name))
            let ran = Set(results.map(\.name))
            regressions = list.mustPass.filter { ran.contains($0) && !passing.contains($0) }.sorted()
            newPasses = passing.subtracting(list.mustPass).sorted()
        }
        if json {
            let entries = results.map { JSON.object([("test", .string($0.name)), ("passed", .bool($0.passed)), ("detail", .string($0.detail))]) }
            Output.write(JSON.object([("passed", .int(Int64(passed))), ("failed", .int(Int64(results.count - passed))),
                                      ("regressions", .array(regressions.map { .string($0) })),
                                      ("new_passes", .array(newPasses.map { .string($0) })),
                                      ("tests", .array(entries))]).serialized() + "\n")
        } else {
            if !newPasses.isEmpty { Output.write("\(newPasses.count) tests pass that the expected list does not name yet: \(newPasses.joined(separator: " "))\n") }
            if !regressions.isEmpty { Output.write("REGRESSIONS (expected to pass): \(regressions.joined(separator: " "))\n") }
            Output.write("\(passed) passed, \(results.count - passed) failed\n")
        }
        if !regressions.isEmpty { throw ExitCode.failure }
    }

    private func testFolders() throws(CommandFailure) -> [String] {
        var folders: [String] = []
        for directory in directories {
            guard FileInfo.isDirectory(directory) else {
                throw CommandFailure(file: directory, what: "not a folder", hint: "pass ONNX backend test folders")
            }
            if FileInfo.exists(directory + "/model.onnx") {
                folders.append(directory)
            } else {
                let children = (Directory.entries(directory) ?? []).sorted()
                folders += children.map { directory + "/" + $0 }.filter { FileInfo.exists($0 + "/model.onnx") }
            }
        }
        return folders
    }
}

/// The committed conformance list: `test_name` lines must pass; `- test_name  # reason` lines are excluded,
/// each with its reason. Blank lines and lines starting with `#` are comments.
enum ConformanceList {
    struct Contents {
        var mustPass: Set<String>
        var excluded: [String: String]
    }

    static func read(_ path: String) throws(CommandFailure) -> Contents {
        guard let text = try? MappedFile.text(path: path) else {
            throw CommandFailure(file: path, what: "cannot read the conformance list", hint: "check the path")
        }
        var contents = Contents(mustPass: [], excluded: [:])
        for (number, raw) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let line = raw.trimmingWhitespace()
            if line.isEmpty || line.hasPrefix("#") { continue }
            if line.hasPrefix("-") {
                let parts = line.dropFirst().split(separator: "#", maxSplits: 1)
                let name = parts.first?.trimmingWhitespace() ?? ""
                let reason = parts.count > 1 ? parts[1].trimmingWhitespace() : ""
                guard !name.isEmpty, !reason.isEmpty else {
                    throw CommandFailure(file: path, what: "line \(number + 1): an excluded test needs a reason (`- name  # reason`)",
                                         hint: "write down why the test is excluded")
                }
                contents.excluded[name] = reason
            } else {
                contents.mustPass.insert(line)
            }
        }
        return contents
    }
}

/// One backend test: load, lower, run every data set, compare.
enum BackendTest {
    /// nil when the test passes, else why it failed.
    static func run(folder: String, level: Int, compiled: Bool, rtol: Double, atol: Double) -> String? {
        do {
            let model = try ONNXImporter.load(path: folder + "/model.onnx")
            let optimized = level == 0 ? model
                : try OptimizationLevel.optimize(model, level: level, target: .runtime, disabled: [], file: folder + "/model.onnx").0
            let executor: any ModelRunner
            if compiled {
                // The whole compile path, format included: emit, serialize, read back, run the program.
                let (typed, _) = ShapeInference.infer(optimized)
                let metadata = ProgramMetadata(compiler: "onnxc \(Onnxc.version)", sourceSHA256: [], sourceName: "model.onnx",
                                               producer: model.producerName, optimization: "-O\(level)")
                let program = try Emitter.emit(typed, metadata: metadata).0
                let bytes = try OXCWriter.serialize(program)
                executor = try CompiledModel(program: try OXCReader.read(ByteStorage(copying: bytes))).makeExecutor()
            } else {
                executor = try Executor(graph: try Lowering.lower(optimized))
            }
            let sets = (Directory.entries(folder) ?? [])
                .filter { $0.hasPrefix("test_data_set_") }.sorted()
            guard !sets.isEmpty else { return "no test_data_set_* folder" }
            let runtimeInputs = model.graph.runtimeInputs
            for set in sets {
                let directory = folder + "/" + set
                var inputs: [String: Value] = [:]
                for (index, input) in runtimeInputs.enumerated() {
                    let path = directory + "/input_\(index).pb"
                    guard FileInfo.exists(path) else { continue }
                    inputs[input.name] = try readValue(path, type: input.type)
                }
                let results = try executor.run(inputs)
                for (index, output) in model.graph.outputs.enumerated() {
                    let path = directory + "/output_\(index).pb"
                    guard FileInfo.exists(path) else { continue }
                    let expected = try readValue(path, type: output.type)
                    guard let actual = results[output.name] else { return "\(set): output \(output.name) was not computed" }
                    if let difference = compare(actual, expected, rtol: rtol, atol: atol) {
                        return "\(set): output \(output.name): \(difference)"
                    }
                }
            }
            return nil
        } catch let error as any UserFacingError {
            return error.description.split(separator: "\n", omittingEmptySubsequences: false).joined(separator: " ")
        } catch {
            return "\(error)"
        }
    }

    /// Reads a test-data file as the value kind the model declares for that input or output.
    static func readValue(_ path: String, type: ValueType?) throws -> Value {
        switch type?.kind {
        case .sequence(let element):
            let data = try ONNXImporter.loadData(path: path, kind: .sequence)
            return try value(data, elementType: element?.tensorType?.elementType)
        case .optional(let element):
            let data = try ONNXImporter.loadData(path: path, kind: .optional)
            return try value(data, elementType: element?.tensorType?.elementType ?? sequenceElement(element))
        default:
            var data = try ONNXImporter.loadTensor(path: path).data
            // Some node tests store bfloat16 data as UINT16 bit patterns; the model's declared type says which.
            if type?.tensorType?.elementType == .bfloat16, data.dtype == .uint16, case .bytes(let bits) = data.payload {
                data = try TensorData(dtype: .bfloat16, dims: data.dims, payload: .bytes(bits))
            }
            return .tensor(try OnnxcRuntime.Tensor(data))
        }
    }

    private static func sequenceElement(_ type: ValueType?) -> DType? {
        if case .sequence(let element) = type?.kind { return element?.tensorType?.elementType }
        return nil
    }

    private static func value(_ data: DataValue, elementType: DType?) throws -> Value {
        switch data {
        case .tensor(let t): return .tensor(try OnnxcRuntime.Tensor(t.data))
        case .sequence(let ts):
            var tensors: [OnnxcRuntime.Tensor] = []
            for t in ts { tensors.append(try OnnxcRuntime.Tensor(t.data)) }
            return .sequence(elementType: elementType ?? tensors.first?.dtype ?? .float, tensors)
        case .optional(let inner):
            guard let inner else { return .none(.tensor(elementType ?? .float)) }
            return try value(inner, elementType: elementType)
        }
    }

    /// Compares values of any kind: tensors by tolerance, sequences element by element, empty optionals by kind.
    static func compare(_ actual: Value, _ expected: Value, rtol: Double, atol: Double) -> String? {
        switch (actual, expected) {
        case (.tensor(let a), .tensor(let e)):
            return TensorComparison.difference(a, e, rtol: rtol, atol: atol)
        case (.sequence(_, let a), .sequence(_, let e)):
            guard a.count == e.count else { return "sequence of \(a.count) tensors, expected \(e.count)" }
            for (i, (x, y)) in zip(a, e).enumerated() {
                if let d = TensorComparison.difference(x, y, rtol: rtol, atol: atol) { return "sequence element \(i): \(d)" }
            }
            return nil
        case (.none, .none):
            return nil
        default:
            return "got \(OutputFiles.describe(actual)), expected \(OutputFiles.describe(expected))"
        }
    }
}
