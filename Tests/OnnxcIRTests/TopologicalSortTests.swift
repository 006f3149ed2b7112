import OnnxcCore
import OnnxcIR
import OnnxcTestSupport
import Testing

@Suite struct TopologicalSortTests {
    @Test func keepsSortedGraphsAsTheyAre() throws {
        let graph = Graph(nodes: [Build.node("A", ["x"], ["a"]), Build.node("B", ["x"], ["b"]), Build.node("C", ["a", "b"], ["c"])])
        #expect(try TopologicalSort.sorted(graph) == graph)
    }

    @Test func sortsStablyWhenNeeded() throws {
        let graph = Graph(nodes: [
            Build.node("C", ["a", "b"], ["c"], name: "c"),
            Build.node("B", ["x"], ["b"], name: "b"),
            Build.node("A", ["x"], ["a"], name: "a"),
            Build.node("D", ["x"], ["d"], name: "d"),
        ])
        // Ready nodes go in file order; c becomes ready after a and, having the lowest index, precedes d.
        #expect(try TopologicalSort.sorted(graph).nodes.map(\.name) == ["b", "a", "c", "d"])
    }

    @Test func respectsValuesReadBySubgraphs() throws {
        let branch = Graph(outputs: [ValueInfo(name: "t", type: nil)], nodes: [Build.node("Identity", ["late"], ["t"])])
        let graph = Graph(nodes: [
            Build.node("If", ["c"], ["z"], name: "if", [Attribute("then_branch", .graph(branch))]),
            Build.node("Relu", ["x"], ["late"], name: "producer"),
        ])
        #expect(try TopologicalSort.sorted(graph).nodes.map(\.name) == ["producer", "if"])
    }

    @Test func reportsCycles() {
        let graph = Graph(nodes: [Build.node("A", ["b"], ["a"], name: "first"), Build.node("B", ["a"], ["b"], name: "second")])
        #expect(throws: IRError.cycle(graphPath: "main", nodes: ["first", "second"])) { try TopologicalSort.sorted(graph) }
    }
}
