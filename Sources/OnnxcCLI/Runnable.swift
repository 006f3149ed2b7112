import OnnxcCore
import OnnxcEmitter
import OnnxcFormat
import OnnxcIR
import OnnxcLowering
import OnnxcPasses
import OnnxcRuntime

/// A model `run`, `bench` and `verify` can execute: an ONNX file (optimized for the runtime at `level`) or a
/// compiled `.oxc` file.
struct Runnable {
    let path: String
    let graph: RuntimeGraph
    let executor: any ModelRunner
    /// From import (or mapping) to ready to run.
    let loadSeconds: Double
    /// The planned arena of a compiled model; nil for ONNX files, which allocate per op.
    let arenaBytes: Int?
    /// The thread count the model was compiled for (`compile --threads`), if any.
    var compiledThreads: Int? = nil

    /// `--threads` wins, then the compiled model's setting; otherwise the runtime's default stays.
    func applyThreads(_ requested: Int?) {
        if let count = requested ?? compiledThreads { Parallelism.setThreads(count) }
    }

    static func isCompiled(_ path: String) -> Bool { path.hasSuffix(".oxc") }

    static func load(_ path: String, level: Int, inputShapes: [String: [Int64]] = [:]) throws(CommandFailure) -> Runnable {
        let start = ContinuousClock.now
        if isCompiled(path) {
            let compiled = try CompiledFile.load(path)
            do {
                let executor = try compiled.makeExecutor()
                // The kernels' workers start while the inputs are read, not inside the first op.
                Parallelism.warmUp()
                let threads = compiled.program.metadata.properties.last { $0.key == "threads" }.flatMap { Int($0.value) }
                return Runnable(path: path, graph: executor.graph, executor: executor, loadSeconds: Stopwatch.seconds(since: start),
                                arenaBytes: compiled.program.arenaBytes, compiledThreads: threads)
            } catch {
                throw CommandFailure(file: path, error)
            }
        }
        var model = try ModelLoading.load(path, inlineFunctions: true)
        if !inputShapes.isEmpty {
            do {
                model = try InputShapes.pin(model, inputShapes)
            } catch {
                throw CommandFailure(file: path, error)
            }
        }
        let optimized = try OptimizationLevel.optimize(model, level: level, target: .runtime, disabled: [], file: path).0
        do {
            let executor = try Executor(graph: try Lowering.lower(optimized))
            return Runnable(path: path, graph: executor.graph, executor: executor, loadSeconds: Stopwatch.seconds(since: start), arenaBytes: nil)
        } catch {
            throw CommandFailure(file: path, error)
        }
    }

    func run(_ inputs: [String: Value]) throws(CommandFailure) -> [String: Value] {
        do {
            return try executor.run(inputs)
        } catch {
            throw CommandFailure(file: path, error)
        }
    }
}

enum Stopwatch {
    static func seconds(since start: ContinuousClock.Instant) -> Double {
        let elapsed = ContinuousClock.now - start
        return Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) * 1e-18
    }
}

/// Inputs made up for `bench` and `verify` when the user gives none: seeded, so two runs see the same values.
/// Floats are uniform in [-1, 1); integers in [0, 100) (valid token ids and indices for typical models); bools
/// random. Unknown dims take `--input-shape`'s value, else 1.
enum GeneratedInputs {
    static func make(for graph: RuntimeGraph, given: [String: Value], shapes: [String: [Int64]], seed: UInt64 = 0x5EED) throws(CommandFailure) -> [String: Value] {
        var values = given
        var state = seed
        func next() -> UInt64 {
            state = state &* 6364136223846793005 &+ 1442695040888963407
            return state >> 11
        }
        for input in graph.inputs where values[input.name] == nil && graph.initializers[input.name] == nil {
            guard let dtype = input.dtype else {
                throw CommandFailure(file: nil, what: "input \(input.name) is not a tensor (\(input.shapeText)); onnxc cannot make one up",
                                     hint: "pass it with --input \(input.name)=FILE")
            }
            let dims: [Int]
            if let pinned = shapes[input.name] {
                dims = pinned.map { Int($0) }
            } else {
                dims = (input.shape ?? []).map { $0 ?? 1 }
            }
            let count = dims.reduce(1, *)
            let tensor: OnnxcRuntime.Tensor
            do {
                switch dtype {
                case .float: tensor = try OnnxcRuntime.Tensor((0..<count).map { _ in Float(Double(next()) / Double(1 << 53) * 2 - 1) }, shape: dims)
                case .double: tensor = try OnnxcRuntime.Tensor((0..<count).map { _ in Double(next()) / Double(1 << 53) * 2 - 1 }, shape: dims)
                case .int64: tensor = try OnnxcRuntime.Tensor((0..<count).map { _ in Int64(next() % 100) }, shape: dims)
                case .int32: tensor = try OnnxcRuntime.Tensor((0..<count).map { _ in Int32(next() % 100) }, shape: dims)
                case .bool: tensor = try OnnxcRuntime.Tensor((0..<count).map { _ in next() % 2 == 0 }, shape: dims)
                case .uint8: tensor = try OnnxcRuntime.Tensor((0..<count).map { _ in UInt8(next() % 256) }, shape: dims)
                default:
                    throw CommandFailure(file: nil, what: "input \(input.name) has type \(dtype.onnxName), which onnxc does not generate",
                                         hint: "pass it with --input \(input.name)=FILE")
                }
            } catch let failure as CommandFailure {
                throw failure
            } catch {
                throw CommandFailure(file: nil, what: "cannot make input \(input.name) of shape \(dims): \(error)", hint: "pin its dims with --input-shape")
            }
            values[input.name] = .tensor(tensor)
        }
        return values
    }
}
