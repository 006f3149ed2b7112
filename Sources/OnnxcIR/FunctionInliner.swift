/// Replaces calls to model-local functions by their bodies, so every later stage sees only operators.
///
/// Each call's body gets fresh value names (`<call>/<name>`), its formal inputs and outputs are wired to
/// the call's actual ones, and attribute references (`ref_attr_name`) take the caller's value or the
/// function's default. Nested calls are inlined too; recursion is an error. The functions' operator-set
/// imports are merged into the model's, and a version conflict is an error rather than a silent change.
public enum FunctionInliner {
    /// Nesting depth of function calls inside function bodies that we accept before calling it runaway.
    public static let maximumCallDepth = 64

    public static func inline(_ model: Model) throws(IRError) -> Model {
        guard !model.functions.isEmpty else { return model }
        var library: [FunctionKey: Function] = [:]
        for function in model.functions { library[function.key] = function }
        var result = model
        var state = State(library: library, opsets: model.opsetImports)
        result.graph = try state.inline(in: model.graph, stack: [])
        for index in result.trainingInfo.indices {
            if let g = result.trainingInfo[index].initialization { result.trainingInfo[index].initialization = try state.inline(in: g, stack: []) }
            if let g = result.trainingInfo[index].algorithm { result.trainingInfo[index].algorithm = try state.inline(in: g, stack: []) }
        }
        result.opsetImports = state.opsets
        result.functions = []
        return result
    }

    private struct State {
        let library: [FunctionKey: Function]
        var opsets: [OpsetImport]
        var callCounter = 0

        mutating func inline(in graph: Graph, stack: [FunctionKey]) throws(IRError) -> Graph {
            var result = graph
            result.nodes = []
            for var node in graph.nodes {
                node.attributes = try node.attributes.map { (attribute) throws(IRError) in
                    var copy = attribute
                    copy.value = try mapSubgraphs(attribute.value) { (g) throws(IRError) in try inline(in: g, stack: stack) }
                    return copy
                }
                let key = FunctionKey(domain: canonicalDomain(node.domain), name: node.opType, overload: node.overload)
                guard let function = library[key] else {
                    result.nodes.append(node)
                    continue
                }
                let (body, info) = try expand(function, at: node, stack: stack)
                result.nodes.append(contentsOf: body)
                result.valueInfo.append(contentsOf: info)
            }
            return result
        }

        private mutating func expand(_ function: Function, at call: Node, stack: [FunctionKey]) throws(IRError) -> ([Node], [ValueInfo]) {
            let name = function.domain.isEmpty ? function.name : "\(function.domain).\(function.name)"
            func fail(_ reason: String) -> IRError { .functionInlining(function: name, node: call.displayName, reason: reason) }
            if stack.contains(function.key) { throw fail("it calls itself (recursion cannot be inlined)") }
            if stack.count >= FunctionInliner.maximumCallDepth { throw fail("calls nest deeper than \(FunctionInliner.maximumCallDepth)") }
            if call.inputs.count > function.inputs.count { throw fail("called with \(call.inputs.count) inputs, declares \(function.inputs.count)") }
            if call.outputs.count > function.outputs.count { throw fail("called with \(call.outputs.count) outputs, declares \(function.outputs.count)") }
            try mergeOpsets(function.opsetImports, fail: fail)

            callCounter += 1
            let prefix = (call.name.isEmpty ? "\(function.name)_\(callCounter)" : call.name) + "/"
            var renames: [String: String] = [:]
            for (i, formal) in function.inputs.enumerated() { renames[formal] = i < call.inputs.count ? call.inputs[i] : "" }
            for (i, formal) in function.outputs.enumerated() { renames[formal] = i < call.outputs.count ? call.outputs[i] : "" }
            let rename = { (value: String) -> String in value.isEmpty ? "" : (renames[value] ?? prefix + value) }

            var bodyNodes: [Node] = []
            for var node in function.nodes {
                node.name = prefix + (node.name.isEmpty ? node.opType : node.name)
                node.inputs = node.inputs.map(rename)
                node.outputs = node.outputs.map(rename)
                var attributes: [Attribute] = []
                for attribute in node.attributes {
                    var resolved = attribute
                    if let reference = attribute.referencedAttribute {
                        if let given = call.attributes.first(where: { $0.name == reference }) {
                            resolved.value = given.value
                        } else if let fallback = function.attributeDefaults.first(where: { $0.name == reference }) {
                            resolved.value = fallback.value
                        } else {
                            continue  // an optional attribute the caller left unset
                        }
                        resolved.referencedAttribute = nil
                    }
                    resolved.value = mapSubgraphs(resolved.value) { renameAll(in: $0, using: rename) }
                    attributes.append(resolved)
                }
                node.attributes = attributes
                bodyNodes.append(node)
            }
            // Calls inside the body are inlined with this function on the stack.
            let inner = try inline(in: Graph(nodes: bodyNodes), stack: stack + [function.key])
            let info = function.valueInfo.map { value in
                var copy = value
                copy.name = rename(value.name)
                return copy
            }
            return (inner.nodes, info + inner.valueInfo)
        }

        private mutating func mergeOpsets(_ imports: [OpsetImport], fail: (String) -> IRError) throws(IRError) {
            for opset in imports {
                let domain = canonicalDomain(opset.domain)
                if let existing = opsets.first(where: { canonicalDomain($0.domain) == domain }) {
                    if existing.version != opset.version {
                        let shown = domain.isEmpty ? "ai.onnx" : domain
                        throw fail("it imports \(shown) version \(opset.version) but the model imports version \(existing.version)")
                    }
                } else {
                    opsets.append(opset)
                }
            }
        }
    }

    /// Renames every value in a subgraph of a function body: the body is closed, so its names are all local.
    private static func renameAll(in graph: Graph, using rename: (String) -> String) -> Graph {
        var g = graph
        g.inputs = g.inputs.map { var v = $0; v.name = rename(v.name); return v }
        g.outputs = g.outputs.map { var v = $0; v.name = rename(v.name); return v }
        g.valueInfo = g.valueInfo.map { var v = $0; v.name = rename(v.name); return v }
        g.initializers = g.initializers.map { var t = $0; t.name = rename(t.name); return t }
        g.sparseInitializers = g.sparseInitializers.map {
            var s = $0
            s.values.name = rename(s.values.name)
            return s
        }
        g.nodes = g.nodes.map { node in
            var n = node
            n.inputs = n.inputs.map(rename)
            n.outputs = n.outputs.map(rename)
            n.attributes = n.attributes.map { attribute in
                var a = attribute
                a.value = mapSubgraphs(a.value) { renameAll(in: $0, using: rename) }
                return a
            }
            return n
        }
        return g
    }
}

/// Applies `transform` to every subgraph an attribute value holds, leaving other kinds untouched.
public func mapSubgraphs<E: Error>(_ value: AttributeValue, _ transform: (Graph) throws(E) -> Graph) throws(E) -> AttributeValue {
    switch value {
    case .graph(let g): return .graph(try transform(g))
    case .graphs(let gs):
        var out: [Graph] = []
        for g in gs { out.append(try transform(g)) }
        return .graphs(out)
    default: return value
    }
}
