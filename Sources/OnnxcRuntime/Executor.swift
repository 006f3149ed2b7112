import OnnxcCore

/// Values visible while a graph runs; a subgraph's scope falls back to its enclosing graph's.
final class Scope {
    var values: [String: Value]
    let parent: Scope?

    init(values: [String: Value] = [:], parent: Scope?) {
        self.values = values
        self.parent = parent
    }

    func lookup(_ name: String) -> Value? {
        if let value = values[name] { return value }
        return parent?.lookup(name)
    }
}

/// Interprets a `RuntimeGraph` node by node with the registered kernels. Checks at construction that every
/// operator, in every subgraph, has a kernel, and reports all missing ones at once.
public final class Executor {
    public let graph: RuntimeGraph
    /// Per graph (by identity): after node i, the values no later node, subgraph or output needs.
    private var releasePlans: [ObjectIdentifier: [[String]]] = [:]

    /// Time spent per op type (subgraph nodes included, and counted inside their parent too) when profiling.
    public struct OpProfile: Sendable {
        public var calls = 0
        public var seconds = 0.0
    }

    /// Set to an empty dictionary to collect a profile on the next runs; nil (the default) costs nothing.
    public var profile: [String: OpProfile]?

    public init(graph: RuntimeGraph) throws(RuntimeError) {
        self.graph = graph
        var missing: [String: RuntimeError.UnsupportedOp] = [:]
        var order: [String] = []
        Executor.collectUnsupported(graph, into: &missing, order: &order)
        if !order.isEmpty { throw .unsupportedOps(order.compactMap { missing[$0] }) }
    }

    private static func collectUnsupported(_ graph: RuntimeGraph, into missing: inout [String: RuntimeError.UnsupportedOp], order: inout [String]) {
        for node in graph.nodes {
            if KernelRegistry.kernel(domain: node.domain, opType: node.opType) == nil {
                let key = "\(KernelRegistry.key(node.domain, node.opType))@\(node.opset)"
                if missing[key] == nil {
                    order.append(key)
                    missing[key] = RuntimeError.UnsupportedOp(domain: node.domain, opType: node.opType, opset: node.opset, nodes: [])
                }
                missing[key]?.nodes.append(node.displayName)
            }
            for value in node.attributes.values.values {
                switch value {
                case .graph(let g): collectUnsupported(g, into: &missing, order: &order)
                case .graphs(let gs): for g in gs { collectUnsupported(g, into: &missing, order: &order) }
                default: break
                }
            }
        }
    }

    /// Runs the main graph. Inputs not given fall back to initializers of the same name (IR < 4 defaults).
    public func run(_ inputs: [String: Value]) throws(RuntimeError) -> [String: Value] {
        let scope = Scope(parent: nil)
        for (name, tensor) in graph.initializers { scope.values[name] = .tensor(tensor) }
        for input in graph.inputs {
            if let value = inputs[input.name] {
                scope.values[input.name] = value
            } else if scope.values[input.name] == nil {
                throw .missingInput("model input \(input.name) was not given")
            }
        }
        try runNodes(graph, scope: scope)
        var results: [String: Value] = [:]
        for output in graph.outputs {
            guard let value = scope.lookup(output.name) else { throw .missingInput("graph output \(output.name) was never computed") }
            results[output.name] = value
        }
        return results
    }

    /// Runs a subgraph with positional inputs and returns its outputs in order.
    func execute(_ graph: RuntimeGraph, inputs: [Value], parent: Scope) throws(RuntimeError) -> [Value] {
        let scope = Scope(parent: parent)
        for (name, tensor) in graph.initializers { scope.values[name] = .tensor(tensor) }
        for (index, input) in graph.inputs.enumerated() where index < inputs.count {
            scope.values[input.name] = inputs[index]
        }
        try runNodes(graph, scope: scope)
        var results: [Value] = []
        for output in graph.outputs {
            guard let value = scope.lookup(output.name) else {
                throw .missingInput("subgraph \(graph.name) output \(output.name) was never computed")
            }
            results.append(value)
        }
        return results
    }

    /// Frees intermediates as soon as their last reader has run, so peak memory follows the live set rather
    /// than the whole graph.
    private func releasePlan(_ graph: RuntimeGraph) -> [[String]] {
        if let plan = releasePlans[ObjectIdentifier(graph)] { return plan }
        var lastUse: [String: Int] = [:]
        for (index, node) in graph.nodes.enumerated() {
            for name in node.inputs where !name.isEmpty { lastUse[name] = index }
            for value in node.attributes.values.values {
                let subgraphs: [RuntimeGraph]
                switch value {
                case .graph(let g): subgraphs = [g]
                case .graphs(let gs): subgraphs = gs
                default: subgraphs = []
                }
                for name in subgraphs.flatMap(Executor.capturedNames) { lastUse[name] = index }
            }
        }
        let kept = Set(graph.outputs.map(\.name))
        var plan = [[String]](repeating: [], count: graph.nodes.count)
        for (index, node) in graph.nodes.enumerated() {
            for name in node.outputs where !name.isEmpty && !kept.contains(name) && lastUse[name] == nil {
                plan[index].append(name)  // produced but never read
            }
        }
        let produced = Set(graph.nodes.flatMap(\.outputs))
        for (name, index) in lastUse where produced.contains(name) && !kept.contains(name) { plan[index].append(name) }
        releasePlans[ObjectIdentifier(graph)] = plan
        return plan
    }

    /// Every name a graph (or its subgraphs) reads; a superset of its outer-scope captures is enough here.
    private static func capturedNames(_ graph: RuntimeGraph) -> [String] {
        var names: [String] = graph.outputs.map(\.name)
        for node in graph.nodes {
            names += node.inputs.filter { !$0.isEmpty }
            for value in node.attributes.values.values {
                switch value {
                case .graph(let g): names += capturedNames(g)
                case .graphs(let gs): for g in gs { names += capturedNames(g) }
                default: break
                }
            }
        }
        return names
    }

    private func runNodes(_ graph: RuntimeGraph, scope: Scope) throws(RuntimeError) {
        let plan = releasePlan(graph)
        for (nodeIndex, node) in graph.nodes.enumerated() {
            guard let kernel = KernelRegistry.kernel(domain: node.domain, opType: node.opType) else {
                throw .unsupportedOps([RuntimeError.UnsupportedOp(domain: node.domain, opType: node.opType, opset: node.opset, nodes: [node.displayName])])
            }
            let inputs: [Value?] = node.inputs.map { $0.isEmpty ? nil : scope.lookup($0) }
            for (index, name) in node.inputs.enumerated() where !name.isEmpty && inputs[index] == nil {
                throw .atNode(node: node.displayName, op: node.opType, .missingInput("input \(name) has no value"))
            }
            let context = KernelContext(node: node, scope: scope, executor: self)
            let results: [Value?]
            let start = profile == nil ? nil : ContinuousClock.now
            do {
                results = try kernel(inputs, context)
            } catch {
                if case .atNode = error { throw error }
                throw .atNode(node: node.displayName, op: node.opType, error)
            }
            if let start {
                let elapsed = ContinuousClock.now - start
                let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) * 1e-18
                profile?[node.opType, default: OpProfile()].calls += 1
                profile?[node.opType, default: OpProfile()].seconds += seconds
            }
            for (index, name) in node.outputs.enumerated() where !name.isEmpty && index < results.count {
                if let value = results[index] { scope.values[name] = value }
            }
            for name in plan[nodeIndex] { scope.values[name] = nil }
        }
    }
}
