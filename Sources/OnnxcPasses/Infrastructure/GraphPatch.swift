public import OnnxcIR

/// The only way a pass changes a graph: nodes to drop or replace, value uses to redirect, initializers to add
/// or drop. Passes build a patch against an unchanged graph; `applied(to:)` produces the new graph.
public struct GraphPatch: Sendable {
    /// Node index → the nodes that take its place (empty: the node is removed).
    public var replacements: [Int: [Node]] = [:]
    /// Every use of a key (node inputs, subgraph captures) reads the value instead. Graph outputs are never
    /// renamed: a pass must not redirect a value that is a graph output.
    public var redirects: [String: String] = [:]
    public var addedInitializers: [Tensor] = []
    public var removedInitializers: Set<String> = []

    public init() {}

    public var isEmpty: Bool {
        replacements.isEmpty && redirects.isEmpty && addedInitializers.isEmpty && removedInitializers.isEmpty
    }

    public mutating func remove(_ node: Int) { replacements[node] = [] }

    public mutating func replace(_ node: Int, with nodes: [Node]) { replacements[node] = nodes }

    /// Follows redirect chains (a → b → c) so patches that redirect twice still resolve in one application.
    func resolve(_ name: String) -> String {
        var current = name
        var seen = 0
        while let next = redirects[current], seen <= redirects.count {
            current = next
            seen += 1
        }
        return current
    }

    /// The graph with this patch applied (not yet sorted or verified; the driver does both).
    public func applied(to graph: Graph) -> Graph {
        var result = graph
        result.nodes = []
        for (index, node) in graph.nodes.enumerated() {
            if let replacement = replacements[index] { result.nodes.append(contentsOf: replacement) } else { result.nodes.append(node) }
        }
        result.initializers.removeAll { removedInitializers.contains($0.name) }
        result.initializers.append(contentsOf: addedInitializers)
        if !redirects.isEmpty {
            result.nodes = result.nodes.map { redirected($0) }
        }
        // Type annotations of values the patch removed would describe nothing.
        var defined = Set(result.inputs.map(\.name)).union(result.initializers.map(\.name))
        for node in result.nodes { defined.formUnion(node.outputs) }
        result.valueInfo.removeAll { !defined.contains($0.name) }
        return result
    }

    private func redirected(_ node: Node) -> Node {
        var copy = node
        copy.inputs = node.inputs.map { $0.isEmpty ? $0 : resolve($0) }
        copy.attributes = node.attributes.map { attribute in
            var a = attribute
            a.value = mapSubgraphs(attribute.value) { redirectedCaptures(in: $0) }
            return a
        }
        return copy
    }

    /// Rewrites a subgraph's reads of outer values (names it does not define itself).
    private func redirectedCaptures(in graph: Graph) -> Graph {
        var defined = Set(graph.inputs.map(\.name)).union(graph.initializers.map(\.name))
        var g = graph
        g.nodes = graph.nodes.map { node in
            var copy = node
            copy.inputs = node.inputs.map { $0.isEmpty || defined.contains($0) ? $0 : resolve($0) }
            copy.attributes = node.attributes.map { attribute in
                var a = attribute
                a.value = mapSubgraphs(attribute.value) { redirectedCaptures(in: $0) }
                return a
            }
            defined.formUnion(node.outputs)
            return copy
        }
        g.outputs = graph.outputs.map { output in
            var o = output
            if !defined.contains(output.name) { o.name = resolve(output.name) }
            return o
        }
        return g
    }
}
