import OnnxcCore

/// Options shared by the text, JSON and DOT dumps.
public struct DumpOptions: Sendable {
    /// Print initializer values (the first `maximumValues` of each, plus statistics).
    public var includeWeights: Bool
    public var maximumValues: Int

    public init(includeWeights: Bool = false, maximumValues: Int = 16) {
        self.includeWeights = includeWeights
        self.maximumValues = maximumValues
    }
}

/// Shared spellings, so the three dumps name things identically.
enum DumpFormatting {
    /// `%name`, quoted when it holds characters that would make the line ambiguous.
    static func value(_ name: String) -> String {
        if name.isEmpty { return "%\"\"" }
        let plain = name.unicodeScalars.allSatisfy { scalar in
            switch scalar {
            case "a"..."z", "A"..."Z", "0"..."9", "_", ".", ":", "/", "-": true
            default: false
            }
        }
        if plain { return "%" + name }
        var quoted = "%"
        JSON.quote(name, into: &quoted)
        return quoted
    }

    static func quoted(_ text: String) -> String {
        var out = ""
        JSON.quote(text, into: &out)
        return out
    }

    static func string(_ bytes: [UInt8]) -> String { String(decoding: bytes, as: UTF8.self) }

    /// Shortest text that reads back as the same `Float`.
    static func float(_ value: Float) -> String {
        if value.isNaN { return "nan" }
        if value.isInfinite { return value > 0 ? "inf" : "-inf" }
        return "\(value)"
    }

    static func tensorSummary(_ tensor: Tensor, maximumValues: Int) -> String {
        var text = "tensor<\(tensor.type)>"
        if tensor.data.elementCount <= maximumValues {
            text += "{" + tensor.data.formattedValues(limit: maximumValues).joined(separator: ",") + "}"
        }
        return text
    }

    /// min / max / mean of a numeric tensor, for `--weights`; nil for strings and complex types.
    static func statistics(_ data: TensorData) -> (min: Double, max: Double, mean: Double)? {
        guard data.elementCount > 0, data.numericValue(at: 0) != nil else { return nil }
        var low = Double.infinity, high = -Double.infinity, sum = 0.0
        for i in 0..<data.elementCount {
            guard let v = data.numericValue(at: i) else { return nil }
            low = Swift.min(low, v)
            high = Swift.max(high, v)
            sum += v
        }
        return (low, high, sum / Double(data.elementCount))
    }

    static func opsets(_ imports: [OpsetImport]) -> String {
        imports.map { "\($0.domain.isEmpty ? "ai.onnx" : $0.domain):\($0.version)" }.joined(separator: ", ")
    }

    /// Every value's declared type in one graph level, for annotating node outputs.
    static func typeTable(_ graph: Graph) -> [String: ValueType] {
        var table: [String: ValueType] = [:]
        for tensor in graph.initializers { table[tensor.name] = ValueType(.tensor(tensor.type)) }
        for info in graph.valueInfo { if let type = info.type { table[info.name] = type } }
        for info in graph.inputs { if let type = info.type { table[info.name] = type } }
        for info in graph.outputs { if let type = info.type { table[info.name] = type } }
        return table
    }
}
