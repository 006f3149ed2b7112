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
        "\(domain)::TreeEnsemble": { inputs, context throws(RuntimeError) in
            [.tensor(try TreeEnsemble(context.attributes).predict(try context.tensor(inputs, 0)))]
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

/// `ai.onnx.ml` TreeEnsemble (opset 5): trees of comparison nodes over features, leaves carrying (target,
/// weight), aggregated per target. Every index from the attributes is validated before a tree is walked, and
/// a walk is bounded by the node count, so a malformed (cyclic) tree is an error rather than a hang.
private struct TreeEnsemble {
    let splits: [Double], features: [Int64], modes: [Int64]
    let trueIds: [Int64], falseIds: [Int64], trueLeaf: [Int64], falseLeaf: [Int64]
    let leafTargets: [Int64], leafWeights: [Double], roots: [Int64]
    let missingTracksTrue: [Int64], aggregate: Int64, postTransform: Int64, targets: Int
    /// Per MEMBER node (in node order), its set of values: NaN-separated runs of `membership_values`.
    let members: [Int: Set<Double>]

    init(_ a: Attributes) throws(RuntimeError) {
        func required(_ name: String) throws(RuntimeError) -> [Int64] {
            guard let v = a.ints(name) else { throw .invalidArgument("TreeEnsemble needs attribute \(name)") }
            return v
        }
        guard let s = a.tensor("nodes_splits"), let w = a.tensor("leaf_weights") else {
            throw .invalidArgument("TreeEnsemble needs nodes_splits and leaf_weights")
        }
        splits = s.doubles()
        leafWeights = w.doubles()
        features = try required("nodes_featureids")
        // nodes_modes is a uint8 tensor in opset 5.
        guard let modeTensor = a.tensor("nodes_modes") else { throw .invalidArgument("TreeEnsemble needs attribute nodes_modes") }
        modes = modeTensor.int64s()
        trueIds = try required("nodes_truenodeids")
        falseIds = try required("nodes_falsenodeids")
        trueLeaf = try required("nodes_trueleafs")
        falseLeaf = try required("nodes_falseleafs")
        leafTargets = try required("leaf_targetids")
        roots = try required("tree_roots")
        missingTracksTrue = a.ints("nodes_missing_value_tracks_true") ?? []
        aggregate = a.int("aggregate_function", 1)
        postTransform = a.int("post_transform", 0)
        targets = Int(a.int("n_targets", 1))
        let nodeCount = splits.count
        guard [features, modes, trueIds, falseIds, trueLeaf, falseLeaf].allSatisfy({ $0.count == nodeCount }),
              leafTargets.count == leafWeights.count, targets > 0 else {
            throw .invalidArgument("TreeEnsemble: node and leaf attribute lists differ in length")
        }
        for (ids, leaf) in [(trueIds, trueLeaf), (falseIds, falseLeaf)] {
            for (id, isLeaf) in zip(ids, leaf) where id < 0 || id >= Int64(isLeaf != 0 ? leafTargets.count : nodeCount) {
                throw .invalidArgument("TreeEnsemble: branch target \(id) is out of range")
            }
        }
        guard postTransform == 0 else { throw .invalidArgument("TreeEnsemble: post_transform \(postTransform) is not supported yet (only NONE)") }
        var sets: [Int: Set<Double>] = [:]
        var values = (a.tensor("membership_values")?.doubles() ?? [])[...]
        for (node, mode) in modes.enumerated() where mode == 6 {
            var set = Set<Double>()
            while let value = values.popFirst(), !value.isNaN { set.insert(value) }
            sets[node] = set
        }
        members = sets
        let targetCount = Int64(targets)
        guard roots.allSatisfy({ $0 >= 0 && $0 < Int64(nodeCount) }), leafTargets.allSatisfy({ $0 >= 0 && $0 < targetCount }) else {
            throw .invalidArgument("TreeEnsemble: a tree root or leaf target is out of range")
        }
    }

    /// (target, weight) of the leaf `x` reaches from `root`.
    private func leaf(_ x: [Double], root: Int) throws(RuntimeError) -> (Int, Double) {
        // A root whose two branches are the same leaf is itself a leaf.
        if trueLeaf[root] != 0 && falseLeaf[root] != 0 && trueIds[root] == falseIds[root] {
            let l = Int(trueIds[root])
            return (Int(leafTargets[l]), leafWeights[l])
        }
        var node = root
        for _ in 0...splits.count {
            let feature = Int(features[node])
            guard feature >= 0 && feature < x.count else { throw .invalidArgument("TreeEnsemble: feature \(feature) is out of range") }
            let v = x[feature], split = splits[node]
            var goTrue: Bool
            switch modes[node] {
            case 0: goTrue = v <= split
            case 1: goTrue = v < split
            case 2: goTrue = v >= split
            case 3: goTrue = v > split
            case 4: goTrue = v == split
            case 5: goTrue = v != split
            case 6: goTrue = members[node]?.contains(v) ?? false
            default: throw .invalidArgument("TreeEnsemble: unknown node mode \(modes[node])")
            }
            if v.isNaN && node < missingTracksTrue.count && missingTracksTrue[node] != 0 { goTrue = true }
            let next = Int(goTrue ? trueIds[node] : falseIds[node])
            if (goTrue ? trueLeaf[node] : falseLeaf[node]) != 0 { return (Int(leafTargets[next]), leafWeights[next]) }
            node = next
        }
        throw .invalidArgument("TreeEnsemble: a tree has a cycle")
    }

    func predict(_ input: Tensor) throws(RuntimeError) -> Tensor {
        guard input.rank == 2 else { throw .invalidShape("TreeEnsemble: X must be 2-D, got \(input.shape)") }
        let rows = input.shape[0], columns = input.shape[1]
        let values = input.doubles()
        var result = [Double](repeating: 0, count: rows * targets)
        for row in 0..<rows {
            let x = Array(values[(row * columns)..<((row + 1) * columns)])
            var slots = [Double](repeating: aggregate == 2 ? .greatestFiniteMagnitude : (aggregate == 3 ? -.greatestFiniteMagnitude : 0), count: targets)
            for root in roots {
                let (target, weight) = try leaf(x, root: Int(root))
                switch aggregate {
                case 0: slots[target] += weight / Double(roots.count)
                case 1: slots[target] += weight
                case 2: slots[target] = min(slots[target], weight)
                case 3: slots[target] = max(slots[target], weight)
                default: throw .invalidArgument("TreeEnsemble: unknown aggregate_function \(aggregate)")
                }
            }
            for t in 0..<targets { result[row * targets + t] = slots[t] }
        }
        return try MLKernels.castDoubles(result, to: input.dtype, shape: [rows, targets], op: "TreeEnsemble")
    }
}
