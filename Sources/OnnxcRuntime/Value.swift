public import OnnxcCore

/// A runtime value: what flows along a graph edge. Most are tensors; sequence and optional ops use the rest.
public enum Value: Sendable {
    case tensor(Tensor)
    case sequence(elementType: DType, [Tensor])
    /// An optional with no value (an optional with a value is just that value, tagged `isOptional` in types).
    case none(OptionalType)

    public indirect enum OptionalType: Sendable, Equatable {
        case tensor(DType)
        case sequence(DType)
    }

    public var tensor: Tensor? {
        if case .tensor(let t) = self { return t }
        return nil
    }
}

/// A node attribute as kernels see it: decoded once when the graph is lowered.
public indirect enum AttributeValue: Sendable {
    case float(Float)
    case int(Int64)
    case string(String)
    case tensor(Tensor)
    case graph(RuntimeGraph)
    case floats([Float])
    case ints([Int64])
    case strings([String])
    case tensors([Tensor])
    case graphs([RuntimeGraph])
    /// A TYPE_PROTO attribute, reduced to what kernels need (Optional/SequenceEmpty's element type).
    case type(Value.OptionalType?)
}

/// The attributes of one node, with typed lookups that fall back to the operator's default.
public struct Attributes: Sendable {
    public var values: [String: AttributeValue]

    public init(_ values: [String: AttributeValue] = [:]) { self.values = values }

    public func has(_ name: String) -> Bool { values[name] != nil }

    public func int(_ name: String, _ fallback: Int64) -> Int64 {
        if case .int(let v) = values[name] { return v }
        return fallback
    }

    public func int(_ name: String) -> Int64? {
        if case .int(let v) = values[name] { return v }
        return nil
    }

    public func float(_ name: String, _ fallback: Float) -> Float {
        if case .float(let v) = values[name] { return v }
        if case .int(let v) = values[name] { return Float(v) }
        return fallback
    }

    public func string(_ name: String, _ fallback: String) -> String {
        if case .string(let v) = values[name] { return v }
        return fallback
    }

    public func ints(_ name: String) -> [Int64]? {
        if case .ints(let v) = values[name] { return v }
        return nil
    }

    public func floats(_ name: String) -> [Float]? {
        if case .floats(let v) = values[name] { return v }
        return nil
    }

    public func strings(_ name: String) -> [String]? {
        if case .strings(let v) = values[name] { return v }
        return nil
    }

    public func tensor(_ name: String) -> Tensor? {
        if case .tensor(let v) = values[name] { return v }
        return nil
    }

    public func graph(_ name: String) -> RuntimeGraph? {
        if case .graph(let v) = values[name] { return v }
        return nil
    }
}
