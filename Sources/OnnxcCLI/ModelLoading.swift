import OnnxcCore
import OnnxcFrontend
import OnnxcIR

/// Loads a model for a subcommand, turning import errors into `CommandFailure`s that name the file.
enum ModelLoading {
    static func load(_ path: String, inlineFunctions: Bool) throws(CommandFailure) -> Model {
        do {
            return try ONNXImporter.load(path: path, options: ImportOptions(inlineFunctions: inlineFunctions))
        } catch .file(let fileError) {
            // The file error already names the path; don't say it twice.
            throw CommandFailure(file: nil, fileError)
        } catch {
            throw CommandFailure(file: path, error)
        }
    }
}
