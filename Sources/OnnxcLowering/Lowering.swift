public import OnnxcCore
public import OnnxcIR
public import OnnxcRuntime

typealias RTensor = OnnxcRuntime.Tensor

/// Converts the compiler's IR into the runtime's graph: attributes decoded once, initializers copied into
/// runtime tensors, each node tagged with the opset of its domain.
public enum Lowering {
    public static func lower(_ model: Model) throws(RuntimeError) -> RuntimeGraph {
        try lower(model.graph, opsets: opsets(model), weights: true)
    }

    /// The operators of `model` (subgraphs included) that have no kernel, all at once, without converting
    /// any weight: a question about the graph should not cost the model's size in memory.
    public static func unsupportedOps(_ model: Model) -> [RuntimeError.UnsupportedOp] {
        do {
            _ = try Executor(graph: try lower(model.graph, opsets: opsets(model), weights: false))
            return []
        } catch {
            if case .unsupportedOps(let ops) = error { return ops }
            return []
        }
    }

    static func opsets(_ model: Model) -> [String: Int] {
        var opsets: [String: Int] = [:]
        for opset in model.opsetImports { opsets[canonicalDomain(opset.domain)] = Int(opset.version) }
        return opsets
    }

    static func lower(_ graph: Graph, opsets: [String: Int], weights: Bool) throws(RuntimeError) -> RuntimeGraph {
        var initializers: [String: RTensor] = [:]
        if weights {
            for tensor in graph.initializers { initializers[tensor.name] = try RTensor(tensor.data) }
            for sparse in graph.sparseInitializers { initializers[sparse.name] = try densify(sparse) }
        }
        var nodes: [RuntimeNode] = []
        nodes.reserveCapacity(graph.nodes.count)
        for node in graph.nodes {
            var attributes: [String: OnnxcRuntime.AttributeValue] = [:]
            for attribute in node.attributes {
                attributes[attribute.name] = try lower(attribute.value, opsets: opsets, weights: weights)
            }
            nodes.append(RuntimeNode(name: node.name, opType: node.opType, domain: canonicalDomain(node.domain),
                                     opset: opsets[canonicalDomain(node.domain)] ?? 1, inputs: node.inputs,
                                     outputs: node.outputs, attributes: Attributes(attributes)))
        }
        return RuntimeGraph(name: graph.name, inputs: graph.inputs.map(info),
                            outputs: graph.outputs.map(info), initializers: initializers, nodes: nodes)
    }

    static func info(_ value: ValueInfo) -> RuntimeValueInfo {
        let tensor = value.type?.tensorType
        let shape = tensor?.shape.map { $0.dims.map { $0.fixedValue.map { Int($0) } } }
        return RuntimeValueInfo(name: value.name, dtype: tensor?.elementType, shape: shape,
                                shapeText: value.type?.description ?? "?")
    }

    static func lower(_ value: OnnxcIR.AttributeValue, opsets: [String: Int], weights: Bool) throws(RuntimeError) -> OnnxcRuntime.AttributeValue {
        switch value {
        case .float(let v): return .float(v)
        case .int(let v): return .int(v)
        case .string(let v): return .string(String(decoding: v, as: UTF8.self))
        case .tensor(let t): return .tensor(try RTensor(t.data))
        case .graph(let g): return .graph(try lower(g, opsets: opsets, weights: weights))
        case .sparseTensor(let s): return .tensor(try densify(s))
        case .typeProto(let t): return .type(optionalType(t))
        case .floats(let v): return .floats(v)
        case .ints(let v): return .ints(v)
        case .strings(let v): return .strings(v.map { String(decoding: $0, as: UTF8.self) })
        case .tensors(let v):
            var out: [RTensor] = []
            for t in v { out.append(try RTensor(t.data)) }
            return .tensors(out)
        case .graphs(let v):
            var out: [RuntimeGraph] = []
            for g in v { out.append(try lower(g, opsets: opsets, weights: weights)) }
            return .graphs(out)
        case .sparseTensors(let v):
            var out: [RTensor] = []
            for s in v { out.append(try densify(s)) }
            return .tensors(out)
        case .typeProtos(let v): return .type(v.first.flatMap(optionalType))
        }
    }

    /// The element type an Optional/Sequence type names, as the runtime's empty-value marker needs it.
    static func optionalType(_ type: ValueType) -> Value.OptionalType? {
        switch type.kind {
        case .tensor(let t), .sparseTensor(let t): return .tensor(t.elementType)
        case .sequence(let element): return element?.tensorType.map { .sequence($0.elementType) }
        case .optional(let element): return element.flatMap(optionalType)
        case .map, .unspecified: return nil
        }
    }

    /// A runtime tensor as IR tensor data (a copy): what folding and compiling store as constants.
    public static func tensorData(_ tensor: OnnxcRuntime.Tensor) -> TensorData? {
        let dims = tensor.shape.map(Int64.init)
        if tensor.dtype == .string {
            return try? TensorData(dtype: .string, dims: dims, payload: .strings((tensor.strings ?? []).map { Array($0.utf8) }))
        }
        let bytes = tensor.withBytes { Array($0) }
        return try? TensorData(dtype: tensor.dtype, dims: dims, payload: .bytes(ByteSlice(copying: bytes)))
    }

    /// A sparse tensor (COO, linear or per-dim indices) as a dense one.
    public static func densify(_ sparse: SparseTensor) throws(RuntimeError) -> OnnxcRuntime.Tensor {
        let values = try RTensor(sparse.values.data)
        let indices = try RTensor(sparse.indices.data).int64s()
        let shape = sparse.dims.map { Int($0) }
        let dense = try RTensor(zeros: values.dtype, shape: shape)
        let total = dense.count
        let width = values.dtype.storageBytes
        let strides = Broadcast.strides(shape)
        let perDim = sparse.indices.dims.count == 2
        try values.withBytes { (source) throws(RuntimeError) in
            try dense.withMutableBytes { (target) throws(RuntimeError) in
                for k in 0..<values.count {
                    var linear = 0
                    if perDim {
                        for d in 0..<shape.count { linear += Int(indices[k * shape.count + d]) * strides[d] }
                    } else {
                        linear = Int(indices[k])
                    }
                    guard linear >= 0 && linear < total else { throw .invalidArgument("sparse index \(linear) is outside shape \(shape)") }
                    for byte in 0..<width { target[linear * width + byte] = source[k * width + byte] }
                }
            }
        }
        return dense
    }
}
