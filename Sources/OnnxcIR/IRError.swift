public import OnnxcCore

/// One problem found in a graph, with enough context to find it: the graph path (`main`,
/// `main/If_0.then_branch`), the node and op, and the value involved.
public struct Diagnostic: Sendable, Equatable, CustomStringConvertible {
    public var graphPath: String
    public var node: String?
    public var opType: String?
    public var value: String?
    public var message: String

    public init(graphPath: String, node: String? = nil, opType: String? = nil, value: String? = nil, message: String) {
        self.graphPath = graphPath
        self.node = node
        self.opType = opType
        self.value = value
        self.message = message
    }

    public var location: String {
        var parts = ["graph \(graphPath)"]
        if let node { parts.append("node \(node)") }
        if let opType { parts.append("op \(opType)") }
        if let value { parts.append("value \(value)") }
        return parts.joined(separator: ", ")
    }

    public var description: String { "\(message) (where: \(location))" }
}

/// Errors from the IR layer: an invalid graph, a cycle, or a model-local function that cannot be inlined.
public enum IRError: Error, Sendable, Equatable, UserFacingError {
    /// The verifier's findings; all of them, not just the first.
    case invalidGraph([Diagnostic])
    /// Nodes that depend on each other in a cycle, so no execution order exists.
    case cycle(graphPath: String, nodes: [String])
    case functionInlining(function: String, node: String, reason: String)

    /// How many diagnostics a message lists before summarizing the rest.
    public static let listedDiagnosticsLimit = 20

    public var what: String {
        switch self {
        case .invalidGraph(let diagnostics):
            let shown = diagnostics.prefix(IRError.listedDiagnosticsLimit).map { "\n  - \($0)" }.joined()
            let more = diagnostics.count > IRError.listedDiagnosticsLimit
                ? "\n  … and \(diagnostics.count - IRError.listedDiagnosticsLimit) more" : ""
            return "invalid graph, \(diagnostics.count) problem\(diagnostics.count == 1 ? "" : "s"):" + shown + more
        case .cycle(_, let nodes):
            let names = nodes.prefix(10).joined(separator: ", ") + (nodes.count > 10 ? ", …" : "")
            return "the graph has a cycle through \(nodes.count) node\(nodes.count == 1 ? "" : "s"): \(names)"
        case .functionInlining(let function, _, let reason):
            return "cannot inline model-local function \(function): \(reason)"
        }
    }

    public var location: String? {
        switch self {
        case .invalidGraph: nil
        case .cycle(let path, _): "graph \(path)"
        case .functionInlining(_, let node, _): "node \(node)"
        }
    }

    public var hint: String? {
        switch self {
        case .invalidGraph: "the model breaks ONNX's rules; re-export it, or check it with onnx.checker.check_model"
        case .cycle: "ONNX graphs must be acyclic; re-export the model"
        case .functionInlining: "re-export the model with functions inlined, or report this model to onnxc"
        }
    }
}
