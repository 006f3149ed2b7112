import OnnxcCore

/// Graphviz DOT of a model (`onnxc dump --format dot | dot -Tsvg`): ops as boxes, graph inputs and outputs
/// as ellipses, edges labelled with value names and declared types. Subgraphs become clusters beside their
/// node; values they read from the enclosing graph are drawn as dashed edges. Initializers appear only
/// with `--weights`, since in real models they would double the picture.
public enum DotDump {
    public static func render(_ model: Model, options: DumpOptions = DumpOptions()) -> String {
        var writer = Writer(options: options)
        writer.line("digraph \(DumpFormatting.quoted(model.graph.name.isEmpty ? "onnx" : model.graph.name)) {")
        writer.line("  rankdir=TB;")
        writer.line("  node [fontname=\"Helvetica\", fontsize=10];")
        writer.line("  edge [fontname=\"Helvetica\", fontsize=8];")
        writer.graph(model.graph, prefix: "g", outer: [:], indent: "  ")
        // Edges that cross into a cluster are written at the top level: an edge statement inside a cluster
        // would pull its outer endpoint into that cluster.
        for edge in writer.crossScopeEdges { writer.line("  " + edge) }
        writer.line("}")
        return writer.text
    }

    private struct Writer {
        let options: DumpOptions
        var text = ""
        var crossScopeEdges: [String] = []

        mutating func line(_ string: String) { text += string + "\n" }

        /// Emits one graph level; returns the DOT id that defines each value, so enclosing graphs' values can be
        /// wired into subgraph clusters.
        mutating func graph(_ graph: Graph, prefix: String, outer: [String: String], indent: String) {
            var producers = outer
            let types = DumpFormatting.typeTable(graph)
            let initialized = Set(graph.initializers.map(\.name))
            for (i, input) in graph.inputs.enumerated() where !initialized.contains(input.name) {
                let id = "\(prefix)_in\(i)"
                producers[input.name] = id
                line("\(indent)\(id) [shape=ellipse, style=filled, fillcolor=\"#e8f4e0\", label=\(label(input.name, input.type?.description))];")
            }
            if options.includeWeights {
                for (i, tensor) in graph.initializers.enumerated() {
                    let id = "\(prefix)_w\(i)"
                    producers[tensor.name] = id
                    line("\(indent)\(id) [shape=note, fontsize=8, label=\(label(tensor.name, tensor.type.description))];")
                }
            }
            for (n, node) in graph.nodes.enumerated() {
                let id = "\(prefix)_n\(n)"
                var caption = node.qualifiedOpType
                if !node.name.isEmpty { caption += "\n" + node.name }
                line("\(indent)\(id) [shape=box, style=\"rounded,filled\", fillcolor=\"#dbe9f6\", label=\(DumpFormatting.quoted(caption))];")
                for input in node.inputs where !input.isEmpty {
                    guard let source = producers[input] else { continue }
                    let edge = "\(source) -> \(id) [label=\(edgeLabel(input, types[input]))"
                    if outer[input] == source && !graph.inputs.contains(where: { $0.name == input }) {
                        crossScopeEdges.append(edge + ", style=dashed];")
                    } else {
                        line("\(indent)\(edge)];")
                    }
                }
                for (a, attribute) in node.attributes.enumerated() where attribute.referencedAttribute == nil {
                    for (g, subgraph) in attribute.value.subgraphs.enumerated() {
                        let cluster = "\(id)_a\(a)_\(g)"
                        line("\(indent)subgraph cluster_\(cluster) {")
                        line("\(indent)  label=\(DumpFormatting.quoted("\(node.name.isEmpty ? node.opType : node.name).\(attribute.name)"));")
                        line("\(indent)  style=dashed;")
                        self.graph(subgraph, prefix: cluster, outer: producers, indent: indent + "  ")
                        line("\(indent)}")
                        crossScopeEdges.append("\(id) -> \(cluster)_anchor [style=dotted, arrowhead=none];")
                    }
                }
                for output in node.outputs where !output.isEmpty { producers[output] = id }
            }
            for (i, output) in graph.outputs.enumerated() {
                let id = "\(prefix)_out\(i)"
                line("\(indent)\(id) [shape=ellipse, style=filled, fillcolor=\"#fbe3d6\", label=\(label(output.name, output.type?.description))];")
                if let source = producers[output.name] {
                    if outer[output.name] == source { crossScopeEdges.append("\(source) -> \(id) [style=dashed];") }
                    else { line("\(indent)\(source) -> \(id);") }
                }
            }
            // An invisible anchor lets the parent node point at the cluster as a whole.
            line("\(indent)\(prefix)_anchor [shape=point, style=invis];")
        }

        func label(_ name: String, _ type: String?) -> String {
            DumpFormatting.quoted(type.map { "\(name)\n\($0)" } ?? name)
        }

        func edgeLabel(_ name: String, _ type: ValueType?) -> String {
            DumpFormatting.quoted(type.map { "\(name)\n\($0)" } ?? name)
        }
    }
}
