import OnnxcCore

/// The readable, deterministic text form of a model: one line per node,
/// `%out: type = Op[attrs](%in, …)  # name`, subgraphs indented under their node.
/// Golden tests compare it byte for byte, so changes to it are deliberate.
public enum TextDump {
    public static func render(_ model: Model, options: DumpOptions = DumpOptions()) -> String {
        var out = ""
        var header = "model ir_version=\(model.irVersion) opsets=[\(DumpFormatting.opsets(model.opsetImports))]"
        if !model.producerName.isEmpty || !model.producerVersion.isEmpty {
            header += " producer=" + DumpFormatting.quoted([model.producerName, model.producerVersion].filter { !$0.isEmpty }.joined(separator: " "))
        }
        if !model.domain.isEmpty { header += " domain=" + DumpFormatting.quoted(model.domain) }
        if model.modelVersion != 0 { header += " model_version=\(model.modelVersion)" }
        out += header + "\n"
        if !model.metadataProps.isEmpty {
            out += "metadata " + model.metadataProps.map { "\($0.key)=\(DumpFormatting.quoted($0.value))" }.joined(separator: ", ") + "\n"
        }
        for function in model.functions {
            out += "function \(function.domain.isEmpty ? "" : function.domain + "::")\(function.name)"
            // Attributes a caller may set: required ones by name, optional ones with their defaults.
            let declared = function.attributeNames + function.attributeDefaults.map { "\($0.name)=\(attribute($0, options: options))" }
            if !declared.isEmpty { out += "[" + declared.joined(separator: ", ") + "]" }
            out += "(\(function.inputs.map(DumpFormatting.value).joined(separator: ", "))) -> "
            out += "(\(function.outputs.map(DumpFormatting.value).joined(separator: ", "))) {\n"
            var types: [String: ValueType] = [:]
            for info in function.valueInfo { if let type = info.type { types[info.name] = type } }
            for node in function.nodes { renderNode(node, types: types, indent: "  ", options: options, into: &out) }
            out += "}\n"
        }
        renderGraph(model.graph, indent: "", options: options, into: &out)
        return out
    }

    /// `label` (an attribute name) precedes `graph` on the opening line of a subgraph.
    static func renderGraph(_ graph: Graph, indent: String, label: String = "", options: DumpOptions, into out: inout String) {
        out += indent + label + "graph \(DumpFormatting.quoted(graph.name)) {\n"
        let inner = indent + "  "
        let types = DumpFormatting.typeTable(graph)
        let initialized = Set(graph.initializers.map(\.name))
        for input in graph.inputs where !initialized.contains(input.name) {
            out += inner + "input  \(DumpFormatting.value(input.name)): \(input.type?.description ?? "?")\n"
        }
        for tensor in graph.initializers {
            out += inner + "init   \(DumpFormatting.value(tensor.name)): \(tensor.type)"
            if graph.inputs.contains(where: { $0.name == tensor.name }) { out += " (overridable input)" }
            if let source = tensor.externalSource { out += " @\(source.location)+\(source.offset)" }
            if options.includeWeights {
                let values = tensor.data.formattedValues(limit: options.maximumValues)
                let more = tensor.data.elementCount - values.count
                out += " = {" + values.joined(separator: ", ") + (more > 0 ? ", … \(more) more" : "") + "}"
                if let stats = DumpFormatting.statistics(tensor.data) {
                    // Statistics print at the tensor's own precision, like its values.
                    let show = { (v: Double) in tensor.dtype == .double ? "\(v)" : "\(Float(v))" }
                    out += " min=\(show(stats.min)) max=\(show(stats.max)) mean=\(show(stats.mean))"
                }
            }
            out += "\n"
        }
        for sparse in graph.sparseInitializers {
            out += inner + "sparse \(DumpFormatting.value(sparse.name)): \(sparse.values.dtype.shortName)\(Shape(fixed: sparse.dims)) nnz=\(sparse.values.data.elementCount)\n"
        }
        for node in graph.nodes { renderNode(node, types: types, indent: inner, options: options, into: &out) }
        for output in graph.outputs {
            out += inner + "output \(DumpFormatting.value(output.name)): \(output.type?.description ?? "?")\n"
        }
        out += indent + "}\n"
    }

    static func renderNode(_ node: Node, types: [String: ValueType], indent: String, options: DumpOptions, into out: inout String) {
        let outputs = node.outputs.map { name -> String in
            guard !name.isEmpty else { return "_" }
            if let type = types[name] { return "\(DumpFormatting.value(name)): \(type)" }
            return DumpFormatting.value(name)
        }
        var line = indent + outputs.joined(separator: ", ") + " = " + node.qualifiedOpType
        let plainAttributes = node.attributes.filter { $0.value.subgraphs.isEmpty || $0.referencedAttribute != nil }
        if !plainAttributes.isEmpty {
            line += "[" + plainAttributes.map { "\($0.name)=\(attribute($0, options: options))" }.joined(separator: ", ") + "]"
        }
        line += "(" + node.inputs.map { $0.isEmpty ? "_" : DumpFormatting.value($0) }.joined(separator: ", ") + ")"
        if !node.name.isEmpty { line += "  # \(node.name)" }
        out += line + "\n"
        for attribute in node.attributes where attribute.referencedAttribute == nil {
            let graphs = attribute.value.subgraphs
            for (index, graph) in graphs.enumerated() {
                let label = "\(attribute.name)\(isGraphList(attribute.value) ? "[\(index)]" : ""): "
                renderGraph(graph, indent: indent + "  ", label: label, options: options, into: &out)
            }
        }
    }

    private static func isGraphList(_ value: AttributeValue) -> Bool {
        if case .graphs = value { return true }
        return false
    }

    static func attribute(_ attribute: Attribute, options: DumpOptions) -> String {
        if let reference = attribute.referencedAttribute { return "@\(reference)" }
        switch attribute.value {
        case .float(let v): return DumpFormatting.float(v)
        case .int(let v): return String(v)
        case .string(let v): return DumpFormatting.quoted(DumpFormatting.string(v))
        case .tensor(let t): return DumpFormatting.tensorSummary(t, maximumValues: options.maximumValues)
        case .graph(let g): return "graph(\(g.nodes.count) nodes)"
        case .sparseTensor(let s): return "sparse<\(s.values.dtype.shortName)\(Shape(fixed: s.dims))>(nnz=\(s.values.data.elementCount))"
        case .typeProto(let t): return "type<\(t)>"
        case .floats(let v): return "[" + v.map(DumpFormatting.float).joined(separator: ",") + "]"
        case .ints(let v): return "[" + v.map(String.init).joined(separator: ",") + "]"
        case .strings(let v): return "[" + v.map { DumpFormatting.quoted(DumpFormatting.string($0)) }.joined(separator: ",") + "]"
        case .tensors(let v): return "[" + v.map { DumpFormatting.tensorSummary($0, maximumValues: options.maximumValues) }.joined(separator: ",") + "]"
        case .graphs(let v): return "graphs(\(v.count))"
        case .sparseTensors(let v): return "sparse_tensors(\(v.count))"
        case .typeProtos(let v): return "[" + v.map { "type<\($0)>" }.joined(separator: ",") + "]"
        }
    }
}
