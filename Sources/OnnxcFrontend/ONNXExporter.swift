public import OnnxcCore
public import OnnxcIR

/// How an IR model is written back to ONNX.
public struct ExportOptions: Sendable {
    public enum ExternalData: Sendable {
        /// External when the weights would push the protobuf past 2 GB, or the input model used it.
        case automatic
        case always
        case never
    }

    public var externalData: ExternalData = .automatic
    /// Initializers smaller than this stay inline; same default as `onnx.external_data_helper`.
    public var externalSizeThreshold = 1024
    /// Offsets in the side file are multiples of this, so each tensor can be memory-mapped on its own.
    public var externalAlignment = 4096
    /// Initializer bytes above which `.automatic` moves weights out: protobuf's 2 GB limit less room for the
    /// graph itself (names, attributes and small constants rarely take 200 MB even in the largest models).
    public var automaticExternalThreshold: Int

    public init(externalData: ExternalData = .automatic, automaticExternalThreshold: Int = 1_800_000_000) {
        self.externalData = externalData
        self.automaticExternalThreshold = automaticExternalThreshold
    }
}

/// Writes the IR as ONNX protobuf, optionally with weights in a side file, always atomically.
public enum ONNXExporter {
    /// The protobuf bytes with every tensor inline; fails past protobuf's 2 GB limit.
    public static func serialize(_ model: Model) throws(FrontendError) -> ByteStorage {
        let encoder = ProtobufEncoder { (_) throws(FrontendError) in nil }
        return try encoder.encode(model)
    }

    /// A serialized TensorProto, as ONNX backend tests store inputs and outputs.
    public static func serialize(tensor: Tensor) throws(FrontendError) -> ByteStorage {
        try ProtobufEncoder { (_) throws(FrontendError) in nil }.encode(tensor)
    }

    /// Writes `model` to `path`; external weights go to `<file name>.data` beside it. Nothing appears under
    /// either name unless the whole write succeeds.
    public static func write(_ model: Model, to path: String, options: ExportOptions = ExportOptions()) throws(FrontendError) {
        let useExternal: Bool
        switch options.externalData {
        case .always: useExternal = true
        case .never: useExternal = false
        case .automatic: useExternal = usesExternalData(model.graph) || initializerBytes(model.graph) > options.automaticExternalThreshold
        }
        let sideName = fileName(of: path) + ".data"
        let side: AtomicFileWriter?
        do throws(FileError) {
            side = useExternal ? try AtomicFileWriter(path: ONNXImporter.directoryOf(path) + "/" + sideName) : nil
        } catch {
            throw .file(error)
        }
        let encoder = ProtobufEncoder { (tensor) throws(FrontendError) -> ExternalDataRef? in
            guard let side, case .bytes(let bytes) = tensor.data.payload, bytes.count >= options.externalSizeThreshold else { return nil }
            guard let aligned = CheckedSize.alignUp(side.position, to: options.externalAlignment) else {
                throw .tooLarge(reason: "the external data file would exceed the largest file offset")
            }
            do throws(FileError) {
                try side.writeZeros(aligned - side.position)
                try side.write(bytes)
            } catch {
                throw .file(error)
            }
            return ExternalDataRef(location: sideName, offset: aligned, length: bytes.count)
        }
        let writer: AtomicFileWriter
        do throws(FileError) {
            writer = try AtomicFileWriter(path: path)
        } catch {
            throw .file(error)
        }
        try encoder.encode(model, to: writer)
        do throws(FileError) {
            try side?.commit()
            try writer.commit()
        } catch {
            throw .file(error)
        }
    }

    static func fileName(of path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return path }
        return String(path[path.index(after: slash)...])
    }

    private static func usesExternalData(_ graph: Graph) -> Bool {
        graph.initializers.contains { $0.externalSource != nil }
            || graph.nodes.contains { $0.subgraphs.contains(where: usesExternalData) }
    }

    private static func initializerBytes(_ graph: Graph) -> Int {
        graph.initializers.reduce(0) { $0 &+ $1.data.byteCount }
            &+ graph.nodes.reduce(0) { $0 &+ $1.subgraphs.reduce(0) { $0 &+ initializerBytes($1) } }
    }
}
