/// A node attribute's value: every kind `AttributeProto` can hold. Strings are bytes, as in ONNX.
public indirect enum AttributeValue: Sendable, Equatable {
    case float(Float)
    case int(Int64)
    case string([UInt8])
    case tensor(Tensor)
    case graph(Graph)
    case sparseTensor(SparseTensor)
    case typeProto(ValueType)
    case floats([Float])
    case ints([Int64])
    case strings([[UInt8]])
    case tensors([Tensor])
    case graphs([Graph])
    case sparseTensors([SparseTensor])
    case typeProtos([ValueType])

    /// The `AttributeProto.AttributeType` name (`FLOAT`, `INTS`, …).
    public var kindName: String {
        switch self {
        case .float: "FLOAT"
        case .int: "INT"
        case .string: "STRING"
        case .tensor: "TENSOR"
        case .graph: "GRAPH"
        case .sparseTensor: "SPARSE_TENSOR"
        case .typeProto: "TYPE_PROTO"
        case .floats: "FLOATS"
        case .ints: "INTS"
        case .strings: "STRINGS"
        case .tensors: "TENSORS"
        case .graphs: "GRAPHS"
        case .sparseTensors: "SPARSE_TENSORS"
        case .typeProtos: "TYPE_PROTOS"
        }
    }

    /// The subgraphs this attribute holds (If branches, Loop/Scan bodies).
    public var subgraphs: [Graph] {
        switch self {
        case .graph(let g): [g]
        case .graphs(let gs): gs
        default: []
        }
    }
}

/// A named attribute. Inside a function body it may instead refer to an attribute of the calling node.
public struct Attribute: Sendable, Equatable {
    public var name: String
    public var value: AttributeValue
    public var docString: String
    /// `ref_attr_name`: in a function body, take the value from the caller's attribute of this name.
    public var referencedAttribute: String?

    public init(_ name: String, _ value: AttributeValue, docString: String = "", referencedAttribute: String? = nil) {
        self.name = name
        self.value = value
        self.docString = docString
        self.referencedAttribute = referencedAttribute
    }
}
