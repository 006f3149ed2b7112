import Foundation
import OnnxcRuntime
import OnnxcTestSupport
import Testing

/// `onnxc prune`, `compress` and `compile --prune` end to end on the committed digits CNN (scripts/train_digits.py).
@Suite struct PruneTests {
    let model = Fixtures.model("digits_cnn.onnx")
    let calibration = Fixtures.testdata.appendingPathComponent("quant/digits_calib.npz").path
    let evaluation = Fixtures.testdata.appendingPathComponent("quant/digits_eval.npz").path

    private func json(_ text: String) throws -> [String: Any] {
        try #require(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any])
    }

    @Test func refittedPruningKeepsTheDigitsAccuracy() throws {
        let out = try Fixtures.temporaryDirectory().appendingPathComponent("pruned.onnx").path
        let run = try CLIRunner.run(["prune", model, "--ratio", "0.25", "--calibration-data", calibration, "--eval-data", evaluation,
                                     "--json", "-o", out])
        try #require(run.status == 0, "\(run.stderr)")
        let report = try #require(try json(run.stdout)["pruning"] as? [String: Any])
        let before = try #require(report["accuracy_before"] as? Double), after = try #require(report["accuracy_after"] as? Double)
        // The bar: at most 2 points lost at ratio 0.25 with calibration reconstruction (goal 1).
        #expect(before - after <= 0.02, "accuracy \(before) → \(after)")
        let paramsBefore = try #require(report["params_before"] as? Int), paramsAfter = try #require(report["params_after"] as? Int)
        #expect(Double(paramsAfter) < 0.7 * Double(paramsBefore))
        #expect((report["reconstructed"] as? [String])?.count == 3)
        // The pruned ONNX runs with the original's output shape.
        let outDir = try Fixtures.temporaryDirectory()
        let inference = try CLIRunner.run(["run", out, "--input", "input=\(evaluation)", "--output-dir", outDir.path])
        try #require(inference.status == 0, "\(inference.stderr)")
        #expect(try References.readNPY(outDir.appendingPathComponent("logits.npy").path).shape == [450, 10])
    }

    @Test func compileWithPruneWritesASmallerProgram() throws {
        let dir = try Fixtures.temporaryDirectory()
        let full = dir.appendingPathComponent("full.oxc").path, pruned = dir.appendingPathComponent("pruned.oxc").path
        #expect(try CLIRunner.run(["compile", model, "-o", full]).status == 0)
        let run = try CLIRunner.run(["compile", model, "--prune", "0.5", "-o", pruned])
        try #require(run.status == 0, "\(run.stderr)")
        #expect(run.stdout.contains("groups pruned"), "\(run.stdout)")
        let sizes = try [full, pruned].map { try FileManager.default.attributesOfItem(atPath: $0)[.size] as? Int ?? 0 }
        #expect(sizes[1] < sizes[0] * 7 / 10)
    }

    @Test func badArgumentsAreClearErrors() throws {
        let out = try Fixtures.temporaryDirectory().appendingPathComponent("x.onnx").path
        let ratio = try CLIRunner.run(["prune", model, "--ratio", "1.5", "-o", out])
        #expect(ratio.status != 0 && ratio.stderr.contains("--ratio"))
        let node = try CLIRunner.run(["prune", model, "--exclude-nodes", "/no/such/Conv", "-o", out])
        #expect(node.status == 1 && node.stderr.contains("/no/such/Conv") && node.stderr.contains("digits_cnn.onnx"))
        let criterion = try CLIRunner.run(["prune", model, "--criterion", "random", "-o", out])
        #expect(criterion.status != 0 && criterion.stderr.contains("l1, l2, bn-scale"))
        #expect(!FileManager.default.fileExists(atPath: out))
    }

    @Test func compressReportsFactoredLayers() throws {
        let out = try Fixtures.temporaryDirectory().appendingPathComponent("c.onnx").path
        let run = try CLIRunner.run(["compress", Fixtures.testdata.appendingPathComponent("exported/bert_tiny.onnx").path,
                                     "--low-rank", "0.9", "--json", "-o", out])
        try #require(run.status == 0, "\(run.stderr)")
        let report = try #require(try json(run.stdout)["compression"] as? [String: Any])
        let low = try #require(report["low_rank"] as? [String: Any])
        #expect(((low["factored"] as? [Any])?.count ?? 0) > 0)
        #expect(FileManager.default.fileExists(atPath: out))
    }
}
