import OnnxcCore
import OnnxcIR

/// What the fusion passes share: reading constant float tensors as `Double`, writing them back in their own
/// element type, single-use checks and fresh value names. Weights are recomputed in double precision so a
/// fused model differs from the original by one rounding of the stored type, not by a chain of them.
enum FusionSupport {
    /// Element types whose weights the fusions rewrite (what Conv, Gemm and BatchNormalization all accept).
    static let floatTypes: Set<DType> = [.float, .double, .float16]

    /// An initializer that is not also a graph input (an input's initializer is only a default the caller may
    /// override, so its value is unknown until run time).
    static func constant(_ name: String, in graph: Graph) -> Tensor? {
        guard !name.isEmpty, let tensor = graph.initializer(named: name),
              !graph.inputs.contains(where: { $0.name == name }) else { return nil }
        return tensor
    }

    /// The elements of a float, double or float16 tensor; nil for other types.
    static func doubles(_ tensor: Tensor) -> [Double]? {
        guard floatTypes.contains(tensor.dtype) else { return nil }
        // float32 weights (nearly all of them) are read in bulk; the per-element path handles the rest.
        if tensor.dtype == .float, let bytes = tensor.data.bytes {
            return bytes.withUnsafeBytes { raw in
                (0..<tensor.data.elementCount).map { Double(Float(bitPattern: UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: $0 * 4, as: UInt32.self)))) }
            }
        }
        var values: [Double] = []
        values.reserveCapacity(tensor.data.elementCount)
        for i in 0..<tensor.data.elementCount {
            guard let v = tensor.data.numericValue(at: i) else { return nil }
            values.append(v)
        }
        return values
    }

    /// A tensor of `dtype` (float, double or float16) holding `values` rounded to that type.
    static func tensor(_ name: String, _ dtype: DType, _ dims: [Int64], _ values: [Double]) -> Tensor? {
        var bytes: [UInt8] = []
        switch dtype {
        case .float:
            bytes.reserveCapacity(values.count * 4)
            for v in values { withUnsafeBytes(of: Float(v).bitPattern.littleEndian) { bytes.append(contentsOf: $0) } }
        case .double:
            bytes.reserveCapacity(values.count * 8)
            for v in values { withUnsafeBytes(of: v.bitPattern.littleEndian) { bytes.append(contentsOf: $0) } }
        case .float16:
            bytes.reserveCapacity(values.count * 2)
            for v in values { withUnsafeBytes(of: Float16(Float(v)).bitPattern.littleEndian) { bytes.append(contentsOf: $0) } }
        default:
            return nil
        }
        guard let data = try? TensorData(dtype: dtype, dims: dims, payload: .bytes(ByteSlice(copying: bytes))) else { return nil }
        return Tensor(name: name, data: data)
    }

    /// The node reading `value` when exactly one node input reads it, no subgraph captures it and it is not a
    /// graph output: only then can the producer and that consumer become one node.
    static func soleConsumer(of value: String, _ index: GraphIndex) -> (node: Int, input: Int)? {
        let uses = index.consumers(of: value)
        guard uses.count == 1, let use = uses.first, let input = use.input, !index.isGraphOutput(value) else { return nil }
        return (use.node, input)
    }

    /// Every name the graph level defines or annotates, so new initializers get names nothing else uses (a
    /// value_info left behind by an earlier rewrite would otherwise give a new initializer a stale type).
    static func takenNames(_ graph: Graph) -> Set<String> {
        var names = Set(graph.inputs.map(\.name)).union(graph.initializers.map(\.name)).union(graph.outputs.map(\.name))
        names.formUnion(graph.sparseInitializers.map(\.name))
        names.formUnion(graph.valueInfo.map(\.name))
        for node in graph.nodes { names.formUnion(node.outputs) }
        names.formUnion(graph.capturedValues)
        return names
    }

    static func freshName(_ base: String, _ taken: inout Set<String>) -> String {
        var candidate = base
        var counter = 1
        while taken.contains(candidate) {
            candidate = "\(base)_\(counter)"
            counter += 1
        }
        taken.insert(candidate)
        return candidate
    }

    /// Inference BatchNormalization as a per-channel affine map y = x·scale + shift, with
    /// scale = γ/√(var+ε) and shift = β − mean·scale. Nil when BN is in training mode, normalizes per
    /// activation (`spatial = 0`), has used statistics outputs, or its parameters are not `channels` constants.
    static func batchNormAffine(_ node: Node, channels: Int, in graph: Graph, _ index: GraphIndex) -> (scale: [Double], shift: [Double])? {
        guard node.opType == "BatchNormalization", node.domain.isEmpty, node.inputs.count == 5 else { return nil }
        for extra in node.outputs.dropFirst() where !extra.isEmpty && !index.isUnused(extra) { return nil }
        if case .int(let training)? = node.attribute("training_mode"), training != 0 { return nil }
        if case .int(let spatial)? = node.attribute("spatial"), spatial == 0 { return nil }
        if case .int(let isTest)? = node.attribute("is_test"), isTest == 0 { return nil }
        var epsilon = 1e-5
        if case .float(let e)? = node.attribute("epsilon") { epsilon = Double(e) }
        var parameters: [[Double]] = []
        for name in node.inputs.dropFirst() {
            guard let tensor = constant(name, in: graph), tensor.data.elementCount == channels,
                  let values = doubles(tensor) else { return nil }
            parameters.append(values)
        }
        let (gamma, beta, mean, variance) = (parameters[0], parameters[1], parameters[2], parameters[3])
        var scale = [Double](repeating: 0, count: channels), shift = scale
        for c in 0..<channels {
            let s = gamma[c] / (variance[c] + epsilon).squareRoot()
            guard s.isFinite else { return nil }
            scale[c] = s
            shift[c] = beta[c] - mean[c] * s
        }
        return (scale, shift)
    }

    static func ints(_ node: Node, _ name: String) -> [Int64]? {
        if case .ints(let values)? = node.attribute(name) { return values }
        return nil
    }

    static func int(_ node: Node, _ name: String) -> Int64? {
        if case .int(let value)? = node.attribute(name) { return value }
        return nil
    }

    static func float(_ node: Node, _ name: String) -> Float? {
        if case .float(let value)? = node.attribute(name) { return value }
        return nil
    }

    static func string(_ node: Node, _ name: String) -> String? {
        if case .string(let bytes)? = node.attribute(name) { return String(decoding: bytes, as: UTF8.self) }
        return nil
    }

    /// `node` with attribute `name` set to `value` (replaced in place, or appended).
    static func setting(_ name: String, _ value: AttributeValue, on node: Node) -> Node {
        var copy = node
        if let i = copy.attributes.firstIndex(where: { $0.name == name }) {
            copy.attributes[i].value = value
        } else {
            copy.attributes.append(Attribute(name, value))
        }
        return copy
    }
}
