import OnnxcCore

/// Checks the IR's invariants: SSA (each value defined once, across enclosing scopes too), every use
/// defined before it, declared types consistent with initializers, and operator domains imported.
///
/// It reports every problem it finds, not the first, so one run tells the user everything to fix. Tests run
/// it after import and after every transformation.
public enum Verifier {
    public static func verify(_ model: Model) throws(IRError) {
        var diagnostics: [Diagnostic] = []
        let imported = Set(model.opsetImports.map { canonicalDomain($0.domain) })
        let functions = Set(model.functions.map(\.key))
        var context = Context(importedDomains: imported, functions: functions)
        context.verify(model.graph, outerScope: [], path: model.graph.name.isEmpty ? "main" : model.graph.name,
                       isMain: true, into: &diagnostics)
        if !diagnostics.isEmpty { throw .invalidGraph(diagnostics) }
    }

    /// Verifies one graph on its own (tests of passes that build bare graphs use this).
    public static func verify(_ graph: Graph, outerScope: Set<String> = [], importedDomains: Set<String> = [defaultDomain]) throws(IRError) {
        var diagnostics: [Diagnostic] = []
        var context = Context(importedDomains: importedDomains, functions: [])
        context.verify(graph, outerScope: outerScope, path: graph.name.isEmpty ? "main" : graph.name,
                       isMain: outerScope.isEmpty, into: &diagnostics)
        if !diagnostics.isEmpty { throw .invalidGraph(diagnostics) }
    }

    private struct Context {
        let importedDomains: Set<String>
        let functions: Set<FunctionKey>

        mutating func verify(_ graph: Graph, outerScope: Set<String>, path: String, isMain: Bool, into out: inout [Diagnostic]) {
            var defined = Set<String>()

            func define(_ name: String, by node: Node?, what: String) {
                if defined.contains(name) || outerScope.contains(name) {
                    let scope = defined.contains(name) ? "" : " (already defined in an enclosing graph)"
                    out.append(Diagnostic(graphPath: path, node: node?.displayName, opType: node?.qualifiedOpType, value: name,
                                          message: "\(what) \(name) is defined more than once\(scope); ONNX graphs are SSA"))
                }
                defined.insert(name)
            }

            let initializerNames = Set(graph.initializers.map(\.name))
            for input in graph.inputs {
                if input.name.isEmpty {
                    out.append(Diagnostic(graphPath: path, message: "a graph input has an empty name"))
                    continue
                }
                if defined.contains(input.name) {
                    out.append(Diagnostic(graphPath: path, value: input.name, message: "graph input \(input.name) is listed twice"))
                }
                if outerScope.contains(input.name) {
                    out.append(Diagnostic(graphPath: path, value: input.name,
                                          message: "graph input \(input.name) shadows a value of an enclosing graph; ONNX graphs are SSA"))
                }
                defined.insert(input.name)
                if isMain, input.type == nil, !initializerNames.contains(input.name) {
                    out.append(Diagnostic(graphPath: path, value: input.name, message: "model input \(input.name) declares no type"))
                }
            }
            var seenInitializers = Set<String>()
            for tensor in graph.initializers {
                if tensor.name.isEmpty {
                    out.append(Diagnostic(graphPath: path, message: "an initializer has an empty name"))
                    continue
                }
                if !seenInitializers.insert(tensor.name).inserted {
                    out.append(Diagnostic(graphPath: path, value: tensor.name, message: "initializer \(tensor.name) is listed twice"))
                }
                // An input of the same name is the initializer's declaration (IR < 4 style): types must agree.
                if !graph.inputs.contains(where: { $0.name == tensor.name }) { define(tensor.name, by: nil, what: "initializer") }
                checkDeclaredType(of: tensor.name, against: tensor.type, in: graph, path: path, into: &out)
            }
            for sparse in graph.sparseInitializers {
                define(sparse.name, by: nil, what: "sparse initializer")
            }

            for node in graph.nodes {
                if node.opType.isEmpty {
                    out.append(Diagnostic(graphPath: path, node: node.displayName, message: "node has no op_type"))
                }
                let domain = canonicalDomain(node.domain)
                let isFunctionCall = functions.contains(FunctionKey(domain: domain, name: node.opType, overload: node.overload))
                if !importedDomains.contains(domain) && !isFunctionCall {
                    out.append(Diagnostic(graphPath: path, node: node.displayName, opType: node.qualifiedOpType,
                                          message: "operator domain '\(node.domain)' is not in the model's opset_import"))
                }
                for input in node.inputs where !input.isEmpty {
                    if !defined.contains(input) && !outerScope.contains(input) {
                        out.append(Diagnostic(graphPath: path, node: node.displayName, opType: node.qualifiedOpType, value: input,
                                              message: "input \(input) is not defined before it is used"))
                    }
                }
                var attributeNames = Set<String>()
                for attribute in node.attributes {
                    if !attributeNames.insert(attribute.name).inserted {
                        out.append(Diagnostic(graphPath: path, node: node.displayName, opType: node.qualifiedOpType,
                                              message: "attribute \(attribute.name) is given twice"))
                    }
                    for (index, subgraph) in attribute.value.subgraphs.enumerated() {
                        let suffix = attribute.value.subgraphs.count > 1 ? "[\(index)]" : ""
                        verify(subgraph, outerScope: outerScope.union(defined),
                               path: "\(path)/\(node.displayName).\(attribute.name)\(suffix)", isMain: false, into: &out)
                    }
                }
                for output in node.outputs where !output.isEmpty {
                    define(output, by: node, what: "value")
                }
            }

            for output in graph.outputs {
                if output.name.isEmpty {
                    out.append(Diagnostic(graphPath: path, message: "a graph output has an empty name"))
                } else if !defined.contains(output.name) && !outerScope.contains(output.name) {
                    out.append(Diagnostic(graphPath: path, value: output.name, message: "graph output \(output.name) is never defined"))
                }
            }
        }

        /// A name may carry declarations as an input, output or value_info; each must fit the initializer.
        private func checkDeclaredType(of name: String, against actual: TensorType, in graph: Graph, path: String, into out: inout [Diagnostic]) {
            let declarations = graph.inputs.filter { $0.name == name } + graph.outputs.filter { $0.name == name }
                + graph.valueInfo.filter { $0.name == name }
            for declaration in declarations {
                guard let declared = declaration.type else { continue }
                guard let tensorType = declared.tensorType else {
                    out.append(Diagnostic(graphPath: path, value: name,
                                          message: "initializer \(name) is a tensor but is declared as \(declared)"))
                    continue
                }
                if tensorType.elementType != actual.elementType {
                    out.append(Diagnostic(graphPath: path, value: name,
                                          message: "initializer \(name) holds \(actual) but is declared as \(tensorType)"))
                } else if let shape = tensorType.shape, let actualShape = actual.shape, !shape.isCompatible(with: actualShape) {
                    out.append(Diagnostic(graphPath: path, value: name,
                                          message: "initializer \(name) has shape \(actualShape) but is declared as \(shape)"))
                }
            }
        }
    }
}
