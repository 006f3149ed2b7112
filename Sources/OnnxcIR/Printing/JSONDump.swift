public import OnnxcCore

/// The JSON form of a model, for scripts:
/// `{"model": {...}, "graph": {"inputs", "outputs", "initializers", "nodes", ...}}`.
/// `graph.nodes` lists every node of the main graph in order; subgraphs nest under their attribute.
public enum JSONDump {
    public static func render(_ model: Model, options: DumpOptions = DumpOptions()) -> JSON {
        var modelMembers: [(String, JSON)] = [
            ("ir_version", .int(model.irVersion)),
            ("producer_name", .string(model.producerName)),
            ("producer_version", .string(model.producerVersion)),
            ("domain", .string(model.domain)),
            ("model_version", .int(model.modelVersion)),
            ("doc_string", .string(model.docString)),
            ("opset_imports", .array(model.opsetImports.map {
                .object([("domain", .string($0.domain)), ("version", .int($0.version))])
            })),
            ("metadata_props", pairs(model.metadataProps)),
        ]
        if !model.functions.isEmpty {
            modelMembers.append(("functions", .array(model.functions.map { function in
                .object([("name", .string(function.name)), ("domain", .string(function.domain)),
                         ("inputs", strings(function.inputs)), ("outputs", strings(function.outputs)),
                         ("nodes", .array(function.nodes.map { node($0, options: options) }))])
            })))
        }
        return .object([("model", .object(modelMembers)), ("graph", graph(model.graph, options: options))])
    }

    static func graph(_ graph: Graph, options: DumpOptions) -> JSON {
        var members: [(String, JSON)] = [
            ("name", .string(graph.name)),
            ("inputs", .array(graph.inputs.map(valueInfo))),
            ("outputs", .array(graph.outputs.map(valueInfo))),
            ("initializers", .array(graph.initializers.map { tensor($0, options: options) })),
            ("nodes", .array(graph.nodes.map { node($0, options: options) })),
        ]
        if !graph.sparseInitializers.isEmpty {
            members.append(("sparse_initializers", .array(graph.sparseInitializers.map { sparse in
                .object([("name", .string(sparse.name)), ("dtype", .string(sparse.values.dtype.onnxName)),
                         ("shape", .array(sparse.dims.map { .int($0) })), ("nnz", .int(Int64(sparse.values.data.elementCount)))])
            })))
        }
        if !graph.valueInfo.isEmpty { members.append(("value_info", .array(graph.valueInfo.map(valueInfo)))) }
        if !graph.metadataProps.isEmpty { members.append(("metadata_props", pairs(graph.metadataProps))) }
        return .object(members)
    }

    static func node(_ node: Node, options: DumpOptions) -> JSON {
        .object([
            ("name", .string(node.name)),
            ("op_type", .string(node.opType)),
            ("domain", .string(node.domain)),
            ("inputs", strings(node.inputs)),
            ("outputs", strings(node.outputs)),
            ("attributes", .object(node.attributes.map { ($0.name, attribute($0, options: options)) })),
        ])
    }

    static func attribute(_ attribute: Attribute, options: DumpOptions) -> JSON {
        if let reference = attribute.referencedAttribute { return .object([("ref_attr_name", .string(reference))]) }
        switch attribute.value {
        case .float(let v): return .double(Double(v))
        case .int(let v): return .int(v)
        case .string(let v): return .string(DumpFormatting.string(v))
        case .tensor(let t): return tensor(t, options: options, alwaysValues: true)
        case .graph(let g): return .object([("graph", graph(g, options: options))])
        case .sparseTensor(let s):
            return .object([("sparse_tensor", .object([("values", tensor(s.values, options: options, alwaysValues: true)),
                                                       ("indices", tensor(s.indices, options: options, alwaysValues: true)),
                                                       ("shape", .array(s.dims.map { .int($0) }))]))])
        case .typeProto(let t): return .object([("type", .string(t.description))])
        case .floats(let v): return .array(v.map { .double(Double($0)) })
        case .ints(let v): return .array(v.map { .int($0) })
        case .strings(let v): return .array(v.map { .string(DumpFormatting.string($0)) })
        case .tensors(let v): return .array(v.map { tensor($0, options: options, alwaysValues: true) })
        case .graphs(let v): return .array(v.map { .object([("graph", graph($0, options: options))]) })
        case .sparseTensors(let v): return .array(v.map { .object([("sparse_tensor", .string($0.name))]) })
        case .typeProtos(let v): return .array(v.map { .object([("type", .string($0.description))]) })
        }
    }

    static func valueInfo(_ info: ValueInfo) -> JSON {
        var members: [(String, JSON)] = [("name", .string(info.name))]
        if let tensor = info.type?.tensorType {
            members.append(("dtype", .string(tensor.elementType.onnxName)))
            members.append(("shape", shape(tensor.shape)))
        } else {
            members.append(("type", info.type.map { .string($0.description) } ?? .null))
        }
        return .object(members)
    }

    /// Known dims as numbers, symbolic ones as strings, unknown ones as null; an unknown rank is null.
    static func shape(_ shape: Shape?) -> JSON {
        guard let shape else { return .null }
        return .array(shape.dims.map { dim in
            switch dim {
            case .fixed(let v): .int(v)
            case .symbolic(let name): .string(name)
            case .unknown: .null
            }
        })
    }

    static func tensor(_ tensor: Tensor, options: DumpOptions, alwaysValues: Bool = false) -> JSON {
        var members: [(String, JSON)] = [
            ("name", .string(tensor.name)),
            ("dtype", .string(tensor.dtype.onnxName)),
            ("shape", .array(tensor.dims.map { .int($0) })),
        ]
        if let source = tensor.externalSource {
            members.append(("external", .object([("location", .string(source.location)), ("offset", .int(Int64(source.offset))),
                                                 ("length", .int(Int64(tensor.data.byteCount)))])))
        }
        if options.includeWeights || (alwaysValues && tensor.data.elementCount <= options.maximumValues) {
            members.append(("values", values(tensor.data, limit: options.maximumValues)))
            if options.includeWeights, let stats = DumpFormatting.statistics(tensor.data) {
                members.append(("min", .double(stats.min)))
                members.append(("max", .double(stats.max)))
                members.append(("mean", .double(stats.mean)))
            }
        }
        return .object(members)
    }

    static func values(_ data: TensorData, limit: Int) -> JSON {
        let shown = min(limit, data.elementCount)
        switch data.payload {
        case .strings(let s): return .array(s.prefix(shown).map { .string(DumpFormatting.string($0)) })
        case .bytes:
            if data.dtype == .complex64 || data.dtype == .complex128 {
                return .array(data.formattedValues(limit: shown).map { .string($0) })
            }
            return .array((0..<shown).map { i in
                // 64-bit integers are read exactly; going through Double would round large values.
                if data.dtype == .int64, let b = data.bytes { return .int(b.load(i, as: Int64.self)) }
                if data.dtype == .uint64, let b = data.bytes {
                    let v = b.load(i, as: UInt64.self)
                    return Int64(exactly: v).map { .int($0) } ?? .string(String(v))
                }
                guard let v = data.numericValue(at: i) else { return .null }
                return data.dtype.isFloatingPoint ? .double(v) : .int(Int64(v))
            })
        }
    }

    static func strings(_ values: [String]) -> JSON { .array(values.map { .string($0) }) }

    static func pairs(_ values: [StringPair]) -> JSON { .object(values.map { ($0.key, .string($0.value)) }) }
}
