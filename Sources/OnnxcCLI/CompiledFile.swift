import OnnxcCore
import OnnxcFormat
import OnnxcRuntime

/// Reading and writing `.oxc` files for the subcommands.
enum CompiledFile {
    static func load(_ path: String) throws(CommandFailure) -> CompiledModel {
        throw CommandFailure(file: path, what: "reading compiled models is not built yet", hint: "run the .onnx model instead")
    }

    static func write(_ program: Program, to path: String) throws(CommandFailure) {
        throw CommandFailure(file: path, what: "writing compiled models is not built yet", hint: "use onnxc optimize for now")
    }
}
