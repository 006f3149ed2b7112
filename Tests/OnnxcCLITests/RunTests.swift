import Foundation
import OnnxcCore
import OnnxcFrontend
import OnnxcIR
import OnnxcRuntime
import OnnxcTestSupport
import Testing

typealias RTensor = OnnxcRuntime.Tensor

/// `onnxc run` and `onnxc test` end to end, against the ONNX Runtime references in testdata/reference.
@Suite struct RunTests {
    static let referenceFolders = References.folders

    static func readNPY(_ path: String) throws -> OnnxcRuntime.Tensor { try References.readNPY(path) }

    @Test func referencesArePresent() {
        #expect(Self.referenceFolders.count >= 10)
    }

    /// Every shipped model that ONNX Runtime runs gives ORT's outputs through `onnxc run`, as written and after
    /// the runtime's -O2 pipeline (every pass, onnxc's fused ops included).
    @Test(arguments: referenceFolders, ["-O0", "-O2"])
    func runMatchesONNXRuntime(_ name: String, _ level: String) throws {
        let folder = Fixtures.testdata.appendingPathComponent("reference/\(name)")
        let meta = try References.meta(name)
        let output = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: output) }
        var arguments = ["run", Fixtures.testdata.appendingPathComponent(meta.model).path, level, "--output-dir", output.path]
        for (k, input) in meta.inputs.enumerated() {
            arguments += ["--input", "\(input.name)=\(folder.path)/input_\(k).npy"]
        }
        let result = try CLIRunner.run(arguments)
        #expect(result.status == 0, "\(result.stderr)")
        guard result.status == 0 else { return }
        for (k, entry) in meta.outputs.enumerated() {
            let expected = try Self.readNPY("\(folder.path)/output_\(k).npy")
            let actual = try Self.readNPY(output.appendingPathComponent("\(entry.name).npy").path)
            #expect(TensorComparison.difference(actual, expected, rtol: 1e-4, atol: 1e-5) == nil, "\(name) \(level) output \(entry.name)")
        }
    }

    @Test func printsOutputsWithoutAnOutputFolder() throws {
        let folder = Fixtures.testdata.appendingPathComponent("reference/mlp").path
        let result = try CLIRunner.run(["run", Fixtures.model("mlp.onnx"), "--input", "x=\(folder)/input_0.npy"])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdout.hasPrefix("y: f32[1, 10] = ["))
    }

    @Test func inputProblemsListWhatTheModelExpects() throws {
        let folder = Fixtures.testdata.appendingPathComponent("reference/mlp").path
        let missing = try CLIRunner.run(["run", Fixtures.model("mlp.onnx")])
        #expect(missing.status == 1)
        #expect(missing.stderr.contains("input x was not given — pass every input: x: f32[1,32]"), "\(missing.stderr)")
        let wrongName = try CLIRunner.run(["run", Fixtures.model("mlp.onnx"), "--input", "nope=\(folder)/input_0.npy"])
        #expect(wrongName.stderr.contains("the model has no input named nope"))
        let wrongShape = try CLIRunner.run(["run", Fixtures.model("tiny_cnn.onnx"), "--input", "input=\(folder)/input_0.npy"])
        #expect(wrongShape.status == 1)
        #expect(wrongShape.stderr.contains("has shape [1, 32], the model expects f32[batch,3,16,16]"), "\(wrongShape.stderr)")
        let notNPY = try CLIRunner.run(["run", Fixtures.model("mlp.onnx"), "--input", "x=\(Fixtures.model("mlp.onnx"))"])
        #expect(notNPY.status == 1)
        #expect(notNPY.stderr.contains("not a .npy file"))
    }

    /// A backend-test folder built from the mlp reference: `onnxc test` passes it, then fails it once the
    /// expected output is wrong, and `--expected` turns that failure into a failed run.
    @Test func testCommandComparesBackendFolders() throws {
        let root = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: root) }
        let test = root.appendingPathComponent("test_mlp")
        let data = test.appendingPathComponent("test_data_set_0")
        try FileManager.default.createDirectory(at: data, withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: Fixtures.model("mlp.onnx"), toPath: test.appendingPathComponent("model.onnx").path)
        let reference = Fixtures.testdata.appendingPathComponent("reference/mlp").path
        func writePB(_ tensor: RTensor, _ name: String) throws {
            let values = tensor.withBytes { Array($0) }
            let ir = OnnxcIR.Tensor(name: "", data: try TensorData(dtype: tensor.dtype, dims: tensor.shape.map(Int64.init),
                                                                    payload: .bytes(ByteSlice(copying: values))))
            try Data(try ONNXExporter.serialize(tensor: ir).array).write(to: data.appendingPathComponent(name))
        }
        try writePB(try Self.readNPY("\(reference)/input_0.npy"), "input_0.pb")
        let expected = try Self.readNPY("\(reference)/output_0.npy")
        try writePB(expected, "output_0.pb")

        let pass = try CLIRunner.run(["test", root.path])
        #expect(pass.status == 0)
        #expect(pass.stdout == "PASS test_mlp\n1 passed, 0 failed\n", "\(pass.stdout)\(pass.stderr)")

        let shifted = try RTensor(expected.array(Float.self).map { $0 + 1 }, shape: expected.shape)
        try writePB(shifted, "output_0.pb")
        let fail = try CLIRunner.run(["test", root.path])
        #expect(fail.status == 0)
        #expect(fail.stdout.hasPrefix("FAIL test_mlp: test_data_set_0: output y: 10 of 10 elements differ"), "\(fail.stdout)")

        let list = root.appendingPathComponent("list.txt")
        try "test_mlp\n".write(to: list, atomically: true, encoding: .utf8)
        let regression = try CLIRunner.run(["test", root.path, "--expected", list.path])
        #expect(regression.status == 1)
        #expect(regression.stdout.contains("REGRESSIONS (expected to pass): test_mlp"))

        try "- test_mlp\n".write(to: list, atomically: true, encoding: .utf8)
        let unexplained = try CLIRunner.run(["test", root.path, "--expected", list.path])
        #expect(unexplained.status == 1)
        #expect(unexplained.stderr.contains("an excluded test needs a reason"))
    }
}

/// `compile`, then `run`, `verify` and `bench` on the compiled file; damaged files fail cleanly.
@Suite struct CompileCommandTests {
    @Test func compileRunVerifyAndBench() throws {
        let folder = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: folder) }
        let oxc = folder.appendingPathComponent("tiny.oxc").path
        let reference = Fixtures.testdata.appendingPathComponent("reference/tiny_cnn")
        let compile = try CLIRunner.run(["compile", Fixtures.model("tiny_cnn.onnx"), "--input-shape", "input=2x3x16x16", "-o", oxc, "--json"])
        #expect(compile.status == 0, "\(compile.stderr)")
        let report = try #require(try JSONSerialization.jsonObject(with: Data(compile.stdout.utf8)) as? [String: Any])
        #expect((report["arena_bytes"] as? Int ?? 0) > 0)
        // Both convolutions run channels last (the layout stage), between one Transpose in and the flattened head;
        // the report names the kernel the compiler chose for each (the direct one, or Winograd for the 3×3 on 2 × 8×8
        // tiles).
        let kernels = try #require(report["kernels"] as? [String: Any])
        let convolutions = kernels.filter { $0.key.hasPrefix("ai.onnxc::NhwcConv") }
        #expect(convolutions.values.compactMap { $0 as? Int }.reduce(0, +) == 2, "\(kernels)")
        #expect(convolutions.keys.allSatisfy { ["ai.onnxc::NhwcConv", "ai.onnxc::NhwcConv/winograd"].contains($0) }, "\(kernels)")

        let out = folder.appendingPathComponent("out").path
        let run = try CLIRunner.run(["run", oxc, "--input", "input=\(reference.path)/input_0.npy", "--output-dir", out])
        #expect(run.status == 0, "\(run.stderr)")
        let expected = try RunTests.readNPY("\(reference.path)/output_0.npy")
        let actual = try RunTests.readNPY("\(out)/output.npy")
        #expect(TensorComparison.difference(actual, expected, rtol: 1e-4, atol: 1e-5) == nil)

        let verify = try CLIRunner.run(["verify", Fixtures.model("tiny_cnn.onnx"), oxc, "--input", "input=\(reference.path)/input_0.npy"])
        #expect(verify.status == 0 && verify.stdout.hasPrefix("ok   output:"), "\(verify.stdout)\(verify.stderr)")

        let info = try CLIRunner.run(["info", oxc])
        #expect(info.status == 0 && info.stdout.contains("source sha256 ") && info.stdout.contains("input: f32[2,3,16,16]"), "\(info.stdout)\(info.stderr)")

        let bench = try CLIRunner.run(["bench", oxc, "--runs", "3", "--warmup", "1", "--json"])
        #expect(bench.status == 0, "\(bench.stderr)")
        let last = try #require(bench.stdout.split(separator: "\n").last)
        let stats = try #require(try JSONSerialization.jsonObject(with: Data(last.utf8)) as? [String: Any])
        for key in ["median_ms", "p90_ms", "min_ms", "load_ms", "peak_rss_bytes", "arena_bytes"] { #expect(stats[key] != nil, "bench JSON lacks \(key)") }
    }

    @Test func damagedCompiledFilesFailWithOneClearLine() throws {
        let folder = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: folder) }
        let oxc = folder.appendingPathComponent("tiny.oxc").path
        #expect(try CLIRunner.run(["compile", Fixtures.model("tiny_cnn.onnx"), "-o", oxc]).status == 0)
        var bytes = try Data(contentsOf: URL(fileURLWithPath: oxc))
        for (index, cut) in [bytes.count / 2, 16].enumerated() {
            let damaged = folder.appendingPathComponent("damaged\(index).oxc").path
            try bytes.prefix(cut).write(to: URL(fileURLWithPath: damaged))
            let result = try CLIRunner.run(["run", damaged])
            #expect(result.status == 1 && result.stderr.hasPrefix("error: ") && result.stderr.split(separator: "\n").count == 1, "\(result.stderr)")
        }
        let missing = folder.appendingPathComponent("missing.oxc").path
        let absent = try CLIRunner.run(["run", missing])
        #expect(absent.status == 1 && absent.stderr.hasPrefix("error: \(missing): cannot open")
                && absent.stderr.components(separatedBy: missing).count == 2, "\(absent.stderr)")
        bytes[bytes.count - 100] ^= 0xFF
        let flipped = folder.appendingPathComponent("flipped.oxc").path
        try bytes.write(to: URL(fileURLWithPath: flipped))
        let result = try CLIRunner.run(["bench", flipped, "--runs", "1"])
        #expect(result.status == 1 && result.stderr.hasPrefix("error: "), "\(result.stderr)")
    }

    @Test func compileReportsEveryUnsupportedOpAndWritesNothing() throws {
        let folder = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: folder) }
        let oxc = folder.appendingPathComponent("custom.oxc").path
        let result = try CLIRunner.run(["compile", Fixtures.model("attribute_kinds_parse_only.onnx"), "-O0", "-o", oxc])
        #expect(result.status == 1 && result.stderr.contains("com.example::Custom"), "\(result.stderr)")
        #expect(!FileManager.default.fileExists(atPath: oxc))
    }
}
