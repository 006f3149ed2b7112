/// Use-def queries over one graph level: who defines a value, who reads it. Built once, read-only;
/// rebuild after changing the graph.
public struct GraphIndex: Sendable {
    public enum Definition: Sendable, Hashable {
        case input(Int)
        case initializer(Int)
        case sparseInitializer(Int)
        /// Output `output` of node `node`.
        case node(Int, output: Int)
    }

    /// A read of a value: input slot `input` of node `node`, or `input == nil` when a subgraph of that node
    /// reads it from the enclosing scope.
    public struct Use: Sendable, Hashable {
        public var node: Int
        public var input: Int?
        public init(node: Int, input: Int?) {
            self.node = node
            self.input = input
        }
    }

    public private(set) var definitions: [String: Definition] = [:]
    public private(set) var uses: [String: [Use]] = [:]
    public let graphOutputs: Set<String>

    public init(_ graph: Graph) {
        graphOutputs = Set(graph.outputs.map(\.name))
        for (i, info) in graph.inputs.enumerated() where !info.name.isEmpty { definitions[info.name] = .input(i) }
        // An initializer that shares a name with an input is that input's default value; it defines the value.
        for (i, tensor) in graph.initializers.enumerated() { definitions[tensor.name] = .initializer(i) }
        for (i, sparse) in graph.sparseInitializers.enumerated() { definitions[sparse.name] = .sparseInitializer(i) }
        for (n, node) in graph.nodes.enumerated() {
            for (o, name) in node.outputs.enumerated() where !name.isEmpty { definitions[name] = .node(n, output: o) }
            for (i, name) in node.inputs.enumerated() where !name.isEmpty { uses[name, default: []].append(Use(node: n, input: i)) }
            var captured = Set<String>()
            for subgraph in node.subgraphs { captured.formUnion(subgraph.capturedValues) }
            for name in captured.sorted() { uses[name, default: []].append(Use(node: n, input: nil)) }
        }
    }

    /// The node and output slot producing `name`, if a node does.
    public func producer(of name: String) -> (node: Int, output: Int)? {
        if case .node(let n, let o) = definitions[name] { return (n, o) }
        return nil
    }

    public func consumers(of name: String) -> [Use] { uses[name] ?? [] }

    public func isGraphOutput(_ name: String) -> Bool { graphOutputs.contains(name) }

    /// True when nothing reads `name`: no node, no subgraph, not a graph output.
    public func isUnused(_ name: String) -> Bool { consumers(of: name).isEmpty && !isGraphOutput(name) }
}

extension Graph {
    /// Names this graph (or a nested subgraph) reads but does not define: its outer-scope references.
    public var capturedValues: Set<String> {
        var defined = Set(inputs.map(\.name))
        defined.formUnion(initializers.map(\.name))
        defined.formUnion(sparseInitializers.map(\.name))
        var captured = Set<String>()
        for node in nodes {
            for name in node.inputs where !name.isEmpty && !defined.contains(name) { captured.insert(name) }
            for subgraph in node.subgraphs {
                for name in subgraph.capturedValues where !defined.contains(name) { captured.insert(name) }
            }
            defined.formUnion(node.outputs)
        }
        for output in outputs where !defined.contains(output.name) { captured.insert(output.name) }
        return captured
    }
}
