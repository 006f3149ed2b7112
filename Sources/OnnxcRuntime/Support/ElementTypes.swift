public import OnnxcCore

/// Element types with arithmetic and ordering: what element-wise math, reductions and comparisons run on.
public protocol ArithmeticElement: TensorElement, Numeric, Comparable {
    /// Converts with C-like semantics for integers (truncation toward zero, saturating at the bounds).
    static func from(_ value: Double) -> Self
    var asDouble: Double { get }
}

/// Floating-point element types (Float, Double, Float16).
public protocol FloatElement: ArithmeticElement, BinaryFloatingPoint {
    var asFloat: Float { get }
    static func from(float value: Float) -> Self
}

extension Float: FloatElement {
    public static func from(_ value: Double) -> Float { Float(value) }
    public var asDouble: Double { Double(self) }
    public var asFloat: Float { self }
    public static func from(float value: Float) -> Float { value }
}

extension Double: FloatElement {
    public static func from(_ value: Double) -> Double { value }
    public var asDouble: Double { self }
    public var asFloat: Float { Float(self) }
    public static func from(float value: Float) -> Double { Double(value) }
}

extension Float16: FloatElement {
    public static func from(_ value: Double) -> Float16 { Float16(Float(value)) }
    public var asDouble: Double { Double(Float(self)) }
    public var asFloat: Float { Float(self) }
    public static func from(float value: Float) -> Float16 { Float16(value) }
}

/// Integer element types.
public protocol IntegerElement: ArithmeticElement, FixedWidthInteger {}

extension IntegerElement {
    public static func from(_ value: Double) -> Self {
        if value.isNaN { return 0 }
        if value >= Double(Self.max) { return Self.max }
        if value <= Double(Self.min) { return Self.min }
        return Self(value.rounded(.towardZero))
    }
    public var asDouble: Double { Double(self) }
}

extension Int8: IntegerElement {}
extension Int16: IntegerElement {}
extension Int32: IntegerElement {}
extension Int64: IntegerElement {}
extension UInt8: IntegerElement {}
extension UInt16: IntegerElement {}
extension UInt32: IntegerElement {}
extension UInt64: IntegerElement {}

/// Calls a generic function for the Swift type of a runtime dtype. Swift has no generic closures, so a kernel
/// that works for many element types writes a small visitor struct and dispatches through one of these.
public protocol ArithmeticVisitor {
    associatedtype Output
    func visit<T: ArithmeticElement>(_ type: T.Type) throws(RuntimeError) -> Output
}

public protocol FloatVisitor {
    associatedtype Output
    func visit<T: FloatElement>(_ type: T.Type) throws(RuntimeError) -> Output
}

public protocol IntegerVisitor {
    associatedtype Output
    func visit<T: IntegerElement>(_ type: T.Type) throws(RuntimeError) -> Output
}

/// Dispatches over every arithmetic dtype (all ints, float16/32/64). `op` names the operator in errors.
public func dispatchArithmetic<V: ArithmeticVisitor>(_ dtype: DType, op: String, _ visitor: V) throws(RuntimeError) -> V.Output {
    switch dtype {
    case .float: return try visitor.visit(Float.self)
    case .double: return try visitor.visit(Double.self)
    case .float16: return try visitor.visit(Float16.self)
    case .int8: return try visitor.visit(Int8.self)
    case .int16: return try visitor.visit(Int16.self)
    case .int32: return try visitor.visit(Int32.self)
    case .int64: return try visitor.visit(Int64.self)
    case .uint8: return try visitor.visit(UInt8.self)
    case .uint16: return try visitor.visit(UInt16.self)
    case .uint32: return try visitor.visit(UInt32.self)
    case .uint64: return try visitor.visit(UInt64.self)
    default: throw .unsupportedType(op: op, dtype: dtype.onnxName)
    }
}

public func dispatchFloat<V: FloatVisitor>(_ dtype: DType, op: String, _ visitor: V) throws(RuntimeError) -> V.Output {
    switch dtype {
    case .float: return try visitor.visit(Float.self)
    case .double: return try visitor.visit(Double.self)
    case .float16: return try visitor.visit(Float16.self)
    default: throw .unsupportedType(op: op, dtype: dtype.onnxName)
    }
}

public func dispatchInteger<V: IntegerVisitor>(_ dtype: DType, op: String, _ visitor: V) throws(RuntimeError) -> V.Output {
    switch dtype {
    case .int8: return try visitor.visit(Int8.self)
    case .int16: return try visitor.visit(Int16.self)
    case .int32: return try visitor.visit(Int32.self)
    case .int64: return try visitor.visit(Int64.self)
    case .uint8: return try visitor.visit(UInt8.self)
    case .uint16: return try visitor.visit(UInt16.self)
    case .uint32: return try visitor.visit(UInt32.self)
    case .uint64: return try visitor.visit(UInt64.self)
    default: throw .unsupportedType(op: op, dtype: dtype.onnxName)
    }
}
