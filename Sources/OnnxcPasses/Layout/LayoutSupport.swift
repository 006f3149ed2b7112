import OnnxcCore
import OnnxcIR

/// What the layout passes share: value types by name, Transpose nodes, permutation algebra and the
/// permutation of constant tensors.
enum LayoutSupport {
    /// Every tensor type the graph level knows: value infos, inputs, outputs and initializers.
    static func tensorTypes(_ graph: Graph) -> [String: TensorType] {
        var types: [String: TensorType] = [:]
        for info in graph.inputs + graph.valueInfo + graph.outputs {
            if let t = info.type?.tensorType { types[info.name] = t }
        }
        for tensor in graph.initializers {
            types[tensor.name] = TensorType(tensor.dtype, Shape(tensor.data.dims.map(Dim.fixed)))
        }
        return types
    }

    static func transpose(_ input: String, to output: String, perm: [Int64], name: String) -> Node {
        Node(name: name, opType: "Transpose", inputs: [input], outputs: [output], attributes: [Attribute("perm", .ints(perm))])
    }

    /// The perm of a Transpose node, when it is given and is a permutation.
    static func perm(_ node: Node) -> [Int]? {
        guard node.opType == "Transpose", node.domain.isEmpty, case .ints(let p)? = node.attribute("perm") else { return nil }
        let perm = p.map { Int(clamping: $0) }
        guard Set(perm) == Set(0..<perm.count) else { return nil }
        return perm
    }

    static func inverse(_ perm: [Int]) -> [Int] {
        var inverse = [Int](repeating: 0, count: perm.count)
        for (i, p) in perm.enumerated() { inverse[p] = i }
        return inverse
    }

    /// `data` right-aligned to `rank` dims (leading 1s, as broadcasting reads it) and then transposed by `perm`
    /// (output axis i is input axis perm[i]). Nil for strings and sub-byte types, and for tensors of higher rank.
    static func permuted(_ data: TensorData, rank: Int, perm: [Int]) -> TensorData? {
        guard data.dims.count <= rank, perm.count == rank, case .bytes(let slice) = data.payload,
              let width = data.dtype.bitWidth, width % 8 == 0, width > 0, data.dtype != .string else { return nil }
        let bytesPerElement = width / 8
        let dims = [Int64](repeating: 1, count: rank - data.dims.count) + data.dims
        let shape = dims.map { Int($0) }
        let outShape = perm.map { shape[$0] }
        var inStrides = [Int](repeating: 1, count: rank)
        for d in stride(from: rank - 2, through: 0, by: -1) { inStrides[d] = inStrides[d + 1] * shape[d + 1] }
        let count = data.elementCount
        var out = [UInt8](repeating: 0, count: count * bytesPerElement)
        slice.withUnsafeBytes { source in
            var index = [Int](repeating: 0, count: rank)
            for o in 0..<count {
                var offset = 0
                for d in 0..<rank { offset += index[d] * inStrides[perm[d]] }
                for b in 0..<bytesPerElement { out[o * bytesPerElement + b] = source[offset * bytesPerElement + b] }
                var d = rank - 1
                while d >= 0 {
                    index[d] += 1
                    if index[d] < outShape[d] { break }
                    index[d] = 0
                    d -= 1
                }
            }
        }
        return try? TensorData(dtype: data.dtype, dims: outShape.map { Int64($0) }, payload: .bytes(ByteSlice(copying: out)))
    }

    /// The element count of a tensor type with symbolic and unknown dims counted as 1 (1 for an unknown shape): a
    /// cost estimate that compares tensors sharing their symbolic dims correctly.
    static func approximateElements(_ type: TensorType?) -> Double {
        guard let shape = type?.shape else { return 1 }
        return shape.dims.reduce(1.0) { $0 * Double(max($1.fixedValue ?? 1, 0)) }
    }

    /// Whether a value's shape is all 1s (a broadcast scalar: the same under every permutation) of rank at most
    /// `rank` (a higher-rank one would raise the rank of a broadcasting op's result past the permutation's).
    static func isScalarLike(_ type: TensorType?, rank: Int) -> Bool {
        guard let shape = type?.shape, shape.rank <= rank else { return false }
        return shape.dims.allSatisfy { $0.fixedValue == 1 }
    }
}
