import ArgumentParser
import OnnxcCore
import OnnxcFormat
import OnnxcIR
import OnnxcLowering
import OnnxcRuntime

/// `onnxc info MODEL`: versions, signature, parameters and op histogram.
struct Info: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "info",
        abstract: "Summarize a model: IR version, opsets, producer, inputs and outputs, parameters, op histogram.")

    @Argument(help: "The model: an .onnx file, or a compiled .oxc.")
    var model: String

    @Flag(help: "Print the summary as JSON.")
    var json = false

    func run() throws {
        if Runnable.isCompiled(model) {
            try CompiledInfo.print(model, json: json)
            return
        }
        let loaded = try ModelLoading.load(model, inlineFunctions: false)
        let summary = ModelSummary(loaded)
        let unsupported = UnsupportedOps.list(loaded)
        if json {
            guard case .object(var members) = summary.json else { return }
            members.append(("unsupported_ops", .array(unsupported.map { .string($0.description) })))
            Output.write(JSON.object(members).serialized() + "\n")
        } else {
            var text = summary.text
            if !unsupported.isEmpty {
                text += "unsupported (no onnxc kernel yet)\n" + unsupported.map { "  \($0)\n" }.joined()
            }
            Output.write(text)
        }
    }
}

/// `onnxc info MODEL.oxc`: where a compiled model came from, its signature, ops and memory.
enum CompiledInfo {
    static func print(_ path: String, json: Bool) throws(CommandFailure) {
        let program: Program
        do {
            program = try OXCReader.read(path: path)
        } catch .file(let fileError) {
            throw CommandFailure(file: nil, fileError)  // it names the path already
        } catch {
            throw CommandFailure(file: path, error)
        }
        let m = program.metadata
        let hash = m.sourceSHA256.map { Text.format("%02x", $0) }.joined()
        func signature(_ ids: [TensorID]) -> [String] {
            ids.map { id in
                let t = program.tensors[Int(id)]
                return "\(t.name): \(t.dtype.shortName)\(t.shape.map { "\($0)" } ?? "[?]")"
            }
        }
        var ops: [String: Int] = [:]
        for graph in program.graphs {
            for op in graph.ops { ops[(op.opcode.domain.isEmpty ? "" : op.opcode.domain + "::") + op.opcode.opType, default: 0] += 1 }
        }
        let sortedOps = ops.sorted { $0.value != $1.value ? $0.value > $1.value : $0.key < $1.key }
        var constants = 0, planned = 0, dynamic = 0
        for tensor in program.tensors {
            switch tensor.storage {
            case .constant(let data, _): constants += data.byteCount
            case .arena, .window: planned += 1
            case .dynamic: dynamic += 1
            case .input: break
            }
        }
        let main = program.graphs.first
        if json {
            Output.write(JSON.object([
                ("compiler", .string(m.compiler)), ("source", .string(m.sourceName)), ("source_sha256", .string(hash)),
                ("producer", .string(m.producer)), ("optimization", .string(m.optimization)),
                ("properties", .array(m.properties.map { .object([("key", .string($0.key)), ("value", .string($0.value))]) })),
                ("inputs", .array(signature(main?.inputs ?? []).map { .string($0) })),
                ("outputs", .array(signature(main?.outputs ?? []).map { .string($0) })),
                ("ops", .object(sortedOps.map { ($0.key, .int(Int64($0.value))) })),
                ("arena_bytes", .int(Int64(program.arenaBytes))), ("constant_bytes", .int(Int64(constants))),
                ("planned_tensors", .int(Int64(planned))), ("dynamic_tensors", .int(Int64(dynamic))),
            ]).serialized() + "\n")
            return
        }
        var text = "compiled by   \(m.compiler) (\(m.optimization))\n"
        text += "source        \(m.sourceName)\(m.producer.isEmpty ? "" : " (\(m.producer))")\n"
        text += "source sha256 \(hash.isEmpty ? "-" : hash)\n"
        for property in m.properties { text += "property      \(property.key) = \(property.value)\n" }
        text += "inputs\n" + signature(main?.inputs ?? []).map { "  \($0)\n" }.joined()
        text += "outputs\n" + signature(main?.outputs ?? []).map { "  \($0)\n" }.joined()
        text += "ops           \(program.graphs.reduce(0) { $0 + $1.ops.count }) in \(program.graphs.count) graph(s)\n"
        text += sortedOps.map { "  \($0.key)  \($0.value)\n" }.joined()
        text += "arena         \(program.arenaBytes) bytes for \(planned) planned tensors; \(dynamic) sized at run time\n"
        text += "constants     \(constants) bytes\n"
        Output.write(text)
    }
}
