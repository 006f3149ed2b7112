public import OnnxcCore

/// Errors raised while preparing or running a graph. Kernel errors are wrapped with the node they came from.
public enum RuntimeError: Error, Sendable, Equatable, UserFacingError {
    case invalidShape(String)
    case invalidArgument(String)
    case unsupportedType(op: String, dtype: String)
    /// Every node the runtime has no kernel for, reported together.
    case unsupportedOps([UnsupportedOp])
    case missingInput(String)
    indirect case atNode(node: String, op: String, RuntimeError)

    public struct UnsupportedOp: Sendable, Equatable, CustomStringConvertible {
        public var domain: String
        public var opType: String
        public var opset: Int
        public var nodes: [String]
        public init(domain: String, opType: String, opset: Int, nodes: [String]) {
            self.domain = domain
            self.opType = opType
            self.opset = opset
            self.nodes = nodes
        }
        public var description: String {
            let shown = nodes.prefix(5).joined(separator: ", ") + (nodes.count > 5 ? ", … (\(nodes.count) nodes)" : "")
            return "\(domain.isEmpty ? "ai.onnx" : domain)::\(opType) (opset \(opset)) at \(shown)"
        }
    }

    public var what: String {
        switch self {
        case .invalidShape(let message), .invalidArgument(let message): message
        case .unsupportedType(let op, let dtype): "\(op) does not support element type \(dtype)"
        case .unsupportedOps(let ops):
            "\(ops.count) unsupported operator\(ops.count == 1 ? "" : "s"):" + ops.map { "\n  - \($0)" }.joined()
        case .missingInput(let message): message
        case .atNode(_, _, let inner): inner.what
        }
    }

    public var location: String? {
        if case .atNode(let node, let op, let inner) = self {
            return "node \(node), op \(op)" + (inner.location.map { ", \($0)" } ?? "")
        }
        return nil
    }

    public var hint: String? {
        switch self {
        case .unsupportedOps: "these operators have no onnxc kernel yet; report them, or export the model with standard ONNX ops"
        case .missingInput: "pass every model input with --input NAME=FILE"
        case .atNode(_, _, let inner): inner.hint
        case .unsupportedType: "cast the tensor to a supported type, or report this model"
        default: "check the model and its inputs"
        }
    }
}
