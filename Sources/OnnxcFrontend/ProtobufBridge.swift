// The only file that touches protobuf-c: decoding ModelProto into the IR, encoding the IR back, and a
// framing pre-scan that bounds nesting before protobuf-c's recursive unpacker sees the bytes.
// No protobuf-c pointer or type escapes this file.

internal import CProtobufC
internal import ONNXProto
import OnnxcCore
import OnnxcIR

#if canImport(Glibc)
import Glibc
#endif

// MARK: - Framing pre-scan

/// Walks the protobuf wire format guided by the generated descriptors, without recursion, and checks every
/// length-delimited field fits its parent. It rejects truncated or random bytes with a precise reason and
/// bounds message nesting, which protobuf-c's recursive unpacker does not do.
enum WireScan {
    enum Root { case model, tensor, sequence, optional }

    /// The generated descriptor of a root message, taken from an initialized message: Swift imports the C
    /// global as a constant and offers no stable pointer to it directly.
    static func descriptor(of kind: Root) -> UnsafePointer<ProtobufCMessageDescriptor>? {
        switch kind {
        case .model:
            var probe = Onnx__ModelProto()
            onnx__model_proto__init(&probe)
            return probe.base.descriptor
        case .tensor:
            var probe = Onnx__TensorProto()
            onnx__tensor_proto__init(&probe)
            return probe.base.descriptor
        case .sequence:
            var probe = Onnx__SequenceProto()
            onnx__sequence_proto__init(&probe)
            return probe.base.descriptor
        case .optional:
            var probe = Onnx__OptionalProto()
            onnx__optional_proto__init(&probe)
            return probe.base.descriptor
        }
    }

    static func check(_ bytes: UnsafeRawBufferPointer, root kind: Root = .model, maximumDepth: Int) throws(FrontendError) {
        guard let base = bytes.baseAddress?.assumingMemoryBound(to: UInt8.self) else { return }
        let root = descriptor(of: kind)
        var frames: [(end: Int, descriptor: UnsafePointer<ProtobufCMessageDescriptor>?)] = [(bytes.count, root)]
        var position = 0

        /// Reads a varint that must end before `limit` (the end of the enclosing message).
        func varint(limit: Int) throws(FrontendError) -> UInt64 {
            var result: UInt64 = 0
            var shift: UInt64 = 0
            while true {
                guard position < limit else { throw .malformedProtobuf(reason: "truncated varint at byte \(position)") }
                let byte = base[position]
                position += 1
                if shift >= 64 { throw .malformedProtobuf(reason: "varint longer than 10 bytes at byte \(position - 1)") }
                result |= UInt64(byte & 0x7F) << shift
                if byte & 0x80 == 0 { return result }
                shift += 7
            }
        }

        while true {
            guard let frame = frames.last else { return }
            if position == frame.end {
                if frames.count == 1 { return }
                frames.removeLast()
                continue
            }
            let tagOffset = position
            let tag = try varint(limit: frame.end)
            let fieldNumber = tag >> 3
            guard fieldNumber > 0, fieldNumber <= UInt64(UInt32.max) else {
                throw .malformedProtobuf(reason: "invalid field number \(fieldNumber) at byte \(tagOffset)")
            }
            let field = frame.descriptor.flatMap { protobuf_c_message_descriptor_get_field($0, UInt32(fieldNumber)) }
            if let field, !wireTypeFits(Int(tag & 7), field.pointee) {
                let message = frame.descriptor.map { String(cString: $0.pointee.name) } ?? "message"
                let fieldName = String(cString: field.pointee.name)
                let reason = "field \(fieldNumber) (\(message).\(fieldName)) at byte \(tagOffset) has wire type \(tag & 7), which that field cannot have"
                // At the top level this means the file holds some other protobuf message, not a model.
                if frames.count == 1 { throw .notAModel(reason: reason + "; the file holds a different protobuf message") }
                throw .malformedProtobuf(reason: reason)
            }
            switch tag & 7 {
            case 0: _ = try varint(limit: frame.end)
            case 1, 5:
                let width = tag & 7 == 1 ? 8 : 4
                guard frame.end - position >= width else {
                    throw .malformedProtobuf(reason: "field \(fieldNumber) at byte \(tagOffset) runs past the end of its message (truncated file?)")
                }
                position += width
            case 2:
                let length = try varint(limit: frame.end)
                guard length <= UInt64(frame.end - position) else {
                    throw .malformedProtobuf(reason: "field \(fieldNumber) at byte \(tagOffset) claims \(length) bytes but only \(frame.end - position) remain (truncated file?)")
                }
                let end = position + Int(length)
                if let field, field.pointee.type == PROTOBUF_C_TYPE_MESSAGE {
                    guard frames.count < maximumDepth else { throw .nestingTooDeep(limit: maximumDepth) }
                    let child = field.pointee.descriptor?.assumingMemoryBound(to: ProtobufCMessageDescriptor.self)
                    frames.append((end, child))
                } else {
                    position = end
                }
            default:
                throw .malformedProtobuf(reason: "unsupported wire type \(tag & 7) at byte \(tagOffset)")
            }
        }
    }
}

/// Whether wire type `wire` can encode `field`: scalars have one wire type, or 2 when repeated and packed.
private func wireTypeFits(_ wire: Int, _ field: ProtobufCFieldDescriptor) -> Bool {
    let natural: Int
    switch field.type {
    case PROTOBUF_C_TYPE_INT32, PROTOBUF_C_TYPE_SINT32, PROTOBUF_C_TYPE_INT64, PROTOBUF_C_TYPE_SINT64,
         PROTOBUF_C_TYPE_UINT32, PROTOBUF_C_TYPE_UINT64, PROTOBUF_C_TYPE_BOOL, PROTOBUF_C_TYPE_ENUM:
        natural = 0
    case PROTOBUF_C_TYPE_SFIXED64, PROTOBUF_C_TYPE_FIXED64, PROTOBUF_C_TYPE_DOUBLE: natural = 1
    case PROTOBUF_C_TYPE_SFIXED32, PROTOBUF_C_TYPE_FIXED32, PROTOBUF_C_TYPE_FLOAT: natural = 5
    default: natural = 2
    }
    return wire == natural || (wire == 2 && field.label == PROTOBUF_C_LABEL_REPEATED)
}

// MARK: - Weights in place

/// protobuf-c copies every `bytes` field while unpacking, so a model's weights would exist twice: in the
/// mapped file and in protobuf-c's heap. Before unpacking, the importer therefore builds a skeleton of the
/// message in which each large `TensorProto.raw_data` is replaced by a 16-byte token (a per-load random nonce
/// and an index), remembers where the real bytes are in the file, and lets the decoder hand out slices of the
/// mapping instead. Enclosing message lengths are recomputed; everything else is copied verbatim.
struct RawDataSkeleton {
    /// raw_data payloads smaller than this stay in the skeleton: tokens only pay off for real weights.
    static let threshold = 4096
    static let tokenSize = 16

    let bytes: [UInt8]
    let nonce: UInt64
    /// (offset, length) in the original bytes, by token index.
    let payloads: [(offset: Int, count: Int)]

    /// The skeleton of `bytes` (already accepted by `WireScan.check`), or nil when no raw_data is large enough
    /// to be worth it or the framing is not what the scan accepted.
    static func make(_ bytes: UnsafeRawBufferPointer, root: WireScan.Root) -> RawDataSkeleton? {
        guard let base = bytes.baseAddress?.assumingMemoryBound(to: UInt8.self),
              let rootDescriptor = WireScan.descriptor(of: root), let tensor = WireScan.descriptor(of: .tensor) else { return nil }
        var builder = Builder(base: base, tensor: tensor, nonce: UInt64.random(in: 1...UInt64.max))
        guard let size = builder.measure(0, bytes.count, rootDescriptor), !builder.resized.isEmpty else { return nil }
        builder.out.reserveCapacity(size)
        guard builder.emit(0, bytes.count, rootDescriptor), builder.out.count == size else { return nil }
        return RawDataSkeleton(bytes: builder.out, nonce: builder.nonce, payloads: builder.payloads)
    }

    /// The file range a raw_data field of the unpacked skeleton stands for, if it is one of our tokens.
    func payload(for rawData: UnsafeRawBufferPointer) -> (offset: Int, count: Int)? {
        guard rawData.count == Self.tokenSize, UInt64(littleEndian: rawData.loadUnaligned(as: UInt64.self)) == nonce else { return nil }
        let index = UInt64(littleEndian: rawData.loadUnaligned(fromByteOffset: 8, as: UInt64.self))
        return index < UInt64(payloads.count) ? payloads[Int(index)] : nil
    }

    private struct Builder {
        let base: UnsafePointer<UInt8>
        let tensor: UnsafePointer<ProtobufCMessageDescriptor>
        let nonce: UInt64
        /// New lengths of the submessages (by start offset) that contain a replaced raw_data.
        var resized: [Int: Int] = [:]
        var out: [UInt8] = []
        var payloads: [(offset: Int, count: Int)] = []

        /// The raw_data field of TensorProto.
        static let rawDataField: UInt64 = 9

        func varint(_ position: inout Int, _ end: Int) -> UInt64? {
            var result: UInt64 = 0
            var shift: UInt64 = 0
            while position < end, shift < 64 {
                let byte = base[position]
                position += 1
                result |= UInt64(byte & 0x7F) << shift
                if byte & 0x80 == 0 { return result }
                shift += 7
            }
            return nil
        }

        static func varintSize(_ value: Int) -> Int {
            var v = UInt64(value), size = 1
            while v >= 0x80 { v >>= 7; size += 1 }
            return size
        }

        func isLargeRawData(_ descriptor: UnsafePointer<ProtobufCMessageDescriptor>?, _ field: UInt64, _ length: Int) -> Bool {
            descriptor == tensor && field == Self.rawDataField && length >= RawDataSkeleton.threshold
        }

        func child(_ descriptor: UnsafePointer<ProtobufCMessageDescriptor>?, _ field: UInt64) -> UnsafePointer<ProtobufCMessageDescriptor>? {
            guard let descriptor, field <= UInt64(UInt32.max),
                  let f = protobuf_c_message_descriptor_get_field(descriptor, UInt32(field)), f.pointee.type == PROTOBUF_C_TYPE_MESSAGE else { return nil }
            return f.pointee.descriptor?.assumingMemoryBound(to: ProtobufCMessageDescriptor.self)
        }

        /// The skeleton size of the message in [start, end); records submessages whose size changes.
        mutating func measure(_ start: Int, _ end: Int, _ descriptor: UnsafePointer<ProtobufCMessageDescriptor>?) -> Int? {
            var position = start, size = 0
            while position < end {
                let fieldStart = position
                guard let tag = varint(&position, end) else { return nil }
                switch tag & 7 {
                case 0: guard varint(&position, end) != nil else { return nil }
                case 1: position += 8
                case 5: position += 4
                case 2:
                    guard let length = varint(&position, end), length <= UInt64(end - position) else { return nil }
                    let payload = position, count = Int(length)
                    position += count
                    let header = payload - fieldStart - Self.varintSize(count)
                    if isLargeRawData(descriptor, tag >> 3, count) {
                        size += header + 1 + RawDataSkeleton.tokenSize
                        continue
                    }
                    if let inner = child(descriptor, tag >> 3) {
                        guard let newCount = measure(payload, payload + count, inner) else { return nil }
                        if newCount != count { resized[payload] = newCount }
                        size += header + Self.varintSize(newCount) + newCount
                        continue
                    }
                default: return nil
                }
                guard position <= end else { return nil }
                size += position - fieldStart
            }
            return size
        }

        mutating func emit(_ start: Int, _ end: Int, _ descriptor: UnsafePointer<ProtobufCMessageDescriptor>?) -> Bool {
            var position = start
            while position < end {
                let fieldStart = position
                guard let tag = varint(&position, end) else { return false }
                if tag & 7 == 2 {
                    let tagEnd = position
                    guard let length = varint(&position, end) else { return false }
                    let payload = position, count = Int(length)
                    position += count
                    if isLargeRawData(descriptor, tag >> 3, count) {
                        append(fieldStart, tagEnd)
                        out.append(UInt8(RawDataSkeleton.tokenSize))
                        withUnsafeBytes(of: nonce.littleEndian) { out.append(contentsOf: $0) }
                        withUnsafeBytes(of: UInt64(payloads.count).littleEndian) { out.append(contentsOf: $0) }
                        payloads.append((payload, count))
                        continue
                    }
                    if let newCount = resized[payload] {
                        append(fieldStart, tagEnd)
                        var v = UInt64(newCount)
                        while v >= 0x80 { out.append(UInt8(v & 0x7F) | 0x80); v >>= 7 }
                        out.append(UInt8(v))
                        guard emit(payload, payload + count, child(descriptor, tag >> 3)) else { return false }
                        continue
                    }
                } else {
                    switch tag & 7 {
                    case 0: guard varint(&position, end) != nil else { return false }
                    case 1: position += 8
                    case 5: position += 4
                    default: return false
                    }
                }
                append(fieldStart, position)
            }
            return true
        }

        mutating func append(_ from: Int, _ to: Int) {
            out.append(contentsOf: UnsafeBufferPointer(start: base + from, count: to - from))
        }
    }
}

// MARK: - Decoding

/// Owns a message unpacked by protobuf-c. Tensors point into its `raw_data` buffers instead of copying
/// them, so it is freed only when the last such tensor is gone.
final class UnpackedModel {
    fileprivate let message: UnsafeMutablePointer<Onnx__ModelProto>
    /// Set when large raw_data fields were left in the file (see `RawDataSkeleton`).
    let skeleton: RawDataSkeleton?

    init(bytes: UnsafeRawBufferPointer) throws(FrontendError) {
        let skeleton = RawDataSkeleton.make(bytes, root: .model)
        let unpacked: UnsafeMutablePointer<Onnx__ModelProto>? = if let skeleton {
            skeleton.bytes.withUnsafeBufferPointer { onnx__model_proto__unpack(nil, $0.count, $0.baseAddress) }
        } else {
            bytes.baseAddress.flatMap { onnx__model_proto__unpack(nil, bytes.count, $0.assumingMemoryBound(to: UInt8.self)) }
        }
        guard let message = unpacked else { throw .malformedProtobuf(reason: "protobuf-c could not decode the ModelProto message") }
        self.message = message
        self.skeleton = skeleton
    }

    deinit { onnx__model_proto__free_unpacked(message, nil) }
}

/// Owns a TensorProto unpacked by protobuf-c (a backend test's `input_0.pb`).
final class UnpackedTensor {
    fileprivate let message: UnsafeMutablePointer<Onnx__TensorProto>

    init(bytes: UnsafeRawBufferPointer) throws(FrontendError) {
        try WireScan.check(bytes, root: .tensor, maximumDepth: 8)
        guard let base = bytes.baseAddress?.assumingMemoryBound(to: UInt8.self),
              let message = onnx__tensor_proto__unpack(nil, bytes.count, base)
        else { throw .malformedProtobuf(reason: "protobuf-c could not decode the TensorProto message") }
        self.message = message
    }

    deinit { onnx__tensor_proto__free_unpacked(message, nil) }
}

/// Owns a SequenceProto or OptionalProto (backend-test data for sequence and optional values).
final class UnpackedData {
    fileprivate enum Message {
        case sequence(UnsafeMutablePointer<Onnx__SequenceProto>)
        case optional(UnsafeMutablePointer<Onnx__OptionalProto>)
    }

    fileprivate let message: Message

    init(bytes: UnsafeRawBufferPointer, kind: DataValue.Kind) throws(FrontendError) {
        try WireScan.check(bytes, root: kind == .sequence ? .sequence : .optional, maximumDepth: 16)
        guard let base = bytes.baseAddress?.assumingMemoryBound(to: UInt8.self) else {
            throw .malformedProtobuf(reason: "the file is empty")
        }
        switch kind {
        case .sequence:
            guard let m = onnx__sequence_proto__unpack(nil, bytes.count, base) else {
                throw .malformedProtobuf(reason: "protobuf-c could not decode the SequenceProto message")
            }
            message = .sequence(m)
        case .optional:
            guard let m = onnx__optional_proto__unpack(nil, bytes.count, base) else {
                throw .malformedProtobuf(reason: "protobuf-c could not decode the OptionalProto message")
            }
            message = .optional(m)
        }
    }

    deinit {
        switch message {
        case .sequence(let m): onnx__sequence_proto__free_unpacked(m, nil)
        case .optional(let m): onnx__optional_proto__free_unpacked(m, nil)
        }
    }
}

/// Reads external tensor bytes; implemented by the importer so that path policy lives outside this file.
typealias ExternalDataReader = (_ reference: ExternalDataRef, _ tensor: String, _ byteCount: Int) throws(FrontendError) -> ByteSlice

/// Converts an unpacked ModelProto into the IR. Every count, enum and size is checked; nothing traps.
struct ProtobufDecoder {
    /// Keeps the unpacked message alive for tensors that point into it.
    let owner: AnyObject
    let readExternal: ExternalDataReader
    /// The file's bytes, when `owner` is an `UnpackedModel` whose large raw_data stayed there.
    var source: ByteStorage? = nil

    /// The tensor of an `UnpackedTensor` owner.
    func decodeTensorFile(name: String) throws(FrontendError) -> Tensor {
        guard let unpacked = owner as? UnpackedTensor else { throw .notAModel(reason: "not a TensorProto") }
        return try decodeTensor(unpacked.message, location: name)
    }

    /// The value of an `UnpackedData` owner.
    func decodeDataFile(name: String) throws(FrontendError) -> DataValue {
        guard let unpacked = owner as? UnpackedData else { throw .notAModel(reason: "not a SequenceProto or OptionalProto") }
        switch unpacked.message {
        case .sequence(let m): return try decodeSequence(m, location: name)
        case .optional(let m): return try decodeOptional(m, location: name)
        }
    }

    private func decodeSequence(_ pointer: UnsafeMutablePointer<Onnx__SequenceProto>, location: String) throws(FrontendError) -> DataValue {
        let s = pointer.pointee
        let elemType = s.has_elem_type != 0 ? s.elem_type : 0
        guard elemType == 1 || elemType == 0 else {
            throw .invalidType(location: location, reason: "sequences of element kind \(elemType) (not tensors) are not supported")
        }
        var tensors: [Tensor] = []
        for t in messages(s.n_tensor_values, s.tensor_values) { tensors.append(try decodeTensor(t, location: location)) }
        return .sequence(tensors)
    }

    private func decodeOptional(_ pointer: UnsafeMutablePointer<Onnx__OptionalProto>, location: String) throws(FrontendError) -> DataValue {
        let o = pointer.pointee
        if let t = o.tensor_value { return .optional(.tensor(try decodeTensor(t, location: location))) }
        if let s = o.sequence_value { return .optional(try decodeSequence(s, location: location)) }
        if o.optional_value != nil || o.sparse_tensor_value != nil || o.map_value != nil {
            throw .invalidType(location: location, reason: "optional values other than tensors and sequences are not supported")
        }
        return .optional(nil)
    }

    /// The model of an `UnpackedModel` owner.
    func decodeModel() throws(FrontendError) -> Model {
        guard let unpacked = owner as? UnpackedModel else { throw .notAModel(reason: "not a ModelProto") }
        let m = unpacked.message.pointee
        guard let graphPointer = m.graph else { throw .notAModel(reason: "the ModelProto has no graph") }
        guard m.has_ir_version != 0, m.ir_version > 0 else { throw .notAModel(reason: "the ModelProto has no ir_version") }
        var opsets: [OpsetImport] = []
        for entry in messages(m.n_opset_import, m.opset_import) {
            opsets.append(OpsetImport(domain: canonicalDomain(string(entry.pointee.domain)),
                                      version: entry.pointee.has_version != 0 ? entry.pointee.version : 0))
        }
        var functions: [Function] = []
        for f in messages(m.n_functions, m.functions) { functions.append(try decodeFunction(f)) }
        var training: [TrainingInfo] = []
        for t in messages(m.n_training_info, m.training_info) {
            let info = t.pointee
            training.append(TrainingInfo(
                initialization: try info.initialization.map { (g) throws(FrontendError) in try decodeGraph(g, path: "training_info.initialization") },
                algorithm: try info.algorithm.map { (g) throws(FrontendError) in try decodeGraph(g, path: "training_info.algorithm") },
                initializationBinding: pairs(info.n_initialization_binding, info.initialization_binding),
                updateBinding: pairs(info.n_update_binding, info.update_binding)))
        }
        let graph = try decodeGraph(graphPointer, path: "main")
        return Model(
            irVersion: m.ir_version, opsetImports: opsets, producerName: string(m.producer_name),
            producerVersion: string(m.producer_version), domain: string(m.domain),
            modelVersion: m.has_model_version != 0 ? m.model_version : 0, docString: string(m.doc_string),
            graph: graph, metadataProps: pairs(m.n_metadata_props, m.metadata_props),
            trainingInfo: training, functions: functions)
    }

    private func decodeGraph(_ pointer: UnsafeMutablePointer<Onnx__GraphProto>, path: String) throws(FrontendError) -> Graph {
        let g = pointer.pointee
        var graph = Graph(name: string(g.name), docString: string(g.doc_string))
        let where_ = g.name == nil ? path : "graph \(string(g.name))"
        for v in messages(g.n_input, g.input) { graph.inputs.append(try decodeValueInfo(v, location: where_)) }
        for v in messages(g.n_output, g.output) { graph.outputs.append(try decodeValueInfo(v, location: where_)) }
        for v in messages(g.n_value_info, g.value_info) { graph.valueInfo.append(try decodeValueInfo(v, location: where_)) }
        for t in messages(g.n_initializer, g.initializer) {
            graph.initializers.append(try decodeTensor(t, location: "\(where_), initializer"))
        }
        for s in messages(g.n_sparse_initializer, g.sparse_initializer) {
            graph.sparseInitializers.append(try decodeSparse(s, location: "\(where_), sparse initializer"))
        }
        graph.nodes.reserveCapacity(g.n_node)
        for n in messages(g.n_node, g.node) { graph.nodes.append(try decodeNode(n, graphPath: path)) }
        for a in messages(g.n_quantization_annotation, g.quantization_annotation) {
            graph.quantizationAnnotations.append(TensorAnnotation(
                tensorName: string(a.pointee.tensor_name),
                quantParameterTensorNames: pairs(a.pointee.n_quant_parameter_tensor_names, a.pointee.quant_parameter_tensor_names)))
        }
        graph.metadataProps = pairs(g.n_metadata_props, g.metadata_props)
        return graph
    }

    private func decodeNode(_ pointer: UnsafeMutablePointer<Onnx__NodeProto>, graphPath: String) throws(FrontendError) -> Node {
        let n = pointer.pointee
        var node = Node(name: string(n.name), opType: string(n.op_type), domain: canonicalDomain(string(n.domain)),
                        overload: string(n.overload), inputs: strings(n.n_input, n.input),
                        outputs: strings(n.n_output, n.output), docString: string(n.doc_string),
                        metadataProps: pairs(n.n_metadata_props, n.metadata_props))
        let location = "graph \(graphPath), node \(node.displayName), op \(node.qualifiedOpType)"
        for a in messages(n.n_attribute, n.attribute) {
            node.attributes.append(try decodeAttribute(a, location: location, graphPath: "\(graphPath)/\(node.displayName)"))
        }
        return node
    }

    private func decodeAttribute(_ pointer: UnsafeMutablePointer<Onnx__AttributeProto>, location: String, graphPath: String) throws(FrontendError) -> Attribute {
        let a = pointer.pointee
        let name = string(a.name)
        let here = "\(location), attribute \(name)"
        guard !name.isEmpty else { throw .invalidAttribute(location: location, reason: "an attribute has no name") }
        var kind = a.has_type != 0 ? Int(a.type.rawValue) : 0
        if kind == 0 { kind = inferAttributeKind(a) }
        let reference = a.ref_attr_name.map { String(cString: $0) }
        if let reference {
            // A reference in a function body has a type but no value: keep an empty value of that kind.
            guard let placeholder = Self.placeholder(kind: kind) else {
                throw .invalidAttribute(location: here, reason: "reference to '\(reference)' has unknown attribute type \(kind)")
            }
            return Attribute(name, placeholder, docString: string(a.doc_string), referencedAttribute: reference)
        }
        let value: AttributeValue
        switch kind {
        case 1: value = .float(a.f)
        case 2: value = .int(a.i)
        case 3: value = .string(bytes(a.s))
        case 4:
            if let t = a.t { value = .tensor(try decodeTensor(t, location: here)) }
            else { throw .invalidAttribute(location: here, reason: "TENSOR attribute without a tensor") }
        case 5:
            if let g = a.g { value = .graph(try decodeGraph(g, path: "\(graphPath).\(name)")) }
            else { throw .invalidAttribute(location: here, reason: "GRAPH attribute without a graph") }
        case 11:
            if let s = a.sparse_tensor { value = .sparseTensor(try decodeSparse(s, location: here)) }
            else { throw .invalidAttribute(location: here, reason: "SPARSE_TENSOR attribute without a value") }
        case 13:
            if let tp = a.tp { value = .typeProto(try decodeType(tp, location: here)) }
            else { throw .invalidAttribute(location: here, reason: "TYPE_PROTO attribute without a type") }
        case 6: value = .floats(Array(buffer(a.n_floats, a.floats)))
        case 7: value = .ints(Array(buffer(a.n_ints, a.ints)))
        case 8: value = .strings(buffer(a.n_strings, a.strings).map(bytes))
        case 9:
            var list: [Tensor] = []
            for t in messages(a.n_tensors, a.tensors) { list.append(try decodeTensor(t, location: here)) }
            value = .tensors(list)
        case 10:
            var list: [Graph] = []
            for (i, g) in messages(a.n_graphs, a.graphs).enumerated() { list.append(try decodeGraph(g, path: "\(graphPath).\(name)[\(i)]")) }
            value = .graphs(list)
        case 12:
            var list: [SparseTensor] = []
            for s in messages(a.n_sparse_tensors, a.sparse_tensors) { list.append(try decodeSparse(s, location: here)) }
            value = .sparseTensors(list)
        case 14:
            var list: [ValueType] = []
            for t in messages(a.n_type_protos, a.type_protos) { list.append(try decodeType(t, location: here)) }
            value = .typeProtos(list)
        case 0:
            throw .invalidAttribute(location: here, reason: "the attribute has no type and no value")
        default:
            throw .invalidAttribute(location: here, reason: "unknown attribute type \(kind)")
        }
        return Attribute(name, value, docString: string(a.doc_string))
    }

    /// An empty value of an attribute kind, standing in for a function-body reference's missing value.
    private static func placeholder(kind: Int) -> AttributeValue? {
        let emptyTensor = (try? TensorData(dtype: .float, dims: [0], payload: .bytes(.empty))).map { Tensor(name: "", data: $0) }
        switch kind {
        case 1: return .float(0)
        case 2: return .int(0)
        case 3: return .string([])
        case 4: return emptyTensor.map { .tensor($0) }
        case 5: return .graph(Graph())
        case 11: return emptyTensor.map { .sparseTensor(SparseTensor(values: $0, indices: $0, dims: [])) }
        case 13: return .typeProto(ValueType(.unspecified))
        case 6: return .floats([])
        case 7: return .ints([])
        case 8: return .strings([])
        case 9: return .tensors([])
        case 10: return .graphs([])
        case 12: return .sparseTensors([])
        case 14: return .typeProtos([])
        default: return nil
        }
    }

    /// Exporters before IR version 2 left `type` unset; the populated field tells the kind.
    private func inferAttributeKind(_ a: Onnx__AttributeProto) -> Int {
        if a.has_f != 0 { return 1 }
        if a.has_i != 0 { return 2 }
        if a.has_s != 0 { return 3 }
        if a.t != nil { return 4 }
        if a.g != nil { return 5 }
        if a.sparse_tensor != nil { return 11 }
        if a.tp != nil { return 13 }
        if a.n_floats > 0 { return 6 }
        if a.n_ints > 0 { return 7 }
        if a.n_strings > 0 { return 8 }
        if a.n_tensors > 0 { return 9 }
        if a.n_graphs > 0 { return 10 }
        if a.n_sparse_tensors > 0 { return 12 }
        if a.n_type_protos > 0 { return 14 }
        return 0
    }

    private func decodeValueInfo(_ pointer: UnsafeMutablePointer<Onnx__ValueInfoProto>, location: String) throws(FrontendError) -> ValueInfo {
        let v = pointer.pointee
        let name = string(v.name)
        let type = try v.type.map { (t) throws(FrontendError) in try decodeType(t, location: "\(location), value \(name)") }
        return ValueInfo(name: name, type: type, docString: string(v.doc_string), metadataProps: pairs(v.n_metadata_props, v.metadata_props))
    }

    private func decodeType(_ pointer: UnsafeMutablePointer<Onnx__TypeProto>, location: String) throws(FrontendError) -> ValueType {
        let t = pointer.pointee
        let kind: ValueType.Kind
        switch t.value_case {
        case ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE:
            guard let tensor = t.tensor_type else { kind = .unspecified; break }
            kind = .tensor(try decodeTensorType(elemType: tensor.pointee.has_elem_type != 0 ? tensor.pointee.elem_type : 0,
                                                shape: tensor.pointee.shape, location: location))
        case ONNX__TYPE_PROTO__VALUE_SPARSE_TENSOR_TYPE:
            guard let tensor = t.sparse_tensor_type else { kind = .unspecified; break }
            kind = .sparseTensor(try decodeTensorType(elemType: tensor.pointee.has_elem_type != 0 ? tensor.pointee.elem_type : 0,
                                                      shape: tensor.pointee.shape, location: location))
        case ONNX__TYPE_PROTO__VALUE_SEQUENCE_TYPE:
            kind = .sequence(try t.sequence_type?.pointee.elem_type.map { (e) throws(FrontendError) in try decodeType(e, location: location) })
        case ONNX__TYPE_PROTO__VALUE_OPTIONAL_TYPE:
            kind = .optional(try t.optional_type?.pointee.elem_type.map { (e) throws(FrontendError) in try decodeType(e, location: location) })
        case ONNX__TYPE_PROTO__VALUE_MAP_TYPE:
            guard let map = t.map_type else { kind = .unspecified; break }
            let key = try dtype(map.pointee.has_key_type != 0 ? map.pointee.key_type : 0, location: location)
            kind = .map(key: key, value: try map.pointee.value_type.map { (e) throws(FrontendError) in try decodeType(e, location: location) })
        default:
            kind = .unspecified
        }
        return ValueType(kind, denotation: string(t.denotation))
    }

    private func decodeTensorType(elemType: Int32, shape: UnsafeMutablePointer<Onnx__TensorShapeProto>?, location: String) throws(FrontendError) -> TensorType {
        let element = try dtype(elemType, location: location)
        guard let shape else { return TensorType(element, nil) }
        var dims: [Dim] = []
        var denotations: [String] = []
        var anyDenotation = false
        for d in messages(shape.pointee.n_dim, shape.pointee.dim) {
            let dim = d.pointee
            switch dim.value_case {
            case ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE:
                // Some exporters write -1 for "unknown"; ONNX has no negative sizes, so that is what it means.
                dims.append(dim.dim_value >= 0 ? .fixed(dim.dim_value) : .unknown)
            case ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM:
                let name = string(dim.dim_param)
                dims.append(name.isEmpty ? .unknown : .symbolic(name))
            default:
                dims.append(.unknown)
            }
            let denotation = string(dim.denotation)
            anyDenotation = anyDenotation || !denotation.isEmpty
            denotations.append(denotation)
        }
        return TensorType(element, Shape(dims), dimDenotations: anyDenotation ? denotations : [])
    }

    private func decodeSparse(_ pointer: UnsafeMutablePointer<Onnx__SparseTensorProto>, location: String) throws(FrontendError) -> SparseTensor {
        let s = pointer.pointee
        guard let values = s.values, let indices = s.indices else {
            throw .invalidTensor(tensor: "", location: location, reason: "a sparse tensor needs both values and indices")
        }
        let valueTensor = try decodeTensor(values, location: location)
        let indexTensor = try decodeTensor(indices, location: location)
        let dims = Array(buffer(s.n_dims, s.dims))
        guard dims.allSatisfy({ $0 >= 0 }), CheckedSize.elementCount(dims) != nil else {
            throw .invalidTensor(tensor: valueTensor.name, location: location, reason: "sparse dims \(dims) are negative or overflow")
        }
        return SparseTensor(values: valueTensor, indices: indexTensor, dims: dims)
    }

    private func decodeTensor(_ pointer: UnsafeMutablePointer<Onnx__TensorProto>, location: String) throws(FrontendError) -> Tensor {
        let t = pointer.pointee
        let name = string(t.name)
        let dataType = try dtype(t.has_data_type != 0 ? t.data_type : 0, location: "\(location), tensor \(name)")
        let dims = Array(buffer(t.n_dims, t.dims))
        func invalid(_ reason: String) -> FrontendError { .invalidTensor(tensor: name, location: location, reason: reason) }
        guard dataType != .undefined else { throw invalid("data_type is UNDEFINED") }
        if let negative = dims.first(where: { $0 < 0 }) { throw invalid("negative dimension \(negative) in \(dims)") }
        guard let count = CheckedSize.elementCount(dims), let byteCount = dataType == .string ? 0 : dataType.byteCount(elements: count) else {
            throw invalid("dims \(dims) describe more data than fits in memory")
        }

        var external: ExternalDataRef?
        let payload: TensorPayload
        if t.has_data_location != 0 && t.data_location == ONNX__TENSOR_PROTO__DATA_LOCATION__EXTERNAL {
            guard dataType != .string else { throw invalid("string tensors cannot be stored externally") }
            let reference = try externalReference(t, name: name, location: location)
            external = reference
            payload = .bytes(try readExternal(reference, name, byteCount))
        } else if dataType == .string {
            payload = .strings(buffer(t.n_string_data, t.string_data).map(bytes))
        } else if t.has_raw_data != 0 {
            let raw = UnsafeRawBufferPointer(start: t.raw_data.data.map { UnsafeRawPointer($0) }, count: t.raw_data.len)
            if let source, let skeleton = (owner as? UnpackedModel)?.skeleton, let range = skeleton.payload(for: raw) {
                guard let slice = ByteSlice(source, offset: range.offset, count: range.count) else { throw invalid("raw_data lies outside the file") }
                payload = .bytes(slice)
            } else {
                payload = .bytes(ByteSlice(ByteStorage(base: raw.baseAddress, count: raw.count, owner: owner)))
            }
        } else {
            payload = .bytes(try typedPayload(t, dataType: dataType, elements: count, invalid: invalid))
        }
        let data: TensorData
        do {
            data = try TensorData(dtype: dataType, dims: dims, payload: payload)
        } catch {
            throw invalid(error.description)
        }
        var segment: ClosedRange<Int64>?
        if let s = t.segment {
            let begin = s.pointee.has_begin != 0 ? s.pointee.begin : 0
            let end = s.pointee.has_end != 0 ? s.pointee.end : 0
            guard begin <= end else { throw invalid("segment begin \(begin) is after end \(end)") }
            segment = begin...end
        }
        return Tensor(name: name, data: data, docString: string(t.doc_string),
                      metadataProps: pairs(t.n_metadata_props, t.metadata_props), externalSource: external, segment: segment)
    }

    private func externalReference(_ t: Onnx__TensorProto, name: String, location: String) throws(FrontendError) -> ExternalDataRef {
        var file: String?
        var offset = 0
        var length: Int?
        var extra: [StringPair] = []
        for entry in pairs(t.n_external_data, t.external_data) {
            switch entry.key {
            case "location": file = entry.value
            case "offset":
                guard let value = Int(entry.value), value >= 0 else {
                    throw .externalData(tensor: name, file: file ?? "?", reason: "offset '\(entry.value)' is not a non-negative integer")
                }
                offset = value
            case "length":
                guard let value = Int(entry.value), value >= 0 else {
                    throw .externalData(tensor: name, file: file ?? "?", reason: "length '\(entry.value)' is not a non-negative integer")
                }
                length = value
            default: extra.append(entry)
            }
        }
        guard let file, !file.isEmpty else {
            throw .invalidTensor(tensor: name, location: location, reason: "data_location is EXTERNAL but external_data has no location")
        }
        return ExternalDataRef(location: file, offset: offset, length: length ?? -1, extraKeys: extra)
    }

    /// Packs the typed repeated fields (`float_data`, `int32_data`, …) into raw little-endian bytes.
    private func typedPayload(_ t: Onnx__TensorProto, dataType: DType, elements: Int,
                              invalid: (String) -> FrontendError) throws(FrontendError) -> ByteSlice {
        func pack<S, T: FixedWidthInteger>(_ source: UnsafeBufferPointer<S>, as: T.Type, _ convert: (S) -> T) -> ByteSlice {
            ByteSlice(ByteStorage(count: source.count * MemoryLayout<T>.size) { out in
                for (i, value) in source.enumerated() {
                    out.storeBytes(of: convert(value).littleEndian, toByteOffset: i * MemoryLayout<T>.size, as: T.self)
                }
            })
        }
        let int32s = buffer(t.n_int32_data, t.int32_data)
        switch dataType {
        case .float, .complex64: return pack(buffer(t.n_float_data, t.float_data), as: UInt32.self) { $0.bitPattern }
        case .double, .complex128: return pack(buffer(t.n_double_data, t.double_data), as: UInt64.self) { $0.bitPattern }
        case .int64: return pack(buffer(t.n_int64_data, t.int64_data), as: Int64.self) { $0 }
        case .uint64: return pack(buffer(t.n_uint64_data, t.uint64_data), as: UInt64.self) { $0 }
        case .uint32: return pack(buffer(t.n_uint64_data, t.uint64_data), as: UInt32.self) { UInt32(truncatingIfNeeded: $0) }
        case .int32: return pack(int32s, as: Int32.self) { $0 }
        case .int16, .uint16, .float16, .bfloat16: return pack(int32s, as: UInt16.self) { UInt16(truncatingIfNeeded: $0) }
        case .int8, .uint8, .bool, .float8e4m3fn, .float8e4m3fnuz, .float8e5m2, .float8e5m2fnuz:
            return pack(int32s, as: UInt8.self) { UInt8(truncatingIfNeeded: $0) }
        case .int4, .uint4:
            // Each int32 holds one byte of two packed nibbles, low nibble first.
            return pack(int32s, as: UInt8.self) { UInt8(truncatingIfNeeded: $0) }
        case .string, .undefined:
            throw invalid("no numeric payload for \(dataType.onnxName)")
        }
    }

    private func decodeFunction(_ pointer: UnsafeMutablePointer<Onnx__FunctionProto>) throws(FrontendError) -> Function {
        let f = pointer.pointee
        let name = string(f.name)
        var defaults: [Attribute] = []
        for a in messages(f.n_attribute_proto, f.attribute_proto) {
            defaults.append(try decodeAttribute(a, location: "function \(name)", graphPath: "function \(name)"))
        }
        var nodes: [Node] = []
        for n in messages(f.n_node, f.node) { nodes.append(try decodeNode(n, graphPath: "function \(name)")) }
        var valueInfo: [ValueInfo] = []
        for v in messages(f.n_value_info, f.value_info) { valueInfo.append(try decodeValueInfo(v, location: "function \(name)")) }
        let opsets = messages(f.n_opset_import, f.opset_import).map {
            OpsetImport(domain: canonicalDomain(string($0.pointee.domain)), version: $0.pointee.has_version != 0 ? $0.pointee.version : 0)
        }
        return Function(name: name, domain: canonicalDomain(string(f.domain)), overload: string(f.overload),
                        inputs: strings(f.n_input, f.input), outputs: strings(f.n_output, f.output),
                        attributeNames: strings(f.n_attribute, f.attribute), attributeDefaults: defaults, nodes: nodes,
                        opsetImports: opsets, valueInfo: valueInfo, docString: string(f.doc_string),
                        metadataProps: pairs(f.n_metadata_props, f.metadata_props))
    }

    private func dtype(_ code: Int32, location: String) throws(FrontendError) -> DType {
        guard let type = DType(rawValue: code) else { throw .unsupportedDataType(code: code, location: location) }
        return type
    }
}

// MARK: - Reading helpers

private func string(_ pointer: UnsafeMutablePointer<CChar>?) -> String {
    guard let pointer else { return "" }
    return String(cString: pointer)
}

private func strings(_ count: Int, _ pointer: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> [String] {
    buffer(count, pointer).map(string)
}

private func buffer<T>(_ count: Int, _ pointer: UnsafeMutablePointer<T>?) -> UnsafeBufferPointer<T> {
    guard let pointer, count > 0 else { return UnsafeBufferPointer(start: nil, count: 0) }
    return UnsafeBufferPointer(start: pointer, count: count)
}

private func messages<T>(_ count: Int, _ pointer: UnsafeMutablePointer<UnsafeMutablePointer<T>?>?) -> [UnsafeMutablePointer<T>] {
    buffer(count, pointer).compactMap { $0 }
}

private func bytes(_ data: ProtobufCBinaryData) -> [UInt8] {
    guard let base = data.data, data.len > 0 else { return [] }
    return Array(UnsafeBufferPointer(start: base, count: data.len))
}

private func pairs(_ count: Int, _ pointer: UnsafeMutablePointer<UnsafeMutablePointer<Onnx__StringStringEntryProto>?>?) -> [StringPair] {
    messages(count, pointer).map { StringPair(string($0.pointee.key), string($0.pointee.value)) }
}

// MARK: - Encoding

/// Decides, per initializer, whether its bytes go to a side file; returns where they were written.
typealias ExternalDataWriter = (_ tensor: Tensor) throws(FrontendError) -> ExternalDataRef?

/// Collects protobuf-c's appends into 1 MiB writes; payloads of 64 KiB or more are written without staging.
/// The first failure is kept and later appends are dropped, since the C callback cannot throw.
private final class PackSink {
    static let staging = 1 << 20
    static let direct = 1 << 16

    let writer: AtomicFileWriter
    var pending: [UInt8] = []
    var failure: FileError?

    init(writer: AtomicFileWriter) {
        self.writer = writer
        pending.reserveCapacity(Self.staging)
    }

    func append(_ bytes: UnsafeRawBufferPointer) {
        guard failure == nil else { return }
        do throws(FileError) {
            if bytes.count >= Self.direct {
                try flush()
                try writer.write(bytes)
            } else {
                pending.append(contentsOf: bytes)
                if pending.count >= Self.staging { try flush() }
            }
        } catch {
            failure = error
        }
    }

    func flush() throws(FileError) {
        guard !pending.isEmpty else { return }
        let failed: FileError? = pending.withUnsafeBytes { bytes in
            do throws(FileError) {
                try writer.write(bytes)
                return nil
            } catch {
                return error
            }
        }
        if let failed { throw failed }
        pending.removeAll(keepingCapacity: true)
    }

    func finish() throws(FileError) {
        if let failure { throw failure }
        try flush()
    }
}

/// Builds protobuf-c structs from the IR in a private arena and packs them. Tensor payloads are referenced,
/// not copied, while packing.
final class ProtobufEncoder {
    private var allocations: [UnsafeMutableRawPointer] = []
    private let externalize: ExternalDataWriter

    init(externalize: @escaping ExternalDataWriter) {
        self.externalize = externalize
    }

    deinit {
        for allocation in allocations { allocation.deallocate() }
    }

    /// The packed ModelProto bytes.
    func encode(_ model: Model) throws(FrontendError) -> ByteStorage {
        let m = try encodeModel(model)
        let size = onnx__model_proto__get_packed_size(m)
        guard size < Int(Int32.max) else {
            throw .tooLarge(reason: "the model's protobuf would be \(size) bytes, over protobuf's 2 GB limit")
        }
        return ByteStorage(count: size) { out in
            guard let base = out.baseAddress?.assumingMemoryBound(to: UInt8.self) else { return }
            _ = onnx__model_proto__pack(m, base)
        }
    }

    /// Packs the ModelProto straight into `writer`, so that no second copy of the weights is ever built in
    /// memory: protobuf-c hands each field to an append callback, and large payloads go to the file directly.
    func encode(_ model: Model, to writer: AtomicFileWriter) throws(FrontendError) {
        let m = try encodeModel(model)
        let size = onnx__model_proto__get_packed_size(m)
        guard size < Int(Int32.max) else {
            throw .tooLarge(reason: "the model's protobuf would be \(size) bytes, over protobuf's 2 GB limit")
        }
        let sink = PackSink(writer: writer)
        // A ProtobufCBuffer followed by the sink's address: the C callback has no other context argument.
        let stride = MemoryLayout<ProtobufCBuffer>.stride
        let memory = UnsafeMutableRawPointer.allocate(byteCount: stride + MemoryLayout<UnsafeRawPointer>.size,
                                                      alignment: MemoryLayout<ProtobufCBuffer>.alignment)
        defer { memory.deallocate() }
        let buffer = memory.bindMemory(to: ProtobufCBuffer.self, capacity: 1)
        buffer.initialize(to: ProtobufCBuffer(append: { buffer, count, data in
            guard let buffer, let data else { return }
            let address = UnsafeRawPointer(buffer).load(fromByteOffset: MemoryLayout<ProtobufCBuffer>.stride, as: UnsafeRawPointer.self)
            Unmanaged<PackSink>.fromOpaque(address).takeUnretainedValue().append(UnsafeRawBufferPointer(start: data, count: count))
        }))
        withExtendedLifetime(sink) {
            memory.storeBytes(of: UnsafeRawPointer(Unmanaged.passUnretained(sink).toOpaque()), toByteOffset: stride, as: UnsafeRawPointer.self)
            _ = protobuf_c_message_pack_to_buffer(UnsafeRawPointer(m).assumingMemoryBound(to: ProtobufCMessage.self), buffer)
        }
        do throws(FileError) {
            try sink.finish()
        } catch {
            throw .file(error)
        }
    }

    /// The packed TensorProto bytes of one tensor (the `.pb` files of backend tests).
    func encode(_ tensor: Tensor) throws(FrontendError) -> ByteStorage {
        let t = try encodeTensor(tensor, externalizable: false)
        let size = onnx__tensor_proto__get_packed_size(t)
        guard size < Int(Int32.max) else { throw .tooLarge(reason: "the tensor's protobuf would be \(size) bytes, over 2 GB") }
        return ByteStorage(count: size) { out in
            guard let base = out.baseAddress?.assumingMemoryBound(to: UInt8.self) else { return }
            _ = onnx__tensor_proto__pack(t, base)
        }
    }

    private func make<T>(_ initialize: (UnsafeMutablePointer<T>) -> Void) -> UnsafeMutablePointer<T> {
        let pointer = UnsafeMutablePointer<T>.allocate(capacity: 1)
        allocations.append(UnsafeMutableRawPointer(pointer))
        initialize(pointer)
        return pointer
    }

    private func array<T>(_ values: [T]) -> UnsafeMutablePointer<T>? {
        guard !values.isEmpty else { return nil }
        let pointer = UnsafeMutablePointer<T>.allocate(capacity: values.count)
        allocations.append(UnsafeMutableRawPointer(pointer))
        pointer.initialize(from: values, count: values.count)
        return pointer
    }

    /// An optional string field: nil when empty, so unset fields stay unset.
    private func optionalString(_ value: String) -> UnsafeMutablePointer<CChar>? {
        value.isEmpty ? nil : cString(value)
    }

    private func cString(_ value: String) -> UnsafeMutablePointer<CChar> {
        let utf8 = Array(value.utf8)
        let pointer = UnsafeMutablePointer<CChar>.allocate(capacity: utf8.count + 1)
        allocations.append(UnsafeMutableRawPointer(pointer))
        for (i, byte) in utf8.enumerated() { pointer[i] = CChar(bitPattern: byte) }
        pointer[utf8.count] = 0
        return pointer
    }

    /// A repeated string field: every element present, empty ones included (they mean "omitted input").
    private func cStrings(_ values: [String]) -> (Int, UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) {
        (values.count, array(values.map { Optional(cString($0)) }))
    }

    private func binary(_ value: [UInt8]) -> ProtobufCBinaryData {
        guard !value.isEmpty, let pointer = array(value) else { return ProtobufCBinaryData(len: 0, data: nil) }
        return ProtobufCBinaryData(len: value.count, data: pointer)
    }

    private func pointers<T>(_ values: [UnsafeMutablePointer<T>]) -> (Int, UnsafeMutablePointer<UnsafeMutablePointer<T>?>?) {
        (values.count, array(values.map { Optional($0) }))
    }

    private func encodePairs(_ values: [StringPair]) -> (Int, UnsafeMutablePointer<UnsafeMutablePointer<Onnx__StringStringEntryProto>?>?) {
        pointers(values.map { pair in
            make { (p: UnsafeMutablePointer<Onnx__StringStringEntryProto>) in
                onnx__string_string_entry_proto__init(p)
                p.pointee.key = cString(pair.key)
                p.pointee.value = cString(pair.value)
            }
        })
    }

    private func encodeOpsets(_ values: [OpsetImport]) -> (Int, UnsafeMutablePointer<UnsafeMutablePointer<Onnx__OperatorSetIdProto>?>?) {
        pointers(values.map { opset in
            make { (p: UnsafeMutablePointer<Onnx__OperatorSetIdProto>) in
                onnx__operator_set_id_proto__init(p)
                p.pointee.domain = cString(opset.domain)
                p.pointee.has_version = 1
                p.pointee.version = opset.version
            }
        })
    }

    private func encodeModel(_ model: Model) throws(FrontendError) -> UnsafeMutablePointer<Onnx__ModelProto> {
        let graph = try encodeGraph(model.graph, isTopLevel: true)
        var functions: [UnsafeMutablePointer<Onnx__FunctionProto>] = []
        for f in model.functions { functions.append(try encodeFunction(f)) }
        var training: [UnsafeMutablePointer<Onnx__TrainingInfoProto>] = []
        for info in model.trainingInfo {
            let initialization = try info.initialization.map { (g) throws(FrontendError) in try encodeGraph(g, isTopLevel: true) }
            let algorithm = try info.algorithm.map { (g) throws(FrontendError) in try encodeGraph(g, isTopLevel: true) }
            training.append(make { (p: UnsafeMutablePointer<Onnx__TrainingInfoProto>) in
                onnx__training_info_proto__init(p)
                p.pointee.initialization = initialization
                p.pointee.algorithm = algorithm
                (p.pointee.n_initialization_binding, p.pointee.initialization_binding) = encodePairs(info.initializationBinding)
                (p.pointee.n_update_binding, p.pointee.update_binding) = encodePairs(info.updateBinding)
            })
        }
        return make { (p: UnsafeMutablePointer<Onnx__ModelProto>) in
            onnx__model_proto__init(p)
            p.pointee.has_ir_version = 1
            p.pointee.ir_version = model.irVersion
            (p.pointee.n_opset_import, p.pointee.opset_import) = encodeOpsets(model.opsetImports)
            p.pointee.producer_name = optionalString(model.producerName)
            p.pointee.producer_version = optionalString(model.producerVersion)
            p.pointee.domain = optionalString(model.domain)
            if model.modelVersion != 0 {
                p.pointee.has_model_version = 1
                p.pointee.model_version = model.modelVersion
            }
            p.pointee.doc_string = optionalString(model.docString)
            p.pointee.graph = graph
            (p.pointee.n_metadata_props, p.pointee.metadata_props) = encodePairs(model.metadataProps)
            (p.pointee.n_training_info, p.pointee.training_info) = pointers(training)
            (p.pointee.n_functions, p.pointee.functions) = pointers(functions)
        }
    }

    private func encodeGraph(_ graph: Graph, isTopLevel: Bool) throws(FrontendError) -> UnsafeMutablePointer<Onnx__GraphProto> {
        var nodes: [UnsafeMutablePointer<Onnx__NodeProto>] = []
        nodes.reserveCapacity(graph.nodes.count)
        for node in graph.nodes { nodes.append(try encodeNode(node)) }
        var initializers: [UnsafeMutablePointer<Onnx__TensorProto>] = []
        for tensor in graph.initializers { initializers.append(try encodeTensor(tensor, externalizable: true)) }
        var sparse: [UnsafeMutablePointer<Onnx__SparseTensorProto>] = []
        for s in graph.sparseInitializers { sparse.append(try encodeSparse(s)) }
        let annotations = graph.quantizationAnnotations.map { annotation in
            make { (p: UnsafeMutablePointer<Onnx__TensorAnnotation>) in
                onnx__tensor_annotation__init(p)
                p.pointee.tensor_name = cString(annotation.tensorName)
                (p.pointee.n_quant_parameter_tensor_names, p.pointee.quant_parameter_tensor_names) = encodePairs(annotation.quantParameterTensorNames)
            }
        }
        return make { (p: UnsafeMutablePointer<Onnx__GraphProto>) in
            onnx__graph_proto__init(p)
            (p.pointee.n_node, p.pointee.node) = pointers(nodes)
            p.pointee.name = optionalString(graph.name)
            (p.pointee.n_initializer, p.pointee.initializer) = pointers(initializers)
            (p.pointee.n_sparse_initializer, p.pointee.sparse_initializer) = pointers(sparse)
            p.pointee.doc_string = optionalString(graph.docString)
            (p.pointee.n_input, p.pointee.input) = pointers(graph.inputs.map(encodeValueInfo))
            (p.pointee.n_output, p.pointee.output) = pointers(graph.outputs.map(encodeValueInfo))
            (p.pointee.n_value_info, p.pointee.value_info) = pointers(graph.valueInfo.map(encodeValueInfo))
            (p.pointee.n_quantization_annotation, p.pointee.quantization_annotation) = pointers(annotations)
            (p.pointee.n_metadata_props, p.pointee.metadata_props) = encodePairs(graph.metadataProps)
        }
    }

    private func encodeNode(_ node: Node) throws(FrontendError) -> UnsafeMutablePointer<Onnx__NodeProto> {
        var attributes: [UnsafeMutablePointer<Onnx__AttributeProto>] = []
        for attribute in node.attributes { attributes.append(try encodeAttribute(attribute)) }
        return make { (p: UnsafeMutablePointer<Onnx__NodeProto>) in
            onnx__node_proto__init(p)
            (p.pointee.n_input, p.pointee.input) = cStrings(node.inputs)
            (p.pointee.n_output, p.pointee.output) = cStrings(node.outputs)
            p.pointee.name = optionalString(node.name)
            p.pointee.op_type = cString(node.opType)
            p.pointee.domain = optionalString(node.domain)
            p.pointee.overload = optionalString(node.overload)
            (p.pointee.n_attribute, p.pointee.attribute) = pointers(attributes)
            p.pointee.doc_string = optionalString(node.docString)
            (p.pointee.n_metadata_props, p.pointee.metadata_props) = encodePairs(node.metadataProps)
        }
    }

    private func encodeAttribute(_ attribute: Attribute) throws(FrontendError) -> UnsafeMutablePointer<Onnx__AttributeProto> {
        let p: UnsafeMutablePointer<Onnx__AttributeProto> = make { onnx__attribute_proto__init($0) }
        p.pointee.name = cString(attribute.name)
        p.pointee.doc_string = optionalString(attribute.docString)
        p.pointee.has_type = 1
        let type: Int
        // A reference inside a function body carries only its type; the value comes from the caller.
        let isReference = attribute.referencedAttribute != nil
        if let reference = attribute.referencedAttribute { p.pointee.ref_attr_name = cString(reference) }
        switch attribute.value {
        case .float(let v):
            type = 1
            if !isReference { p.pointee.has_f = 1; p.pointee.f = v }
        case .int(let v):
            type = 2
            if !isReference { p.pointee.has_i = 1; p.pointee.i = v }
        case .string(let v):
            type = 3
            if !isReference { p.pointee.has_s = 1; p.pointee.s = binary(v) }
        case .tensor(let t):
            type = 4
            if !isReference { p.pointee.t = try encodeTensor(t, externalizable: false) }
        case .graph(let g):
            type = 5
            if !isReference { p.pointee.g = try encodeGraph(g, isTopLevel: false) }
        case .sparseTensor(let s):
            type = 11
            if !isReference { p.pointee.sparse_tensor = try encodeSparse(s) }
        case .typeProto(let t):
            type = 13
            if !isReference { p.pointee.tp = encodeType(t) }
        case .floats(let v):
            type = 6
            if !isReference { p.pointee.n_floats = v.count; p.pointee.floats = array(v) }
        case .ints(let v):
            type = 7
            if !isReference { p.pointee.n_ints = v.count; p.pointee.ints = array(v) }
        case .strings(let v):
            type = 8
            p.pointee.n_strings = v.count
            p.pointee.strings = array(v.map(binary))
        case .tensors(let v):
            type = 9
            var list: [UnsafeMutablePointer<Onnx__TensorProto>] = []
            for t in v { list.append(try encodeTensor(t, externalizable: false)) }
            (p.pointee.n_tensors, p.pointee.tensors) = pointers(list)
        case .graphs(let v):
            type = 10
            var list: [UnsafeMutablePointer<Onnx__GraphProto>] = []
            for g in v { list.append(try encodeGraph(g, isTopLevel: false)) }
            (p.pointee.n_graphs, p.pointee.graphs) = pointers(list)
        case .sparseTensors(let v):
            type = 12
            var list: [UnsafeMutablePointer<Onnx__SparseTensorProto>] = []
            for s in v { list.append(try encodeSparse(s)) }
            (p.pointee.n_sparse_tensors, p.pointee.sparse_tensors) = pointers(list)
        case .typeProtos(let v):
            type = 14
            (p.pointee.n_type_protos, p.pointee.type_protos) = pointers(v.map(encodeType))
        }
        p.pointee.type = Onnx__AttributeProto__AttributeType(rawValue: UInt32(type))
        return p
    }

    private func encodeValueInfo(_ info: ValueInfo) -> UnsafeMutablePointer<Onnx__ValueInfoProto> {
        let type = info.type.map(encodeType)
        return make { (p: UnsafeMutablePointer<Onnx__ValueInfoProto>) in
            onnx__value_info_proto__init(p)
            p.pointee.name = cString(info.name)
            p.pointee.type = type
            p.pointee.doc_string = optionalString(info.docString)
            (p.pointee.n_metadata_props, p.pointee.metadata_props) = encodePairs(info.metadataProps)
        }
    }

    private func encodeType(_ type: ValueType) -> UnsafeMutablePointer<Onnx__TypeProto> {
        let p: UnsafeMutablePointer<Onnx__TypeProto> = make { onnx__type_proto__init($0) }
        p.pointee.denotation = optionalString(type.denotation)
        switch type.kind {
        case .tensor(let t):
            p.pointee.value_case = ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE
            p.pointee.tensor_type = make { (q: UnsafeMutablePointer<Onnx__TypeProto__Tensor>) in
                onnx__type_proto__tensor__init(q)
                q.pointee.has_elem_type = 1
                q.pointee.elem_type = t.elementType.rawValue
                q.pointee.shape = encodeShape(t)
            }
        case .sparseTensor(let t):
            p.pointee.value_case = ONNX__TYPE_PROTO__VALUE_SPARSE_TENSOR_TYPE
            p.pointee.sparse_tensor_type = make { (q: UnsafeMutablePointer<Onnx__TypeProto__SparseTensor>) in
                onnx__type_proto__sparse_tensor__init(q)
                q.pointee.has_elem_type = 1
                q.pointee.elem_type = t.elementType.rawValue
                q.pointee.shape = encodeShape(t)
            }
        case .sequence(let element):
            let encoded = element.map(encodeType)
            p.pointee.value_case = ONNX__TYPE_PROTO__VALUE_SEQUENCE_TYPE
            p.pointee.sequence_type = make { (q: UnsafeMutablePointer<Onnx__TypeProto__Sequence>) in
                onnx__type_proto__sequence__init(q)
                q.pointee.elem_type = encoded
            }
        case .optional(let element):
            let encoded = element.map(encodeType)
            p.pointee.value_case = ONNX__TYPE_PROTO__VALUE_OPTIONAL_TYPE
            p.pointee.optional_type = make { (q: UnsafeMutablePointer<Onnx__TypeProto__Optional>) in
                onnx__type_proto__optional__init(q)
                q.pointee.elem_type = encoded
            }
        case .map(let key, let value):
            let encoded = value.map(encodeType)
            p.pointee.value_case = ONNX__TYPE_PROTO__VALUE_MAP_TYPE
            p.pointee.map_type = make { (q: UnsafeMutablePointer<Onnx__TypeProto__Map>) in
                onnx__type_proto__map__init(q)
                q.pointee.has_key_type = 1
                q.pointee.key_type = key.rawValue
                q.pointee.value_type = encoded
            }
        case .unspecified:
            p.pointee.value_case = ONNX__TYPE_PROTO__VALUE__NOT_SET
        }
        return p
    }

    private func encodeShape(_ type: TensorType) -> UnsafeMutablePointer<Onnx__TensorShapeProto>? {
        guard let shape = type.shape else { return nil }
        let dims = shape.dims.enumerated().map { (index, dim) in
            make { (d: UnsafeMutablePointer<Onnx__TensorShapeProto__Dimension>) in
                onnx__tensor_shape_proto__dimension__init(d)
                switch dim {
                case .fixed(let value):
                    d.pointee.value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE
                    d.pointee.dim_value = value
                case .symbolic(let name):
                    d.pointee.value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM
                    d.pointee.dim_param = cString(name)
                case .unknown:
                    d.pointee.value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE__NOT_SET
                }
                if index < type.dimDenotations.count { d.pointee.denotation = optionalString(type.dimDenotations[index]) }
            }
        }
        return make { (p: UnsafeMutablePointer<Onnx__TensorShapeProto>) in
            onnx__tensor_shape_proto__init(p)
            (p.pointee.n_dim, p.pointee.dim) = pointers(dims)
        }
    }

    private func encodeSparse(_ sparse: SparseTensor) throws(FrontendError) -> UnsafeMutablePointer<Onnx__SparseTensorProto> {
        let values = try encodeTensor(sparse.values, externalizable: false)
        let indices = try encodeTensor(sparse.indices, externalizable: false)
        return make { (p: UnsafeMutablePointer<Onnx__SparseTensorProto>) in
            onnx__sparse_tensor_proto__init(p)
            p.pointee.values = values
            p.pointee.indices = indices
            p.pointee.n_dims = sparse.dims.count
            p.pointee.dims = array(sparse.dims)
        }
    }

    private func encodeTensor(_ tensor: Tensor, externalizable: Bool) throws(FrontendError) -> UnsafeMutablePointer<Onnx__TensorProto> {
        let external = externalizable ? try externalize(tensor) : nil
        let p: UnsafeMutablePointer<Onnx__TensorProto> = make { onnx__tensor_proto__init($0) }
        p.pointee.n_dims = tensor.dims.count
        p.pointee.dims = array(tensor.dims)
        p.pointee.has_data_type = 1
        p.pointee.data_type = tensor.dtype.rawValue
        p.pointee.name = optionalString(tensor.name)
        p.pointee.doc_string = optionalString(tensor.docString)
        (p.pointee.n_metadata_props, p.pointee.metadata_props) = encodePairs(tensor.metadataProps)
        if let segment = tensor.segment {
            p.pointee.segment = make { (s: UnsafeMutablePointer<Onnx__TensorProto__Segment>) in
                onnx__tensor_proto__segment__init(s)
                s.pointee.has_begin = 1
                s.pointee.begin = segment.lowerBound
                s.pointee.has_end = 1
                s.pointee.end = segment.upperBound
            }
        }
        if let external {
            p.pointee.has_data_location = 1
            p.pointee.data_location = ONNX__TENSOR_PROTO__DATA_LOCATION__EXTERNAL
            var entries = [StringPair("location", external.location), StringPair("offset", String(external.offset)),
                           StringPair("length", String(external.length))]
            entries += external.extraKeys
            (p.pointee.n_external_data, p.pointee.external_data) = encodePairs(entries)
            return p
        }
        switch tensor.data.payload {
        case .strings(let values):
            p.pointee.n_string_data = values.count
            p.pointee.string_data = array(values.map(binary))
        case .bytes(let slice):
            p.pointee.has_raw_data = 1
            // The payload outlives this encoder's use of it: `model` is alive for the whole `encode` call.
            let base = slice.withUnsafeBytes { $0.baseAddress }
            p.pointee.raw_data = ProtobufCBinaryData(len: slice.count, data: base.map { UnsafeMutablePointer(mutating: $0.assumingMemoryBound(to: UInt8.self)) })
        }
        return p
    }

    private func encodeFunction(_ function: Function) throws(FrontendError) -> UnsafeMutablePointer<Onnx__FunctionProto> {
        var nodes: [UnsafeMutablePointer<Onnx__NodeProto>] = []
        for node in function.nodes { nodes.append(try encodeNode(node)) }
        var defaults: [UnsafeMutablePointer<Onnx__AttributeProto>] = []
        for attribute in function.attributeDefaults { defaults.append(try encodeAttribute(attribute)) }
        return make { (p: UnsafeMutablePointer<Onnx__FunctionProto>) in
            onnx__function_proto__init(p)
            p.pointee.name = cString(function.name)
            (p.pointee.n_input, p.pointee.input) = cStrings(function.inputs)
            (p.pointee.n_output, p.pointee.output) = cStrings(function.outputs)
            (p.pointee.n_attribute, p.pointee.attribute) = cStrings(function.attributeNames)
            (p.pointee.n_attribute_proto, p.pointee.attribute_proto) = pointers(defaults)
            (p.pointee.n_node, p.pointee.node) = pointers(nodes)
            p.pointee.doc_string = optionalString(function.docString)
            (p.pointee.n_opset_import, p.pointee.opset_import) = encodeOpsets(function.opsetImports)
            p.pointee.domain = optionalString(function.domain)
            p.pointee.overload = optionalString(function.overload)
            (p.pointee.n_value_info, p.pointee.value_info) = pointers(function.valueInfo.map(encodeValueInfo))
            (p.pointee.n_metadata_props, p.pointee.metadata_props) = encodePairs(function.metadataProps)
        }
    }
}
