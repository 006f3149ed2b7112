import OnnxcCore
public import OnnxcIR

/// The int8 weights of a QDQ model re-encoded as uint8 with zero point z + 128: every dequantized value is unchanged.
///
/// ONNX Runtime fuses DequantizeLinear → Conv/Gemm/MatMul into integer kernels. On x86 without VNNI its u8 × s8
/// kernels multiply with `vpmaddubsw`, which adds two u8·s8 products into an int16 and saturates once the pair
/// exceeds 32767 (255 · 127 · 2 = 64770). With symmetric per-channel weights every channel holds a ±127, so real
/// models hit it: on an AVX2 machine 17 of the digits CNN's 450 test images change class. Its u8 × u8 kernels widen
/// to int16 first and are exact on every CPU, at some speed on VNNI machines (`onnxc quantize --weight-type int8`).
public enum UnsignedWeightEncoding {
    /// Ops whose weight (input 1) ONNX Runtime runs on its integer GEMM once the Q/DQ pairs around them are fused.
    static let integerGemmOps: Set<String> = ["Conv", "ConvTranspose", "Gemm", "MatMul"]

    /// The model with those weights as uint8, and how many weight tensors changed. A weight or zero point that
    /// anything else reads (another op, a subgraph, a graph input or output) keeps its encoding, and so does its partner.
    public static func apply(_ model: Model) -> (Model, Int) {
        let graph = model.graph
        var readers: [String: [(node: Node, index: Int)]] = [:]
        for node in graph.nodes {
            for (index, input) in node.inputs.enumerated() { readers[input, default: []].append((node, index)) }
        }
        var pinned = Set(graph.outputs.map(\.name) + graph.inputs.map(\.name))
        for node in graph.nodes { for subgraph in node.subgraphs { pinned.formUnion(subgraphReads(subgraph)) } }
        var unsigned: [String: Tensor] = [:]
        for tensor in graph.initializers where tensor.dtype == .int8 { unsigned[tensor.name] = shifted(tensor) }
        // The DequantizeLinear nodes (by output) whose every reader is the weight input of an integer GEMM op.
        var candidates: [String: (weight: String, zero: String)] = [:]
        for node in graph.nodes where node.opType == "DequantizeLinear" && node.domain == defaultDomain && node.inputs.count == 3 {
            guard let output = node.outputs.first, !pinned.contains(output), unsigned[node.inputs[0]] != nil, unsigned[node.inputs[2]] != nil,
                  let users = readers[output], !users.isEmpty,
                  users.allSatisfy({ integerGemmOps.contains($0.node.opType) && $0.node.domain == defaultDomain && $0.index == 1 })
            else { continue }
            candidates[output] = (node.inputs[0], node.inputs[2])
        }
        // A tensor changes only if every reader is a candidate; dropping one candidate can drop others that share
        // its zero point or weight, so this runs to a fixed point.
        while true {
            let tensors = Set(candidates.values.flatMap { [$0.weight, $0.zero] })
            let blocked = tensors.filter { name in
                pinned.contains(name) || (readers[name] ?? []).contains { reader in
                    reader.node.opType != "DequantizeLinear" || candidates[reader.node.outputs.first ?? ""] == nil
                }
            }
            if blocked.isEmpty { break }
            candidates = candidates.filter { !blocked.contains($0.value.weight) && !blocked.contains($0.value.zero) }
        }
        let weights = Set(candidates.values.map(\.weight)), tensors = weights.union(candidates.values.map(\.zero))
        var result = model
        var changed = 0
        for (i, tensor) in graph.initializers.enumerated() where tensors.contains(tensor.name) {
            guard let encoded = unsigned[tensor.name] else { continue }
            result.graph.initializers[i] = encoded
            if weights.contains(tensor.name) { changed += 1 }
        }
        result.graph.valueInfo.removeAll { tensors.contains($0.name) }
        return (result, changed)
    }

    /// Every name a subgraph (and its own subgraphs) reads: outer-scope initializers it captures stay as they are.
    static func subgraphReads(_ graph: Graph) -> Set<String> {
        var names = Set(graph.nodes.flatMap(\.inputs))
        for node in graph.nodes { for subgraph in node.subgraphs { names.formUnion(subgraphReads(subgraph)) } }
        return names
    }

    /// An int8 tensor's bytes plus 128, as uint8: q − z is the same for the weight and its zero point.
    static func shifted(_ tensor: Tensor) -> Tensor? {
        guard let bytes = tensor.data.bytes else { return nil }
        let values = bytes.withUnsafeBytes { raw in raw.map { $0 ^ 0x80 } }
        guard let data = try? TensorData(dtype: .uint8, dims: tensor.dims, payload: .bytes(ByteSlice(copying: values))) else { return nil }
        var result = tensor
        result.data = data
        result.externalSource = nil
        return result
    }
}
