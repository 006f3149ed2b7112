public import OnnxcCore
public import OnnxcIR

/// How a model is brought into the IR.
public struct ImportOptions: Sendable {
    /// Replace calls to model-local functions by their bodies (what every later stage expects).
    /// Off for a lossless re-encode, which keeps functions as they are.
    public var inlineFunctions = true
    /// Run the IR verifier on the result.
    public var verify = true

    public init(inlineFunctions: Bool = true, verify: Bool = true) {
        self.inlineFunctions = inlineFunctions
        self.verify = verify
    }
}

/// Reads ONNX protobuf into the IR: map the file, pre-scan its framing, unpack with protobuf-c, convert,
/// resolve external data, sort nodes, inline local functions, verify.
public enum ONNXImporter {
    /// Message nesting we accept. A subgraph level costs three (graph, node, attribute), so this allows
    /// about twenty levels of If/Loop nesting; real models use a handful.
    public static let maximumNesting = 64

    public static func load(path: String, options: ImportOptions = ImportOptions()) throws(FrontendError) -> Model {
        let storage: ByteStorage
        do {
            storage = try MappedFile.map(path: path)
        } catch {
            throw .file(error)
        }
        return try load(bytes: storage, directory: directoryOf(path), options: options)
    }

    /// Loads from bytes in memory; `directory` is where relative external-data locations are looked up.
    public static func load(bytes: ByteStorage, directory: String, options: ImportOptions = ImportOptions()) throws(FrontendError) -> Model {
        guard bytes.count > 0 else { throw .notAModel(reason: "the file is empty") }
        let unpacked = try bytes.withUnsafeBytes { (buffer) throws(FrontendError) in
            try WireScan.check(buffer, maximumDepth: maximumNesting)
            return try UnpackedModel(bytes: buffer)
        }
        let resolver = ExternalDataResolver(directory: directory)
        var decoder = ProtobufDecoder(owner: unpacked) { (reference, tensor, byteCount) throws(FrontendError) in
            try resolver.read(reference, tensor: tensor, byteCount: byteCount)
        }
        decoder.source = bytes
        var model = try decoder.decodeModel()
        if model.opsetImports.isEmpty {
            // IR version 1/2 models predate opset_import; ONNX defines them as default-domain opset 1.
            guard model.irVersion < 3 else { throw .notAModel(reason: "the model imports no operator set (opset_import is empty)") }
            model.opsetImports = [OpsetImport(domain: defaultDomain, version: 1)]
        }
        do {
            model.graph = try TopologicalSort.sorted(model.graph)
            if options.inlineFunctions { model = try FunctionInliner.inline(model) }
            if options.verify { try Verifier.verify(model) }
        } catch {
            throw .invalidGraph(error)
        }
        return model
    }

    /// Reads a serialized TensorProto (the `input_N.pb` / `output_N.pb` files of ONNX backend tests).
    /// External data is resolved relative to the file's folder, under the same rules as for models.
    public static func loadTensor(path: String) throws(FrontendError) -> Tensor {
        let storage: ByteStorage
        do {
            storage = try MappedFile.map(path: path)
        } catch {
            throw .file(error)
        }
        let unpacked = try storage.withUnsafeBytes { (buffer) throws(FrontendError) in try UnpackedTensor(bytes: buffer) }
        let resolver = ExternalDataResolver(directory: directoryOf(path))
        let decoder = ProtobufDecoder(owner: unpacked) { (reference, tensor, byteCount) throws(FrontendError) in
            try resolver.read(reference, tensor: tensor, byteCount: byteCount)
        }
        return try decoder.decodeTensorFile(name: path)
    }

    /// Reads a serialized SequenceProto or OptionalProto (backend-test data for sequence and optional values).
    public static func loadData(path: String, kind: DataValue.Kind) throws(FrontendError) -> DataValue {
        let storage: ByteStorage
        do {
            storage = try MappedFile.map(path: path)
        } catch {
            throw .file(error)
        }
        let unpacked = try storage.withUnsafeBytes { (buffer) throws(FrontendError) in try UnpackedData(bytes: buffer, kind: kind) }
        let resolver = ExternalDataResolver(directory: directoryOf(path))
        let decoder = ProtobufDecoder(owner: unpacked) { (reference, tensor, byteCount) throws(FrontendError) in
            try resolver.read(reference, tensor: tensor, byteCount: byteCount)
        }
        return try decoder.decodeDataFile(name: path)
    }

    static func directoryOf(_ path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return "." }
        let directory = String(path[..<slash])
        return directory.isEmpty ? "/" : directory
    }
}
