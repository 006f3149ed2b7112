import OnnxcCore

/// Classic-ML operators of the `ai.onnx.ml` domain that appear in node tests and scikit-learn exports.
enum MLKernels {
    static let domain = "ai.onnx.ml"

    static let table: [String: Kernel] = [
        "\(domain)::Binarizer": { inputs, context throws(RuntimeError) in
            let x = try context.tensor(inputs, 0)
            let threshold = Double(context.attributes.float("threshold", 0))
            let values = x.doubles().map { $0 > threshold ? 1.0 : 0.0 }
            return [.tensor(try castDoubles(values, to: x.dtype, shape: x.shape, op: "Binarizer"))]
        },
        "\(domain)::ArrayFeatureExtractor": { inputs, context throws(RuntimeError) in
            let x = try context.tensor(inputs, 0)
            let indices = try context.tensor(inputs, 1).int64s()
            guard let last = x.shape.last else { throw .invalidShape("ArrayFeatureExtractor: X must have rank 1 or more") }
            for index in indices where index < 0 || index >= Int64(last) {
                throw .invalidArgument("ArrayFeatureExtractor: index \(index) is outside [0, \(last))")
            }
            // Like ONNX Runtime, a vector input yields a one-row matrix.
            let shape = x.rank == 1 ? [1, indices.count] : Array(x.shape.dropLast()) + [indices.count]
            let rows = x.count / max(last, 1)
            let out = try Tensor(zeros: x.dtype, shape: shape)
            if x.dtype == .string {
                let strings = x.strings ?? []
                var picked: [String] = []
                for row in 0..<rows { for index in indices { picked.append(strings[row * last + Int(index)]) } }
                return [.tensor(Tensor(strings: picked, shape: shape))]
            }
            let width = x.dtype.storageBytes
            x.withBytes { source in
                out.withMutableBytes { target in
                    var o = 0
                    for row in 0..<rows {
                        for index in indices {
                            let from = (row * last + Int(index)) * width
                            for b in 0..<width { target[o + b] = source[from + b] }
                            o += width
                        }
                    }
                }
            }
            return [.tensor(out)]
        },
        "\(domain)::LabelEncoder": { inputs, context throws(RuntimeError) in
            try labelEncoder(try context.tensor(inputs, 0), context.attributes)
        },
    ]

    /// A lookup table from keys to values; unmatched keys get the default. Keys and values come from the
    /// `keys_*`/`values_*` list attributes or (opset 4) `keys_tensor`/`values_tensor`.
    private static func labelEncoder(_ x: Tensor, _ a: Attributes) throws(RuntimeError) -> [Value?] {
        enum Key: Hashable { case number(Double), text(String) }
        let keys: [Key]
        if let k = a.strings("keys_strings") { keys = k.map { .text($0) } }
        else if let k = a.ints("keys_int64s") { keys = k.map { .number(Double($0)) } }
        else if let k = a.floats("keys_floats") { keys = k.map { .number(Double($0)) } }
        else if let k = a.tensor("keys_tensor") { keys = k.dtype == .string ? (k.strings ?? []).map { .text($0) } : k.doubles().map { .number($0) } }
        else { throw .invalidArgument("LabelEncoder needs keys") }

        let inputs: [Key] = x.dtype == .string ? (x.strings ?? []).map { .text($0) } : x.doubles().map { .number($0) }
        func lookup<T>(_ values: [T], _ fallback: T) throws(RuntimeError) -> [T] {
            guard values.count == keys.count else { throw .invalidArgument("LabelEncoder: \(keys.count) keys but \(values.count) values") }
            var table: [Key: T] = [:]
            for (key, value) in zip(keys, values) where table[key] == nil { table[key] = value }
            return inputs.map { table[$0] ?? fallback }
        }
        if let v = a.strings("values_strings") {
            return [.tensor(Tensor(strings: try lookup(v, a.string("default_string", "_Unused")), shape: x.shape))]
        }
        if let v = a.ints("values_int64s") {
            return [.tensor(try Tensor(try lookup(v, a.int("default_int64", -1)), shape: x.shape))]
        }
        if let v = a.floats("values_floats") {
            return [.tensor(try Tensor(try lookup(v, a.float("default_float", -0.0)), shape: x.shape))]
        }
        if let v = a.tensor("values_tensor") {
            let fallback = a.tensor("default_tensor")
            if v.dtype == .string {
                return [.tensor(Tensor(strings: try lookup(v.strings ?? [], fallback?.strings?.first ?? "_Unused"), shape: x.shape))]
            }
            let values = try lookup(v.doubles(), fallback?.doubles().first ?? (v.dtype.isFloatingPoint ? -0.0 : -1))
            return [.tensor(try castDoubles(values, to: v.dtype, shape: x.shape, op: "LabelEncoder"))]
        }
        throw .invalidArgument("LabelEncoder needs values")
    }

    static func castDoubles(_ values: [Double], to dtype: DType, shape: [Int], op: String) throws(RuntimeError) -> Tensor {
        switch dtype {
        case .float: return try Tensor(values.map { Float($0) }, shape: shape)
        case .double: return try Tensor(values, shape: shape)
        case .int64: return try Tensor(values.map { Int64.from($0) }, shape: shape)
        case .int32: return try Tensor(values.map { Int32.from($0) }, shape: shape)
        case .int16: return try Tensor(values.map { Int16.from($0) }, shape: shape)
        default: throw .unsupportedType(op: op, dtype: dtype.onnxName)
        }
    }
}
