import OnnxcCore
import OnnxcFormat
import OnnxcRuntime

/// Reading and writing `.oxc` files for the subcommands.
enum CompiledFile {
    /// Maps, validates and prepares a compiled model (constants stay in the mapped file).
    static func load(_ path: String) throws(CommandFailure) -> CompiledModel {
        do {
            return try CompiledModel(contentsOf: path)
        } catch {
            switch error {
            // The file error already names the path; don't say it twice.
            case .file(.file(let fileError)): throw CommandFailure(file: nil, fileError)
            case .file(let formatError): throw CommandFailure(file: path, formatError)
            case .program(let runtimeError): throw CommandFailure(file: path, runtimeError)
            }
        }
    }

    /// Writes atomically: a failed write leaves nothing at `path`.
    static func write(_ program: Program, to path: String) throws(CommandFailure) {
        do {
            try OXCWriter.write(program, to: path)
        } catch .file(let fileError) {
            throw CommandFailure(file: nil, fileError)
        } catch {
            throw CommandFailure(file: path, error)
        }
    }
}
