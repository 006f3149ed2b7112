import OnnxcCore
import OnnxcFormat
import OnnxcRuntime

/// Reading and writing `.oxc` files for the subcommands.
enum CompiledFile {
    /// Maps, validates and prepares a compiled model (constants stay in the mapped file).
    static func load(_ path: String) throws(CommandFailure) -> CompiledModel {
        let program: Program
        do {
            program = try OXCReader.read(path: path)
        } catch .file(let fileError) {
            // The file error already names the path; don't say it twice.
            throw CommandFailure(file: nil, fileError)
        } catch {
            throw CommandFailure(file: path, error)
        }
        do {
            return try CompiledModel(program: program)
        } catch {
            throw CommandFailure(file: path, error)
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
