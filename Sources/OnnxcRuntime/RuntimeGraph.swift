public import OnnxcCore

/// One operator invocation as the runtime executes it.
public struct RuntimeNode: Sendable {
    public var name: String
    public var opType: String
    public var domain: String
    /// The operator-set version that applies to this node's domain.
    public var opset: Int
    /// Value names; "" is an omitted optional input or output.
    public var inputs: [String]
    public var outputs: [String]
    public var attributes: Attributes

    public init(name: String, opType: String, domain: String, opset: Int, inputs: [String], outputs: [String], attributes: Attributes) {
        self.name = name
        self.opType = opType
        self.domain = domain
        self.opset = opset
        self.inputs = inputs
        self.outputs = outputs
        self.attributes = attributes
    }

    public var displayName: String { name.isEmpty ? "<\(opType) producing \(outputs.first ?? "")>" : name }
}

/// A declared graph input or output.
public struct RuntimeValueInfo: Sendable {
    public var name: String
    public var dtype: DType?
    /// Known sizes, or nil for a symbolic or unknown dim; nil when the rank is unknown.
    public var shape: [Int?]?
    public var shapeText: String

    public init(name: String, dtype: DType?, shape: [Int?]?, shapeText: String) {
        self.name = name
        self.dtype = dtype
        self.shape = shape
        self.shapeText = shapeText
    }
}

/// A graph the executor runs: nodes in topological order, constants, and the declared signature.
/// It is independent of the compiler's IR, so the compiled-format loader can build it too.
public final class RuntimeGraph: Sendable {
    public let name: String
    public let inputs: [RuntimeValueInfo]
    public let outputs: [RuntimeValueInfo]
    public let initializers: [String: Tensor]
    public let nodes: [RuntimeNode]

    public init(name: String, inputs: [RuntimeValueInfo], outputs: [RuntimeValueInfo], initializers: [String: Tensor], nodes: [RuntimeNode]) {
        self.name = name
        self.inputs = inputs
        self.outputs = outputs
        self.initializers = initializers
        self.nodes = nodes
    }
}
