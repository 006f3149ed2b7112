public import OnnxcCore

/// A string key/value pair as ONNX stores metadata; order and duplicates are kept for a lossless round trip.
public struct StringPair: Sendable, Hashable {
    public var key: String
    public var value: String
    public init(_ key: String, _ value: String) {
        self.key = key
        self.value = value
    }
}

/// The type of a tensor: element type plus a shape, or nil when even the rank is unknown.
public struct TensorType: Sendable, Hashable, CustomStringConvertible {
    public var elementType: DType
    public var shape: Shape?
    /// Per-dim denotations (`DATA_BATCH`, …) as the file had them; empty when none was given.
    public var dimDenotations: [String]

    public init(_ elementType: DType, _ shape: Shape?, dimDenotations: [String] = []) {
        self.elementType = elementType
        self.shape = shape
        self.dimDenotations = dimDenotations
    }

    /// `f32[batch,3,224,224]`, or `f32[*]` when the rank is unknown.
    public var description: String { elementType.shortName + (shape?.description ?? "[*]") }
}

/// Any type an ONNX value can have. Nesting (sequence of map of …) is kept whole.
public struct ValueType: Sendable, Hashable, CustomStringConvertible {
    public indirect enum Kind: Sendable, Hashable {
        case tensor(TensorType)
        case sparseTensor(TensorType)
        case sequence(ValueType?)
        case map(key: DType, value: ValueType?)
        case optional(ValueType?)
        /// A `TypeProto` with no value set: legal in value_info, it says nothing.
        case unspecified
    }

    public var kind: Kind
    public var denotation: String

    public init(_ kind: Kind, denotation: String = "") {
        self.kind = kind
        self.denotation = denotation
    }

    public static func tensor(_ dtype: DType, _ shape: Shape?) -> ValueType { ValueType(.tensor(TensorType(dtype, shape))) }

    public var tensorType: TensorType? {
        if case .tensor(let type) = kind { return type }
        return nil
    }

    public var description: String {
        switch kind {
        case .tensor(let t): t.description
        case .sparseTensor(let t): "sparse<\(t)>"
        case .sequence(let e): "seq<\(e?.description ?? "?")>"
        case .map(let k, let v): "map<\(k.shortName),\(v?.description ?? "?")>"
        case .optional(let e): "optional<\(e?.description ?? "?")>"
        case .unspecified: "?"
        }
    }
}

/// A named value's declared type (a graph input, output, or `value_info` annotation).
public struct ValueInfo: Sendable, Hashable {
    public var name: String
    public var type: ValueType?
    public var docString: String
    public var metadataProps: [StringPair]

    public init(name: String, type: ValueType?, docString: String = "", metadataProps: [StringPair] = []) {
        self.name = name
        self.type = type
        self.docString = docString
        self.metadataProps = metadataProps
    }
}

/// Where a tensor's bytes came from when the model stored them outside the protobuf.
public struct ExternalDataRef: Sendable, Hashable {
    public var location: String
    public var offset: Int
    public var length: Int
    /// The other `external_data` keys (`checksum`, vendor keys), kept for the round trip.
    public var extraKeys: [StringPair]

    public init(location: String, offset: Int, length: Int, extraKeys: [StringPair] = []) {
        self.location = location
        self.offset = offset
        self.length = length
        self.extraKeys = extraKeys
    }
}

/// A named constant tensor: an initializer, a `Constant`'s value, or a tensor attribute.
public struct Tensor: Sendable, Equatable {
    public var name: String
    public var data: TensorData
    public var docString: String
    public var metadataProps: [StringPair]
    /// The file location the payload was read from, if it was external; informative only.
    public var externalSource: ExternalDataRef?
    /// `TensorProto.segment` (begin, end) for chunked tensors, kept as given.
    public var segment: ClosedRange<Int64>?

    public init(name: String, data: TensorData, docString: String = "", metadataProps: [StringPair] = [],
                externalSource: ExternalDataRef? = nil, segment: ClosedRange<Int64>? = nil) {
        self.name = name
        self.data = data
        self.docString = docString
        self.metadataProps = metadataProps
        self.externalSource = externalSource
        self.segment = segment
    }

    public var dtype: DType { data.dtype }
    public var dims: [Int64] { data.dims }
    public var type: TensorType { TensorType(data.dtype, Shape(fixed: data.dims)) }
}

/// A sparse tensor in ONNX's COO form: `values` [NNZ], `indices` [NNZ] or [NNZ, rank], and the dense dims.
public struct SparseTensor: Sendable, Equatable {
    public var values: Tensor
    public var indices: Tensor
    public var dims: [Int64]

    public init(values: Tensor, indices: Tensor, dims: [Int64]) {
        self.values = values
        self.indices = indices
        self.dims = dims
    }

    public var name: String { values.name }
}
