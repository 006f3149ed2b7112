public import OnnxcCore

/// The contents of a small tensor, known while inferring: the shape-computing chains of exported models
/// (`Shape → Gather → Unsqueeze → Concat → Reshape`) are evaluated on these so that Reshape, Expand, Tile,
/// ConstantOfShape, Slice, Resize and Pad get exact output shapes. Integer entries are dims, so
/// `Shape(x)` of `x: [batch,3]` is the known value `[batch, 3]`; an entry may be `.unknown`.
public struct KnownValue: Sendable, Equatable {
    public enum Elements: Sendable, Equatable {
        case ints([Dim])
        case floats([Double])
    }

    /// The tensor's dims (fixed: only small tensors of known size are tracked).
    public var dims: [Int64]
    public var elements: Elements

    /// Tensors larger than this are not tracked: shape vectors are tiny, and folding big ones costs memory.
    public static let maximumElements = 1024

    public init(dims: [Int64], ints: [Dim]) {
        self.dims = dims
        self.elements = .ints(ints)
    }

    public init(dims: [Int64], floats: [Double]) {
        self.dims = dims
        self.elements = .floats(floats)
    }

    /// A 1-D vector of dims (the value of `Shape`).
    public static func vector(_ dims: [Dim]) -> KnownValue { KnownValue(dims: [Int64(dims.count)], ints: dims) }

    public static func scalar(_ dim: Dim) -> KnownValue { KnownValue(dims: [], ints: [dim]) }

    public var ints: [Dim]? {
        if case .ints(let v) = elements { return v }
        return nil
    }

    /// Integer entries when every one is a fixed number.
    public var fixedInts: [Int64]? { ints.flatMap { Shape($0).fixedDims } }

    /// Entries as doubles: floats as they are, fixed ints converted; nil if any entry is not a number.
    public var doubles: [Double]? {
        switch elements {
        case .floats(let v): return v
        case .ints(let v): return Shape(v).fixedDims?.map(Double.init)
        }
    }

    public var count: Int {
        switch elements {
        case .ints(let v): v.count
        case .floats(let v): v.count
        }
    }

    /// Reads a small numeric tensor; nil when it is too large or not numeric.
    public init?(tensor data: TensorData) {
        guard data.elementCount <= KnownValue.maximumElements, data.bytes != nil else { return nil }
        dims = data.dims
        if let integers = data.integers() {
            elements = .ints(integers.map { .fixed($0) })
            return
        }
        switch data.dtype {
        case .float, .double, .float16, .bfloat16:
            var values: [Double] = []
            for i in 0..<data.elementCount {
                guard let v = data.numericValue(at: i) else { return nil }
                values.append(v)
            }
            elements = .floats(values)
        default:
            return nil
        }
    }
}
