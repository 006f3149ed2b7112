import ArgumentParser
import OnnxcCore
import OnnxcIR
import OnnxcPasses

/// Parses `-O0`/`-O 1`/`-O2` and runs the matching pipeline, shared by `optimize` and `dump`.
enum OptimizationLevel {
    static func parse(_ text: String) throws -> Int {
        guard let level = Int(text), (0...2).contains(level) else {
            throw ValidationError("-O\(text) is not a level: use -O0 (lossless re-encode), -O1 (canonicalize) or -O2 (plus fusions)")
        }
        return level
    }

    static func parseTarget(_ text: String) throws -> OptimizationTarget {
        guard let target = OptimizationTarget(rawValue: text) else {
            throw ValidationError("--target \(text): use onnx (standard ops) or runtime (onnxc's fused ops)")
        }
        return target
    }

    static func validate(disabled: [String]) throws {
        let known = Set(Pipelines.all.map(\.id))
        if let unknown = disabled.first(where: { !known.contains($0) }) {
            throw ValidationError("--disable-pass \(unknown): no such pass (known: \(known.sorted().joined(separator: ", ")))")
        }
    }

    /// Shape inference, then the level's passes (and, for the runtime at -O2, the layout stage: a second driver
    /// once the first has settled); `observer` sees the model after each changing pass.
    static func optimize(_ model: Model, level: Int, target: OptimizationTarget = .onnx, disabled: [String], file: String,
                         observer: ((String, Model) -> Void)? = nil) throws(CommandFailure) -> (Model, [PassStatistics]) {
        let options = PassOptions(target: target)
        let manager = PassManager(passes: Pipelines.passes(level: level, target: target, disabled: Set(disabled)), options: options)
        manager.observer = observer
        guard level > 0 else { return (model, manager.statistics) }
        // Inferred shapes let folding resolve static Shape/Size; diagnostics do not stop optimization.
        let (inferred, _) = ShapeInference.infer(model)
        do {
            let optimized = try manager.run(inferred)
            guard level >= 2, target == .runtime else { return (optimized, manager.statistics) }
            var current = ShapeInference.infer(optimized).0
            var statistics = manager.statistics
            for driver in Pipelines.layoutDrivers(options: options, disabled: Set(disabled)) {
                driver.observer = observer
                current = try driver.run(current)
                statistics += driver.statistics
            }
            return (current, statistics)
        } catch {
            throw CommandFailure(file: file, error)
        }
    }

    /// `op  before  after` rows, like onnxslim's summary.
    static func opTable(before: Model, after: Model) -> String {
        let a = ModelSummary(before).opHistogram, b = ModelSummary(after).opHistogram
        var ops: [String] = []
        for entry in a + b where !ops.contains(entry.op) { ops.append(entry.op) }
        let count = { (list: [ModelSummary.OpCount], op: String) in list.first { $0.op == op }?.count ?? 0 }
        let width = max(8, (ops.map(\.count).max() ?? 0) + 2)
        func pad(_ s: String, _ w: Int) -> String { s + String(repeating: " ", count: max(0, w - s.count)) }
        var lines = [pad("op", width) + pad("before", 8) + "after"]
        for op in ops { lines.append(pad(op, width) + pad(String(count(a, op)), 8) + String(count(b, op))) }
        lines.append(pad("total", width) + pad(String(before.graph.nodeCountIncludingSubgraphs), 8)
                     + String(after.graph.nodeCountIncludingSubgraphs))
        return lines.joined(separator: "\n") + "\n"
    }

    static func statisticsTable(_ statistics: [PassStatistics]) -> String {
        var lines = ["pass                          runs  changes  removed  added      ms"]
        for s in statistics {
            func col(_ v: String, _ w: Int) -> String { String(repeating: " ", count: max(0, w - v.count)) + v }
            lines.append(s.id + String(repeating: " ", count: max(0, 28 - s.id.count)) + col(String(s.runs), 6) + col(String(s.changes), 9)
                         + col(String(s.nodesRemoved), 9) + col(String(s.nodesAdded), 7) + col(String((s.seconds * 1e5).rounded() / 100), 8))
        }
        return lines.joined(separator: "\n") + "\n"
    }

    static func statisticsJSON(_ statistics: [PassStatistics]) -> JSON {
        .array(statistics.map { s in
            .object([("pass", .string(s.id)), ("runs", .int(Int64(s.runs))), ("changes", .int(Int64(s.changes))),
                     ("nodes_removed", .int(Int64(s.nodesRemoved))), ("nodes_added", .int(Int64(s.nodesAdded))),
                     ("seconds", .double(s.seconds))])
        })
    }
}

/// `onnxc passes`: every pass with its id and summary.
struct Passes: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "passes", abstract: "List every optimization pass with its id and summary.")

    func run() throws {
        let width = (Pipelines.all.map(\.id.count).max() ?? 0) + 2
        var text = ""
        for pass in Pipelines.all { text += pass.id + String(repeating: " ", count: width - pass.id.count) + pass.summary + "\n" }
        text += "\n-O1: " + Pipelines.passes(level: 1).map(\.id).joined(separator: ", ") + "\n"
        text += "-O2: " + Pipelines.passes(level: 2).map(\.id).joined(separator: ", ") + "\n"
        text += "-O2 for the onnxc runtime (run/test -O2, dump --target runtime) adds: "
            + Pipelines.passes(level: 2, target: .runtime).map(\.id).filter { id in !Pipelines.passes(level: 2).contains { $0.id == id } }
                .joined(separator: ", ") + ", then the layout stage: " + Pipelines.layout.map(\.id).joined(separator: ", ")
                + ", then its clean-up: " + Pipelines.layoutCleanup.map(\.id).joined(separator: ", ") + "\n"
        Output.write(text)
    }
}
