import COnnxcAPISmoke
import Foundation
import OnnxcCore
import OnnxcEmitter
import OnnxcFormat
import OnnxcFrontend
import OnnxcIR
import OnnxcRuntime
import OnnxcRuntimeAPI
import OnnxcTestSupport
import Testing

/// The C interface, driven by a C program (Tests/COnnxcAPISmoke/smoke.c).
@Suite struct CAPITests {
    @Test func aCProgramLoadsRunsAndReadsOutputs() throws {
        let model = try InputShapes.pin(try ONNXImporter.load(path: Fixtures.model("tiny_cnn.onnx")), ["input": [1, 3, 16, 16]])
        let (typed, _) = ShapeInference.infer(model)
        let metadata = ProgramMetadata(compiler: "test", sourceSHA256: [], sourceName: "tiny_cnn.onnx", producer: "", optimization: "-O0")
        let (program, _) = try Emitter.emit(typed, metadata: metadata)
        let folder = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: folder) }
        let path = folder.appendingPathComponent("tiny_cnn.oxc").path
        try OXCWriter.write(program, to: path)

        var sum = 0.0
        var message = [CChar](repeating: 0, count: 512)
        let status = onnxc_api_smoke(path, &sum, &message, message.count)
        #expect(status == 0, "\(String(decoding: message.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self))")

        let x = try OnnxcRuntime.Tensor([Float](repeating: 0.5, count: 3 * 16 * 16), shape: [1, 3, 16, 16])
        let compiled = try CompiledModel(program: try OXCReader.read(path: path))
        let output = try #require(try compiled.run(["input": .tensor(x)])[compiled.outputs[0].name]?.tensor)
        let expected = output.doubles().reduce(0, +)
        #expect(abs(sum - expected) <= 1e-4 * max(1, abs(expected)))
    }
}
