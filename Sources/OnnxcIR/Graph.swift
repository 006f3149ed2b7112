/// The default ONNX operator domain; ONNX writes it as "" or "ai.onnx", and the IR always uses "".
public let defaultDomain = ""

/// Normalizes the two spellings of the default domain so lookups never miss.
public func canonicalDomain(_ domain: String) -> String { domain == "ai.onnx" ? defaultDomain : domain }

/// One operator invocation. Inputs and outputs name values; "" marks an omitted optional one.
public struct Node: Sendable, Equatable {
    public var name: String
    public var opType: String
    public var domain: String
    public var overload: String
    public var inputs: [String]
    public var outputs: [String]
    public var attributes: [Attribute]
    public var docString: String
    public var metadataProps: [StringPair]

    public init(name: String = "", opType: String, domain: String = defaultDomain, overload: String = "",
                inputs: [String], outputs: [String], attributes: [Attribute] = [],
                docString: String = "", metadataProps: [StringPair] = []) {
        self.name = name
        self.opType = opType
        self.domain = domain
        self.overload = overload
        self.inputs = inputs
        self.outputs = outputs
        self.attributes = attributes
        self.docString = docString
        self.metadataProps = metadataProps
    }

    public func attribute(_ name: String) -> AttributeValue? { attributes.first { $0.name == name }?.value }

    /// `domain::Op` for custom domains, plain `Op` for the default one: how messages name an operator.
    public var qualifiedOpType: String { domain.isEmpty ? opType : "\(domain)::\(opType)" }

    /// How messages point at this node: its name if it has one, else its first output.
    public var displayName: String {
        if !name.isEmpty { return name }
        if let first = outputs.first(where: { !$0.isEmpty }) { return "<node producing \(first)>" }
        return "<unnamed \(opType)>"
    }

    /// Subgraphs held by attributes, in attribute order.
    public var subgraphs: [Graph] { attributes.flatMap(\.value.subgraphs) }
}

/// `TensorAnnotation`: quantization parameter tensors attached to a tensor name.
public struct TensorAnnotation: Sendable, Equatable {
    public var tensorName: String
    public var quantParameterTensorNames: [StringPair]
    public init(tensorName: String, quantParameterTensorNames: [StringPair]) {
        self.tensorName = tensorName
        self.quantParameterTensorNames = quantParameterTensorNames
    }
}

/// A computation graph in SSA form: every value is defined once (input, initializer or node output) and
/// nodes are kept in topological order. Subgraphs may read values of the graphs enclosing them.
public struct Graph: Sendable, Equatable {
    public var name: String
    public var docString: String
    public var inputs: [ValueInfo]
    public var outputs: [ValueInfo]
    public var initializers: [Tensor]
    public var sparseInitializers: [SparseTensor]
    public var nodes: [Node]
    /// Type annotations for intermediate values (`value_info`).
    public var valueInfo: [ValueInfo]
    public var quantizationAnnotations: [TensorAnnotation]
    public var metadataProps: [StringPair]

    public init(name: String = "", docString: String = "", inputs: [ValueInfo] = [], outputs: [ValueInfo] = [],
                initializers: [Tensor] = [], sparseInitializers: [SparseTensor] = [], nodes: [Node] = [],
                valueInfo: [ValueInfo] = [], quantizationAnnotations: [TensorAnnotation] = [],
                metadataProps: [StringPair] = []) {
        self.name = name
        self.docString = docString
        self.inputs = inputs
        self.outputs = outputs
        self.initializers = initializers
        self.sparseInitializers = sparseInitializers
        self.nodes = nodes
        self.valueInfo = valueInfo
        self.quantizationAnnotations = quantizationAnnotations
        self.metadataProps = metadataProps
    }

    /// Inputs that are not also initializers (IR < 4 lists initializers as inputs too; those are defaults).
    public var runtimeInputs: [ValueInfo] {
        let initialized = Set(initializers.map(\.name))
        return inputs.filter { !initialized.contains($0.name) }
    }

    public func initializer(named name: String) -> Tensor? { initializers.first { $0.name == name } }

    /// The declared type of `name`, looking at inputs, outputs, value_info, then initializers.
    public func declaredType(of name: String) -> ValueType? {
        if let info = inputs.first(where: { $0.name == name }), let type = info.type { return type }
        if let info = outputs.first(where: { $0.name == name }), let type = info.type { return type }
        if let info = valueInfo.first(where: { $0.name == name }), let type = info.type { return type }
        if let tensor = initializer(named: name) { return ValueType(.tensor(tensor.type)) }
        return nil
    }

    /// Every node of this graph and of all nested subgraphs, depth first.
    public var nodeCountIncludingSubgraphs: Int {
        nodes.reduce(0) { $0 + 1 + $1.subgraphs.reduce(0) { $0 + $1.nodeCountIncludingSubgraphs } }
    }

    /// Whether any node, here or in a subgraph, satisfies `predicate`.
    public func containsNode(where predicate: (Node) -> Bool) -> Bool {
        nodes.contains { node in predicate(node) || node.subgraphs.contains { $0.containsNode(where: predicate) } }
    }
}

/// An operator set the model imports: (domain, version).
public struct OpsetImport: Sendable, Hashable {
    public var domain: String
    public var version: Int64
    public init(domain: String, version: Int64) {
        self.domain = domain
        self.version = version
    }
}

/// A model-local function (`FunctionProto`). The importer inlines calls to these; they are kept on the
/// model so a re-encode without inlining stays lossless.
public struct Function: Sendable, Equatable {
    public var name: String
    public var domain: String
    public var overload: String
    public var inputs: [String]
    public var outputs: [String]
    /// Attribute names without defaults (`attribute`).
    public var attributeNames: [String]
    /// Attributes with default values (`attribute_proto`).
    public var attributeDefaults: [Attribute]
    public var nodes: [Node]
    public var opsetImports: [OpsetImport]
    public var valueInfo: [ValueInfo]
    public var docString: String
    public var metadataProps: [StringPair]

    public init(name: String, domain: String, overload: String = "", inputs: [String], outputs: [String],
                attributeNames: [String] = [], attributeDefaults: [Attribute] = [], nodes: [Node],
                opsetImports: [OpsetImport], valueInfo: [ValueInfo] = [], docString: String = "",
                metadataProps: [StringPair] = []) {
        self.name = name
        self.domain = domain
        self.overload = overload
        self.inputs = inputs
        self.outputs = outputs
        self.attributeNames = attributeNames
        self.attributeDefaults = attributeDefaults
        self.nodes = nodes
        self.opsetImports = opsetImports
        self.valueInfo = valueInfo
        self.docString = docString
        self.metadataProps = metadataProps
    }

    /// The key a node's (domain, op_type, overload) must match to call this function.
    public var key: FunctionKey { FunctionKey(domain: canonicalDomain(domain), name: name, overload: overload) }
}

public struct FunctionKey: Sendable, Hashable {
    public var domain: String
    public var name: String
    public var overload: String
}

/// `TrainingInfoProto`, kept so that re-encoding a training-capable model loses nothing.
public struct TrainingInfo: Sendable, Equatable {
    public var initialization: Graph?
    public var algorithm: Graph?
    public var initializationBinding: [StringPair]
    public var updateBinding: [StringPair]
    public init(initialization: Graph?, algorithm: Graph?, initializationBinding: [StringPair], updateBinding: [StringPair]) {
        self.initialization = initialization
        self.algorithm = algorithm
        self.initializationBinding = initializationBinding
        self.updateBinding = updateBinding
    }
}

/// A whole ONNX model: metadata, operator sets, the main graph and any local functions.
public struct Model: Sendable, Equatable {
    public var irVersion: Int64
    public var opsetImports: [OpsetImport]
    public var producerName: String
    public var producerVersion: String
    public var domain: String
    public var modelVersion: Int64
    public var docString: String
    public var graph: Graph
    public var metadataProps: [StringPair]
    public var trainingInfo: [TrainingInfo]
    public var functions: [Function]

    public init(irVersion: Int64 = 10, opsetImports: [OpsetImport] = [OpsetImport(domain: defaultDomain, version: 21)],
                producerName: String = "", producerVersion: String = "", domain: String = "", modelVersion: Int64 = 0,
                docString: String = "", graph: Graph, metadataProps: [StringPair] = [],
                trainingInfo: [TrainingInfo] = [], functions: [Function] = []) {
        self.irVersion = irVersion
        self.opsetImports = opsetImports
        self.producerName = producerName
        self.producerVersion = producerVersion
        self.domain = domain
        self.modelVersion = modelVersion
        self.docString = docString
        self.graph = graph
        self.metadataProps = metadataProps
        self.trainingInfo = trainingInfo
        self.functions = functions
    }

    /// The imported version of `domain` ("" and "ai.onnx" are the same domain).
    public func opsetVersion(for domain: String) -> Int64? {
        let wanted = canonicalDomain(domain)
        return opsetImports.first { canonicalDomain($0.domain) == wanted }?.version
    }
}
