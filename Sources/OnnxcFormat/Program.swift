public import OnnxcCore

/// Index into `Program.tensors`; -1 (`Program.omitted`) marks an omitted optional input or output.
public typealias TensorID = Int32

/// A compiled model as the interpreter executes it: every tensor numbered, every op resolved to an opcode,
/// constants (possibly prepacked for a kernel) and the memory plan decided ahead of time. This is the in-memory
/// form of a `.oxc` file (schemas/oxc-format.md); `OXCWriter` and `OXCReader` convert between the two.
public struct Program: Sendable {
    public static let omitted: TensorID = -1

    public var metadata: ProgramMetadata
    /// Every tensor of every graph; ids are global, so a subgraph reads outer values by id.
    public var tensors: [ProgramTensor]
    /// `graphs[0]` is the main graph; attributes refer to subgraphs by index (`ProgramAttributeValue.graph`).
    public var graphs: [ProgramGraph]
    /// Size of the one arena that holds every `.arena` tensor of a run (64-byte aligned offsets).
    public var arenaBytes: Int

    public init(metadata: ProgramMetadata, tensors: [ProgramTensor], graphs: [ProgramGraph], arenaBytes: Int) {
        self.metadata = metadata
        self.tensors = tensors
        self.graphs = graphs
        self.arenaBytes = arenaBytes
    }
}

/// Where a compiled model came from and how it was compiled.
public struct ProgramMetadata: Sendable, Equatable {
    /// The onnxc version that compiled it.
    public var compiler: String
    /// SHA-256 of the source .onnx file (32 bytes; empty when compiled from memory).
    public var sourceSHA256: [UInt8]
    /// The source file's name, without its folder.
    public var sourceName: String
    /// The source model's producer (e.g. "pytorch 2.15.0").
    public var producer: String
    /// The pipeline, e.g. "-O2".
    public var optimization: String
    /// Other settings that shaped the program, in order (pinned input shapes, thread count, …).
    public var properties: [StringPair]

    public init(compiler: String, sourceSHA256: [UInt8], sourceName: String, producer: String, optimization: String,
                properties: [StringPair] = []) {
        self.compiler = compiler
        self.sourceSHA256 = sourceSHA256
        self.sourceName = sourceName
        self.producer = producer
        self.optimization = optimization
        self.properties = properties
    }
}

/// One key-value pair (metadata properties keep their order and may repeat keys).
public struct StringPair: Sendable, Equatable {
    public var key: String
    public var value: String
    public init(_ key: String, _ value: String) {
        self.key = key
        self.value = value
    }
}

public struct ProgramTensor: Sendable {
    public var name: String
    public var dtype: DType
    /// The compile-time shape (dims may be symbolic or unknown); nil when even the rank is unknown.
    public var shape: Shape?
    public var storage: ProgramStorage

    public init(name: String, dtype: DType, shape: Shape?, storage: ProgramStorage) {
        self.name = name
        self.dtype = dtype
        self.shape = shape
        self.storage = storage
    }
}

/// How a tensor gets its memory.
public enum ProgramStorage: Sendable {
    /// Bytes in the file's constant section, used in place; `layout` says whether they were prepacked.
    case constant(TensorData, layout: ConstantLayout)
    /// A planned slot in the run's arena.
    case arena(offset: Int, byteCount: Int)
    /// The value of graph input number `index` of the graph that declares it.
    case input(index: Int)
    /// Part of a wider arena tensor's slot, so that a Concat's operand is written where the Concat's result needs it
    /// and a Split's part is read where it lies: the rows of this tensor (runs of its last dim's elements) start at
    /// arena byte `offset` and lie `rowStride` elements apart — a channel range of a channels-last tensor.
    case window(offset: Int, rowStride: Int)
    /// Allocated when computed: graph outputs (they outlive the run), data-dependent sizes, non-tensor values.
    case dynamic
}

/// The arrangement of a constant's bytes. Kernels that use a packed layout read only that; `plain` is the
/// ONNX row-major layout.
public enum ConstantLayout: Sendable, Equatable {
    case plain
    /// A layout identified by a code from the format spec's layout table, with its integer parameters.
    case packed(code: UInt32, parameters: [Int64])
}

public struct ProgramGraph: Sendable {
    public var name: String
    public var inputs: [TensorID]
    public var outputs: [TensorID]
    public var ops: [ProgramOp]

    public init(name: String, inputs: [TensorID], outputs: [TensorID], ops: [ProgramOp]) {
        self.name = name
        self.inputs = inputs
        self.outputs = outputs
        self.ops = ops
    }
}

public struct ProgramOp: Sendable {
    /// The source node's name (for errors and profiles).
    public var name: String
    public var opcode: Opcode
    /// The operator-set version of the op's domain in the source model.
    public var opset: Int32
    public var inputs: [TensorID]
    public var outputs: [TensorID]
    public var attributes: [ProgramAttribute]

    public init(name: String, opcode: Opcode, opset: Int32, inputs: [TensorID], outputs: [TensorID], attributes: [ProgramAttribute]) {
        self.name = name
        self.opcode = opcode
        self.opset = opset
        self.inputs = inputs
        self.outputs = outputs
        self.attributes = attributes
    }
}

public struct ProgramAttribute: Sendable {
    public var name: String
    public var value: ProgramAttributeValue
    public init(_ name: String, _ value: ProgramAttributeValue) {
        self.name = name
        self.value = value
    }
}

public indirect enum ProgramAttributeValue: Sendable {
    case float(Float)
    case int(Int64)
    case string(String)
    case tensor(TensorData)
    /// A subgraph, by index into `Program.graphs`.
    case graph(Int)
    case floats([Float])
    case ints([Int64])
    case strings([String])
    case tensors([TensorData])
    case graphs([Int])
    /// A TYPE_PROTO attribute as kernels need it: the element type of an empty Optional/Sequence, or nil.
    case type(ProgramValueType?)
}

/// The value types a TYPE_PROTO attribute can name for the runtime.
public enum ProgramValueType: Sendable, Equatable {
    case tensor(DType)
    case sequence(DType)
}
