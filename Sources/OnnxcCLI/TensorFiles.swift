import OnnxcCore
import OnnxcFrontend
import OnnxcRuntime

/// `--input NAME=FILE` for `run`: `.npy`, `.npz` (keys are input names) or a TensorProto `.pb`.
enum InputFiles {
    /// `requireAll: false` (bench, verify) lets inputs be missing: they are generated.
    static func load(_ specs: [String], graph: RuntimeGraph, model: String, requireAll: Bool = true) throws(CommandFailure) -> [String: Value] {
        var values: [String: Value] = [:]
        for spec in specs {
            let parts = spec.split(separator: "=", maxSplits: 1)
            if parts.count == 1, spec.hasSuffix(".npz") {
                for (name, tensor) in try NPZArchive.read(spec) { values[name] = .tensor(tensor) }
                continue
            }
            guard parts.count == 2 else {
                throw CommandFailure(file: nil, what: "--input \(spec) is not NAME=FILE", hint: "write --input NAME=FILE, or --input FILE.npz")
            }
            let name = String(parts[0]), path = String(parts[1])
            if path.hasSuffix(".npz") {
                let arrays = try NPZArchive.read(path)
                guard let tensor = arrays[name] ?? (arrays.count == 1 ? arrays.values.first : nil) else {
                    throw CommandFailure(file: path, what: "no array named \(name) (it has \(arrays.keys.sorted().joined(separator: ", ")))",
                                         hint: "name the arrays after the model's inputs")
                }
                values[name] = .tensor(tensor)
            } else {
                values[name] = .tensor(try readTensor(path))
            }
        }
        try check(values, graph: graph, model: model, requireAll: requireAll)
        return values
    }

    static func readTensor(_ path: String) throws(CommandFailure) -> Tensor {
        if path.hasSuffix(".pb") {
            do {
                return try Tensor(try ONNXImporter.loadTensor(path: path).data)
            } catch let error as FrontendError {
                throw CommandFailure(file: path, error)
            } catch {
                throw CommandFailure(file: path, what: "\(error)", hint: "pass a serialized onnx.TensorProto")
            }
        }
        // Mapped, so NumPy's 64-byte-aligned float data is used in place rather than read and copied twice.
        let storage = try map(path)
        do {
            return try NPY.read(storage)
        } catch {
            throw CommandFailure(file: path, what: error.description, hint: "save inputs with numpy.save")
        }
    }

    /// The file mapped read-only; a missing or unreadable file is an error naming it.
    static func map(_ path: String) throws(CommandFailure) -> ByteStorage {
        do {
            return try MappedFile.map(path: path)
        } catch {
            throw CommandFailure(file: nil, error)
        }
    }

    /// Every declared input given, with the declared dtype and a compatible shape; otherwise one error that
    /// lists what the model expects.
    static func check(_ values: [String: Value], graph: RuntimeGraph, model: String, requireAll: Bool = true) throws(CommandFailure) {
        let required = graph.inputs.filter { graph.initializers[$0.name] == nil }
        let expected = required.map { "\($0.name): \($0.shapeText)" }.joined(separator: ", ")
        for name in values.keys where !graph.inputs.contains(where: { $0.name == name }) {
            throw CommandFailure(file: model, what: "the model has no input named \(name)", hint: "its inputs are \(expected)")
        }
        for input in required {
            guard let tensor = values[input.name]?.tensor else {
                if !requireAll && values[input.name] == nil { continue }
                throw CommandFailure(file: model, what: "input \(input.name) was not given", hint: "pass every input: \(expected)")
            }
            if let dtype = input.dtype, dtype != tensor.dtype {
                throw CommandFailure(file: model, what: "input \(input.name) is \(tensor.dtype.onnxName), the model expects \(input.shapeText)",
                                     hint: "convert it, e.g. a.astype(np.float32)")
            }
            if let shape = input.shape {
                let fits = shape.count == tensor.rank && zip(shape, tensor.shape).allSatisfy { $0 == nil || $0 == $1 }
                if !fits {
                    throw CommandFailure(file: model, what: "input \(input.name) has shape \(tensor.shape), the model expects \(input.shapeText)",
                                         hint: "reshape it to the declared shape")
                }
            }
        }
    }
}

/// Printing or saving `run`'s outputs.
enum OutputFiles {
    /// The file-name form of an output name: every character outside [A-Za-z0-9._-] becomes `_`.
    static func fileName(_ name: String) -> String {
        String(name.map { c in c.isASCII && (c.isLetter || c.isNumber || c == "." || c == "_" || c == "-") ? c : "_" })
    }

    static func emit(_ results: [String: Value], graph: RuntimeGraph, outputDir: String?) throws(CommandFailure) {
        if let outputDir {
            do {
                try Directory.create(outputDir)
            } catch {
                throw CommandFailure(file: outputDir, what: "cannot create the output folder", hint: "check the path and its permissions")
            }
        }
        for output in graph.outputs {
            guard let value = results[output.name] else { continue }
            guard let tensor = value.tensor else {
                Output.write("\(output.name): \(describe(value))\n")
                continue
            }
            if let outputDir {
                let path = outputDir + "/" + fileName(output.name) + ".npy"
                do {
                    let writer = try AtomicFileWriter(path: path)
                    try NPY.write(tensor) { (bytes) throws(FileError) in try writer.write(bytes) }.get()
                    // Outputs are results to read back, not artifacts to keep through a power loss.
                    try writer.commit(durable: false)
                } catch let error as FileError {
                    throw CommandFailure(file: nil, error)
                } catch {
                    throw CommandFailure(file: path, what: "\(error)", hint: "cast the output to a NumPy type")
                }
            } else {
                let shown = tensor.dtype == .string ? (tensor.strings ?? []).prefix(8).map { "\"\($0)\"" }
                    : tensor.doubles().prefix(8).map { tensor.dtype.isFloatingPoint ? "\(Float($0))" : "\(Int64($0))" }
                let more = tensor.count > 8 ? ", …" : ""
                Output.write("\(output.name): \(tensor.dtype.shortName)\(tensor.shape) = [\(shown.joined(separator: ", "))\(more)]\n")
            }
        }
    }

    static func describe(_ value: Value) -> String {
        switch value {
        case .tensor(let t): "\(t.dtype.shortName)\(t.shape)"
        case .sequence(let type, let items): "sequence<\(type.shortName)> of \(items.count)"
        case .none: "optional without a value"
        }
    }
}
