public import OnnxcCore
public import OnnxcIR

/// Everything that can go wrong reading or writing ONNX, each case carrying where it happened.
public enum FrontendError: Error, Sendable, Equatable, UserFacingError {
    case file(FileError)
    /// The bytes are not a well-formed protobuf message (truncated, random, or another format).
    case malformedProtobuf(reason: String)
    /// Messages nest deeper than `ONNXImporter.maximumNesting`: hostile, or a runaway exporter.
    case nestingTooDeep(limit: Int)
    /// A well-formed protobuf that is not an ONNX model (no graph, no IR version, …).
    case notAModel(reason: String)
    case invalidTensor(tensor: String, location: String, reason: String)
    case unsupportedDataType(code: Int32, location: String)
    case invalidAttribute(location: String, reason: String)
    case invalidType(location: String, reason: String)
    case externalData(tensor: String, file: String, reason: String)
    case invalidGraph(IRError)
    case tooLarge(reason: String)

    public var what: String {
        switch self {
        case .file(let error): error.what
        case .malformedProtobuf(let reason): "not a valid ONNX protobuf file: \(reason)"
        case .nestingTooDeep(let limit): "protobuf messages nest deeper than \(limit) levels"
        case .notAModel(let reason): "not an ONNX model: \(reason)"
        case .invalidTensor(let tensor, _, let reason): "tensor \(tensor.isEmpty ? "<unnamed>" : tensor) is invalid: \(reason)"
        case .unsupportedDataType(let code, _): "unknown tensor data type \(code)"
        case .invalidAttribute(_, let reason): "invalid attribute: \(reason)"
        case .invalidType(_, let reason): "invalid type: \(reason)"
        case .externalData(let tensor, let file, let reason): "external data of tensor \(tensor) in \(file): \(reason)"
        case .invalidGraph(let error): error.what
        case .tooLarge(let reason): reason
        }
    }

    public var location: String? {
        switch self {
        case .invalidTensor(_, let location, _), .unsupportedDataType(_, let location),
             .invalidAttribute(let location, _), .invalidType(let location, _):
            location
        case .invalidGraph(let error): error.location
        case .file(let error): error.location
        default: nil
        }
    }

    public var hint: String? {
        switch self {
        case .file(let error): error.hint
        case .malformedProtobuf, .notAModel:
            "check that this is an .onnx file and that it was copied completely"
        case .nestingTooDeep: "the file is damaged or hostile; re-export the model"
        case .invalidTensor, .invalidAttribute, .invalidType:
            "the file is damaged or its exporter is buggy; re-export it and check it with onnx.checker.check_model"
        case .unsupportedDataType:
            "this data type is newer than onnxc's ONNX schema (IR version 10); convert the tensor to a supported type"
        case .externalData:
            "keep the external data files beside the model, inside its folder, with the sizes the model records"
        case .invalidGraph(let error): error.hint
        case .tooLarge: "write weights to a side file with --external-data"
        }
    }
}
