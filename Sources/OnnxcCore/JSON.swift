/// A JSON value with ordered object keys, so every report and dump prints deterministically in the order the
/// code chose (Foundation's `JSONSerialization` neither keeps order nor prints floats reproducibly).
public indirect enum JSON: Sendable, Equatable {
    case null
    case bool(Bool)
    case int(Int64)
    case double(Double)
    case string(String)
    case array([JSON])
    case object([(String, JSON)])

    public static func == (lhs: JSON, rhs: JSON) -> Bool {
        switch (lhs, rhs) {
        case (.null, .null): true
        case (.bool(let a), .bool(let b)): a == b
        case (.int(let a), .int(let b)): a == b
        case (.double(let a), .double(let b)): a == b || (a.isNaN && b.isNaN)
        case (.string(let a), .string(let b)): a == b
        case (.array(let a), .array(let b)): a == b
        case (.object(let a), .object(let b)): a.count == b.count && zip(a, b).allSatisfy { $0.0 == $1.0 && $0.1 == $1.1 }
        default: false
        }
    }

    /// Serializes with two-space indentation (`pretty`) or on one line.
    public func serialized(pretty: Bool = true) -> String {
        var out = ""
        write(to: &out, indent: pretty ? 0 : nil)
        return out
    }

    private func write(to out: inout String, indent: Int?) {
        switch self {
        case .null: out += "null"
        case .bool(let value): out += value ? "true" : "false"
        case .int(let value): out += String(value)
        case .double(let value): out += JSON.format(value)
        case .string(let value): JSON.quote(value, into: &out)
        case .array(let items):
            writeContainer(items.map { (nil, $0) }, open: "[", close: "]", into: &out, indent: indent)
        case .object(let members):
            writeContainer(members.map { ($0.0, $0.1) }, open: "{", close: "}", into: &out, indent: indent)
        }
    }

    private func writeContainer(_ items: [(String?, JSON)], open: String, close: String, into out: inout String, indent: Int?) {
        out += open
        guard !items.isEmpty else {
            out += close
            return
        }
        // Arrays of scalars stay on one line even when pretty: shapes and attribute lists read better that way.
        let scalarsOnly = items.allSatisfy { $0.0 == nil && !$0.1.isContainer }
        let inner = scalarsOnly ? nil : indent.map { $0 + 2 }
        for (index, (key, value)) in items.enumerated() {
            if index > 0 { out += scalarsOnly && indent != nil ? ", " : "," }
            if let inner { out += "\n" + String(repeating: " ", count: inner) }
            if let key {
                JSON.quote(key, into: &out)
                out += indent == nil ? ":" : ": "
            }
            value.write(to: &out, indent: inner ?? indent)
        }
        if inner != nil, let indent { out += "\n" + String(repeating: " ", count: indent) }
        out += close
    }

    private var isContainer: Bool {
        switch self {
        case .array, .object: true
        default: false
        }
    }

    /// Shortest round-tripping decimal; JSON has no NaN or infinity, so those become strings.
    public static func format(_ value: Double) -> String {
        if value.isNaN { return "\"NaN\"" }
        if value.isInfinite { return value > 0 ? "\"Infinity\"" : "\"-Infinity\"" }
        if value == value.rounded(), abs(value) < 1e15 { return String(Int64(value)) + ".0" }
        return "\(value)"
    }

    public static func quote(_ string: String, into out: inout String) {
        out += "\""
        for scalar in string.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case _ where scalar.value < 0x20:
                let hex = String(scalar.value, radix: 16)
                out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            default: out.unicodeScalars.append(scalar)
            }
        }
        out += "\""
    }
}
