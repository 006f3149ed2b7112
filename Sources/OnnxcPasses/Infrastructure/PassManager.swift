import OnnxcCore
public import OnnxcIR

/// Per-pass counters for `--print-pass-stats` and the JSON report.
public struct PassStatistics: Sendable {
    public var id: String
    public var runs = 0
    /// Applications that changed the graph.
    public var changes = 0
    public var nodesRemoved = 0
    public var nodesAdded = 0
    public var seconds = 0.0
}

/// The greedy driver: runs the passes in order, each on every graph level (subgraphs first), applies their
/// patches, re-sorts and verifies the model after every change, and repeats the whole list until nothing
/// changes or `maximumRounds` is reached.
public final class PassManager {
    /// Rounds of the whole pipeline before the driver stops even if passes still fire: a pass pair that keeps
    /// undoing each other must not hang the compiler. Real models settle in two or three rounds.
    public static let maximumRounds = 8

    public let passes: [any Pass]
    public let options: PassOptions
    public private(set) var statistics: [PassStatistics]
    /// Called after each pass application that changed the model (for `dump --after`).
    public var observer: ((String, Model) -> Void)?
    /// This driver's round limit (`maximumRounds` unless a pipeline needs more, as the layout passes do:
    /// each round moves a Transpose past one more op).
    public let rounds: Int
    /// Re-run shape inference after every change, for passes that read the types of values earlier passes
    /// created (the layout passes need the shapes of the Transposes they insert).
    public let reinfersShapes: Bool

    public init(passes: [any Pass], options: PassOptions = PassOptions(), rounds: Int = PassManager.maximumRounds,
                reinfersShapes: Bool = false) {
        self.rounds = rounds
        self.reinfersShapes = reinfersShapes
        self.passes = passes
        self.options = options
        statistics = passes.map { PassStatistics(id: $0.id) }
    }

    public func run(_ model: Model) throws(PassError) -> Model {
        var current = model
        // Runtime ops need their domain imported for the verifier; the import is dropped again if unused.
        let addsRuntimeDomain = options.target == .runtime && !model.opsetImports.contains { $0.domain == RuntimeOps.domain }
        if addsRuntimeDomain { current.opsetImports.append(OpsetImport(domain: RuntimeOps.domain, version: RuntimeOps.version)) }
        var opsets: [String: Int64] = [:]
        for opset in current.opsetImports { opsets[canonicalDomain(opset.domain)] = opset.version }
        for _ in 0..<rounds {
            var changed = false
            for (index, pass) in passes.enumerated() {
                let start = ContinuousClock.now
                let before = current.graph.nodeCountIncludingSubgraphs
                var applied = false
                let graph = apply(pass, to: current.graph, context: PassContext(options: options, opsets: opsets, outerScope: []), applied: &applied)
                let elapsed = ContinuousClock.now - start
                statistics[index].runs += 1
                statistics[index].seconds += Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) * 1e-18
                guard applied else { continue }
                var candidate = current
                do {
                    candidate.graph = try TopologicalSort.sorted(graph)
                    try Verifier.verify(candidate)
                } catch {
                    throw .invalidResult(pass: pass.id, error)
                }
                if reinfersShapes { candidate = ShapeInference.infer(candidate).0 }
                let after = candidate.graph.nodeCountIncludingSubgraphs
                statistics[index].changes += 1
                statistics[index].nodesRemoved += max(0, before - after)
                statistics[index].nodesAdded += max(0, after - before)
                current = candidate
                changed = true
                observer?(pass.id, current)
            }
            if !changed { break }
        }
        if addsRuntimeDomain && !current.graph.containsNode(where: { $0.domain == RuntimeOps.domain }) {
            current.opsetImports.removeAll { $0.domain == RuntimeOps.domain }
        }
        return current
    }

    /// Runs `pass` on the subgraphs of every node, then on `graph` itself.
    private func apply(_ pass: any Pass, to graph: Graph, context: PassContext, applied: inout Bool) -> Graph {
        var result = graph
        var defined = context.outerScope.union(graph.inputs.map(\.name)).union(graph.initializers.map(\.name))
        for n in result.nodes.indices {
            if !result.nodes[n].subgraphs.isEmpty {
                let inner = PassContext(options: context.options, opsets: context.opsets, outerScope: defined)
                for a in result.nodes[n].attributes.indices {
                    var changed = false
                    result.nodes[n].attributes[a].value = mapSubgraphs(result.nodes[n].attributes[a].value) { sub in
                        apply(pass, to: sub, context: inner, applied: &changed)
                    }
                    applied = applied || changed
                }
            }
            defined.formUnion(result.nodes[n].outputs)
        }
        guard let patch = pass.run(on: result, context: context), !patch.isEmpty else { return result }
        applied = true
        return patch.applied(to: result)
    }
}
