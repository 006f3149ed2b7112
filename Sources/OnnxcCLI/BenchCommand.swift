import ArgumentParser
import OnnxcCore
import OnnxcEmitter
import OnnxcRuntime
#if canImport(Glibc)
import Glibc
#endif

/// `onnxc bench MODEL`: latency percentiles, throughput, load time, peak memory. Never a pass/fail test:
/// timing on shared machines is noisy, so comparisons belong in a script that runs both engines together.
struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Time a model (.oxc, or .onnx optimized for the runtime): p50/p90/p99/min latency, load time, peak RSS; --profile adds the time per op type.",
        discussion: "With --json the last line of stdout is one JSON object (median_ms, p90_ms, p99_ms, min_ms, mean_ms, runs_per_s, load_ms, peak_rss_bytes, arena_bytes).")

    @Argument(help: "The model: a compiled .oxc, or an .onnx file.")
    var model: String

    @Option(name: .customLong("input"), help: ArgumentHelp("An input: NAME=FILE (.npy, .npz or .pb); missing inputs are generated.", valueName: "name=file"))
    var inputs: [String] = []

    @Option(help: ArgumentHelp("Dims for a generated input (and, for .onnx, pinned at compile time): NAME=1x3x224x224.", valueName: "name=dims"))
    var inputShape: [String] = []

    @Option(name: .customShort("O", allowingJoined: true), help: ArgumentHelp("For .onnx: the runtime pipeline level (default 2).", valueName: "level"))
    var level: String = "2"

    @Option(help: ArgumentHelp("Kernel threads (default: the compiled model's setting, else physical cores).", valueName: "n"))
    var threads: Int?

    @Option(help: "Timed runs.")
    var runs = 20

    @Option(help: "Untimed runs first (caches, lazy allocations).")
    var warmup = 3

    @Flag(help: "Print one JSON object as the last line.")
    var json = false

    @Flag(help: "Print, on stderr, the time per op type summed over the timed runs.")
    var profile = false

    @Flag(help: "With --profile: per node instead of per op type (compiled models).")
    var profileNodes = false

    func validate() throws {
        _ = try OptimizationLevel.parse(level)
        guard runs >= 1 else { throw ValidationError("--runs must be at least 1") }
        if let threads, threads < 1 { throw ValidationError("--threads must be at least 1") }
        guard warmup >= 0 else { throw ValidationError("--warmup must be 0 or more") }
        for spec in inputShape { _ = try InputShapes.parse(spec) }
    }

    func run() throws {
        var shapes: [String: [Int64]] = [:]
        for spec in inputShape {
            let (name, dims) = try InputShapes.parse(spec)
            shapes[name] = dims
        }
        let runnable = try Runnable.load(model, level: OptimizationLevel.parse(level), inputShapes: shapes)
        runnable.applyThreads(threads)
        let given = try InputFiles.load(inputs, graph: runnable.graph, model: model, requireAll: false)
        let values = try GeneratedInputs.make(for: runnable.graph, given: given, shapes: shapes)
        for _ in 0..<warmup { _ = try runnable.run(values) }
        if profile { runnable.executor.profile = [:] }
        if profileNodes, let compiled = runnable.executor as? CompiledExecutor { compiled.profilesNodes = true }
        var times: [Double] = []
        let timed = ContinuousClock.now
        for _ in 0..<runs {
            let start = ContinuousClock.now
            _ = try runnable.run(values)
            times.append(Stopwatch.seconds(since: start) * 1e3)
        }
        if let table = runnable.executor.profile { Output.note(Profile.render(table, total: ContinuousClock.now - timed)) }
        let stats = LatencyStats(times)
        let peakRSS = PeakMemory.bytes()
        // The arena the runs used: the compiled plan's, plus the slots planned for sizes known only at run time.
        let arenaBytes = (runnable.executor as? CompiledExecutor)?.arenaBytes ?? runnable.arenaBytes
        if json {
            Output.write(JSON.object([
                ("model", .string(model)), ("runs", .int(Int64(runs))),
                ("median_ms", .double(stats.median)), ("p90_ms", .double(stats.p90)), ("p99_ms", .double(stats.p99)),
                ("min_ms", .double(stats.min)), ("mean_ms", .double(stats.mean)), ("runs_per_s", .double(stats.median > 0 ? 1e3 / stats.median : 0)),
                ("load_ms", .double(runnable.loadSeconds * 1e3)), ("peak_rss_bytes", .int(Int64(peakRSS))),
                ("arena_bytes", arenaBytes.map { .int(Int64($0)) } ?? .null), ("threads", .int(Int64(Parallelism.threads))),
            ]).serialized(pretty: false) + "\n")
        } else {
            func ms(_ v: Double) -> String { Text.format("%.3f ms", v) }
            Output.write("""
                \(model): \(runs) runs after \(warmup) warm-up, \(Parallelism.threads) threads
                  median \(ms(stats.median))   p90 \(ms(stats.p90))   p99 \(ms(stats.p99))   min \(ms(stats.min))   mean \(ms(stats.mean))
                  throughput \(Text.format("%.1f", stats.median > 0 ? 1e3 / stats.median : 0)) runs/s
                  load \(ms(runnable.loadSeconds * 1e3))   peak RSS \(peakRSS / (1 << 20)) MiB\(arenaBytes.map { "   arena \($0) bytes" } ?? "")

                """)
        }
    }
}

/// Percentiles by the nearest-rank method over the sorted samples.
struct LatencyStats {
    let median, p90, p99, min, mean: Double

    init(_ samples: [Double]) {
        let sorted = samples.sorted()
        func rank(_ p: Double) -> Double {
            guard !sorted.isEmpty else { return 0 }
            let index = Swift.min(sorted.count - 1, Swift.max(0, Int((p * Double(sorted.count)).rounded(.up)) - 1))
            return sorted[index]
        }
        median = rank(0.5)
        p90 = rank(0.9)
        p99 = rank(0.99)
        min = sorted.first ?? 0
        mean = sorted.isEmpty ? 0 : sorted.reduce(0, +) / Double(sorted.count)
    }
}

/// The process's peak resident set. Linux's VmHWM belongs to the address space, which `exec` replaces, whereas
/// getrusage's ru_maxrss survives exec: a bench started by a large parent (a Python script holding ONNX Runtime)
/// would report the parent's peak as its own.
enum PeakMemory {
    static func bytes() -> Int {
        if let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8),
           let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmHWM:") }),
           let kilobytes = Int(line.split(separator: " ").dropFirst().first ?? "") {
            return kilobytes * 1024
        }
        var usage = rusage()
        getrusage(Int32(RUSAGE_SELF.rawValue), &usage)
        return Int(usage.ru_maxrss) * 1024
    }
}
