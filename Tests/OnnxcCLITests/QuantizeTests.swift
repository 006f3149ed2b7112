import Foundation
import OnnxcFrontend
import OnnxcRuntime
import OnnxcTestSupport
import Testing

/// `onnxc quantize` and `compile -O int8` end to end on the committed digits CNN (scripts/train_digits.py): the int8
/// model keeps the float model's predictions, and its QDQ ONNX form agrees with the compiled integer kernels.
@Suite struct QuantizeTests {
    let model = Fixtures.model("digits_cnn.onnx")
    let calibration = Fixtures.testdata.appendingPathComponent("quant/digits_calib.npz").path
    let evaluation = Fixtures.testdata.appendingPathComponent("quant/digits_eval.npz").path

    private func predictions(_ file: String, level: [String] = []) throws -> [Int] {
        let out = try Fixtures.temporaryDirectory()
        let result = try CLIRunner.run(["run", file] + level + ["--input", "input=\(evaluation)", "--output-dir", out.path])
        try #require(result.status == 0, "\(result.stderr)")
        let logits = try References.readNPY(out.appendingPathComponent("logits.npy").path)
        let values = logits.array(Float.self), classes = logits.shape[1]
        return (0..<logits.shape[0]).map { row in
            let slice = values[(row * classes)..<((row + 1) * classes)]
            return slice.indices.max { slice[$0] < slice[$1] }.map { $0 - row * classes } ?? 0
        }
    }

    @Test func int8KeepsTheFloatPredictionsAndBothFormsAgree() throws {
        let dir = try Fixtures.temporaryDirectory()
        let oxc = dir.appendingPathComponent("digits_int8.oxc").path, qdq = dir.appendingPathComponent("digits_qdq.onnx").path
        let compile = try CLIRunner.run(["compile", model, "-O", "int8", "--calibration-data", calibration, "-o", oxc])
        try #require(compile.status == 0, "\(compile.stderr)")
        // Three convolutions, the residual Add fused into the one before it (fuse-qconv-add).
        #expect(compile.stdout.contains("ai.onnxc::NhwcQLinearConv 2") && compile.stdout.contains("ai.onnxc::NhwcQLinearConvAdd 1") &&
                compile.stdout.contains("ai.onnxc::QGemm 1"), "\(compile.stdout)")
        let quantize = try CLIRunner.run(["quantize", model, "--calibration-data", calibration, "-o", qdq])
        try #require(quantize.status == 0, "\(quantize.stderr)")
        let float = try predictions(model), int8 = try predictions(oxc), fakeQuantized = try predictions(qdq, level: ["-O0"])
        let same = zip(float, int8).filter { $0 == $1 }.count
        // 450 test images: the int8 model may change at most two predictions (0.44 points).
        #expect(same >= float.count - 2, "int8 agrees with float on \(same) of \(float.count)")
        #expect(zip(int8, fakeQuantized).filter { $0 != $1 }.count <= 1)
        // The int8 file is smaller than the float one (digits_cnn is tiny, so its per-tensor scales weigh in).
        let sizes = try [model, oxc].map { try FileManager.default.attributesOfItem(atPath: $0)[.size] as? Int ?? 0 }
        #expect(sizes[1] < sizes[0] / 2)
    }

    /// The QDQ file's weight encoding: uint8 with zero point 128 by default (exact in ONNX Runtime without VNNI),
    /// int8 on request; both run to the same logits.
    @Test func weightTypeChoosesTheStoredEncoding() throws {
        let dir = try Fixtures.temporaryDirectory()
        var logits: [[Float]] = []
        for type in ["uint8", "int8"] {
            let path = dir.appendingPathComponent("digits_\(type).onnx").path
            let arguments = ["quantize", model, "--calibration-data", calibration, "-o", path] + (type == "int8" ? ["--weight-type", "int8"] : [])
            let quantize = try CLIRunner.run(arguments)
            try #require(quantize.status == 0, "\(quantize.stderr)")
            let graph = try ONNXImporter.load(path: path).graph
            let weightInputs = Set(graph.nodes.filter { ["Conv", "Gemm"].contains($0.opType) }.map { $0.inputs[1] })
            let weights = graph.nodes.filter { $0.opType == "DequantizeLinear" && weightInputs.contains($0.outputs[0]) }
            #expect(weights.count == 4, "\(weights.map { $0.inputs[0] })")
            for dq in weights {
                #expect(graph.initializer(named: dq.inputs[0])?.dtype == (type == "uint8" ? .uint8 : .int8))
                #expect(graph.initializer(named: dq.inputs[2])?.dtype == (type == "uint8" ? .uint8 : .int8))
            }
            let out = dir.appendingPathComponent("out_\(type)")
            let run = try CLIRunner.run(["run", path, "--input", "input=\(evaluation)", "--output-dir", out.path])
            try #require(run.status == 0, "\(run.stderr)")
            logits.append(try References.readNPY(out.appendingPathComponent("logits.npy").path).array(Float.self))
        }
        #expect(logits[0].count == 450 * 10 && logits[0] == logits[1])
        let wrong = try CLIRunner.run(["quantize", model, "--calibration-data", calibration, "--weight-type", "int4", "-o", dir.appendingPathComponent("x.onnx").path])
        #expect(wrong.status != 0 && wrong.stderr.contains("--weight-type int4 is not a type"), "\(wrong.stderr)")
    }

    /// fuse-qconv-add changes no byte: the digits model's logits with the residual Add fused and without.
    @Test func residualFusionGivesTheSameBytes() throws {
        let dir = try Fixtures.temporaryDirectory()
        var logits: [[UInt32]] = []
        for disable in [[], ["--disable-pass", "fuse-qconv-add"]] {
            let oxc = dir.appendingPathComponent("digits\(logits.count).oxc").path, out = dir.appendingPathComponent("out\(logits.count)")
            let compile = try CLIRunner.run(["compile", model, "-O", "int8", "--calibration-data", calibration, "-o", oxc] + disable)
            try #require(compile.status == 0, "\(compile.stderr)")
            #expect(compile.stdout.contains("ai.onnxc::NhwcQLinearConvAdd") == disable.isEmpty, "\(compile.stdout)")
            let run = try CLIRunner.run(["run", oxc, "--input", "input=\(evaluation)", "--output-dir", out.path])
            try #require(run.status == 0, "\(run.stderr)")
            logits.append(try References.readNPY(out.appendingPathComponent("logits.npy").path).array(Float.self).map(\.bitPattern))
        }
        #expect(logits[0].count == 450 * 10 && logits[0] == logits[1])
    }

    @Test func sensitivityReportAccuracyAndFallback() throws {
        let dir = try Fixtures.temporaryDirectory()
        let report = dir.appendingPathComponent("report.json").path, oxc = dir.appendingPathComponent("d.oxc").path
        let run = try CLIRunner.run(["compile", model, "-O", "int8", "--calibration-data", calibration, "--eval-data", evaluation,
                                     "--report", report, "--auto-fallback", "1", "--json", "-o", oxc])
        try #require(run.status == 0, "\(run.stderr)")
        let json = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: report))) as? [String: Any])
        let layers = try #require(json["layers"] as? [[String: Any]])
        // Every quantized layer scored, worst first, the worst one kept in float.
        #expect(layers.count >= 7)
        let introduced = layers.compactMap { $0["introduced_db"] as? Double }
        #expect(introduced == introduced.sorted(by: >))
        #expect((layers.first?["float"] as? Bool) == true && layers.dropFirst().allSatisfy { ($0["float"] as? Bool) == false })
        #expect(layers.allSatisfy { (($0["cosine"] as? Double) ?? 0) > 0.99 })
        let floatAccuracy = try #require(json["float_accuracy"] as? Double), int8Accuracy = try #require(json["int8_accuracy"] as? Double)
        #expect(floatAccuracy > 0.97 && int8Accuracy >= floatAccuracy - 0.005)
        // The JSON compile report carries the deployment summary.
        let summary = try #require(try JSONSerialization.jsonObject(with: Data(run.stdout.utf8)) as? [String: Any])
        let variants = try #require(summary["variants"] as? [[String: Any]])
        #expect(variants.count == 2 && ((variants[1]["size_reduction"] as? Double) ?? 0) > 2)
        // A budget of 0 points keeps layers in float until the int8 accuracy is the float one's.
        let strict = try CLIRunner.run(["quantize", model, "--calibration-data", calibration, "--eval-data", evaluation,
                                        "--max-accuracy-drop", "0", "-o", dir.appendingPathComponent("q.onnx").path])
        #expect(strict.status == 0 && strict.stdout.contains("(+0.00 points)"), "\(strict.stdout)")
        let noEval = try CLIRunner.run(["quantize", model, "--calibration-data", calibration, "--max-accuracy-drop", "1", "-o", dir.appendingPathComponent("r.onnx").path])
        #expect(noEval.status != 0 && noEval.stderr.contains("--eval-data"))
    }

    @Test func dynamicQuantizationNeedsNoCalibration() throws {
        let dir = try Fixtures.temporaryDirectory()
        let oxc = dir.appendingPathComponent("dyn.oxc").path, onnx = dir.appendingPathComponent("dyn.onnx").path
        let compile = try CLIRunner.run(["compile", model, "-O", "int8-dynamic", "-o", oxc])
        try #require(compile.status == 0, "\(compile.stderr)")
        #expect(compile.stdout.contains("DynamicQuantizeLinear 4") && compile.stdout.contains("ai.onnxc::QGemm 1"), "\(compile.stdout)")
        let quantize = try CLIRunner.run(["quantize", model, "--dynamic", "-o", onnx])
        try #require(quantize.status == 0, "\(quantize.stderr)")
        let float = try predictions(model), int8 = try predictions(oxc), qdq = try predictions(onnx, level: ["-O0"])
        #expect(zip(float, int8).filter { $0 != $1 }.count <= 2)
        #expect(zip(int8, qdq).filter { $0 != $1 }.count <= 1)
    }

    /// testdata's recurrent model (bidirectional LSTM with peepholes and lengths, GRU, reverse RNN): int8-dynamic
    /// and calibrated int8 run all three on the integer kernels within 5 % of the float outputs, and the ONNX output
    /// keeps them as standard ops behind int8 weights (a Reshape after the two-direction LSTM's).
    @Test func recurrentOpsQuantizeInBothModes() throws {
        let dir = try Fixtures.temporaryDirectory()
        let source = Fixtures.model("recurrent.onnx")
        let oxc = dir.appendingPathComponent("rec.oxc").path, onnx = dir.appendingPathComponent("rec.onnx").path
        let compile = try CLIRunner.run(["compile", source, "-O", "int8-dynamic", "-o", oxc])
        try #require(compile.status == 0, "\(compile.stderr)")
        #expect(["ai.onnxc::QLSTM 1", "ai.onnxc::QGRU 1", "ai.onnxc::QRNN 1", "6 weights"].allSatisfy(compile.stdout.contains), "\(compile.stdout)")
        let verify = try CLIRunner.run(["verify", source, oxc, "--input-shape", "features=5x2x12", "--rtol", "0.05"])
        #expect(verify.status == 0, "\(verify.stdout)\(verify.stderr)")
        let quantize = try CLIRunner.run(["quantize", source, "--dynamic", "-o", onnx])
        try #require(quantize.status == 0, "\(quantize.stderr)")
        let model = try ONNXImporter.load(path: onnx)
        let ops = model.graph.nodes.map(\.opType)
        #expect(ops.filter { $0 == "DequantizeLinear" }.count == 6 && ops.filter { $0 == "Reshape" }.count == 3, "\(ops)")
        #expect(["LSTM", "GRU", "RNN"].allSatisfy(ops.contains))
        #expect(["lstm.W", "lstm.R", "gru.W", "gru.R", "rnn.W", "rnn.R"].allSatisfy { model.graph.initializer(named: $0) == nil })
        // Calibrated int8 gives the recurrent ops the same int8 form (their grids are per run either way).
        let calibration = Fixtures.testdata.appendingPathComponent("quant/recurrent_calib.npz").path
        let staticOxc = dir.appendingPathComponent("rec_static.oxc").path
        let calibrated = try CLIRunner.run(["compile", source, "-O", "int8", "--calibration-data", calibration, "-o", staticOxc])
        try #require(calibrated.status == 0, "\(calibrated.stderr)")
        #expect(["ai.onnxc::QLSTM 1", "ai.onnxc::QGRU 1", "ai.onnxc::QRNN 1"].allSatisfy(calibrated.stdout.contains), "\(calibrated.stdout)")
        let verifyStatic = try CLIRunner.run(["verify", source, staticOxc, "--input-shape", "features=5x2x12", "--rtol", "0.05"])
        #expect(verifyStatic.status == 0, "\(verifyStatic.stdout)\(verifyStatic.stderr)")
    }

    @Test func fp16HalvesTheWeightsAndKeepsThePredictions() throws {
        let dir = try Fixtures.temporaryDirectory()
        let half = dir.appendingPathComponent("h.oxc").path, full = dir.appendingPathComponent("f.oxc").path
        for (level, path) in [("fp16", half), ("2", full)] {
            let run = try CLIRunner.run(["compile", model, "-O", level, "-o", path])
            try #require(run.status == 0, "\(run.stderr)")
        }
        #expect(try predictions(half) == predictions(full))
        let verify = try CLIRunner.run(["verify", model, half, "--rtol", "1e-2"])
        #expect(verify.status == 0, "\(verify.stdout)\(verify.stderr)")
        let sizes = try [half, full].map { try FileManager.default.attributesOfItem(atPath: $0)[.size] as? Int ?? 0 }
        #expect(Double(sizes[0]) < 0.7 * Double(sizes[1]), "\(sizes)")
    }

    @Test func calibrationErrorsNameTheProblem() throws {
        let dir = try Fixtures.temporaryDirectory()
        let out = dir.appendingPathComponent("x.onnx").path
        let missing = try CLIRunner.run(["quantize", model, "-o", out])
        #expect(missing.status != 0 && missing.stderr.contains("--calibration-data"))
        // An archive without the model's input.
        let wrong = try CLIRunner.run(["quantize", Fixtures.model("mlp.onnx"), "--calibration-data", calibration, "-o", out])
        #expect(wrong.status != 0 && wrong.stderr.contains("no array for model input x"), "\(wrong.stderr)")
        let method = try CLIRunner.run(["quantize", model, "--calibration-data", calibration, "--calibration-method", "kl", "-o", out])
        #expect(method.status != 0 && method.stderr.contains("not a method"))
        let node = try CLIRunner.run(["quantize", model, "--calibration-data", calibration, "--exclude-nodes", "nope", "-o", out])
        #expect(node.status != 0 && node.stderr.contains("names no node: nope"))
        let level = try CLIRunner.run(["compile", model, "-O", "int8", "-o", dir.appendingPathComponent("x.oxc").path])
        #expect(level.status != 0 && level.stderr.contains("--calibration-data"))
        // A damaged archive: cut short, and one member's data altered (its CRC-32 no longer matches).
        let bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: calibration)))
        let cut = dir.appendingPathComponent("cut.npz").path
        try Data(bytes.prefix(bytes.count / 2)).write(to: URL(fileURLWithPath: cut))
        let truncated = try CLIRunner.run(["compile", model, "-O", "int8", "--calibration-data", cut, "-o", dir.appendingPathComponent("x.oxc").path])
        #expect(truncated.status == 1 && truncated.stderr.contains("cut.npz: not a zip archive"), "\(truncated.stderr)")
        var flipped = bytes
        flipped[bytes.count / 2] ^= 0x01  // inside the (stored) input array's data
        let damaged = dir.appendingPathComponent("damaged.npz").path
        try Data(flipped).write(to: URL(fileURLWithPath: damaged))
        let crc = try CLIRunner.run(["quantize", model, "--calibration-data", damaged, "-o", out])
        #expect(crc.status == 1 && crc.stderr.contains("damaged.npz: input.npy: CRC-32 mismatch"), "\(crc.stderr)")
        #expect(!FileManager.default.fileExists(atPath: out))
        #expect(!FileManager.default.fileExists(atPath: dir.appendingPathComponent("x.oxc").path))
    }
}
