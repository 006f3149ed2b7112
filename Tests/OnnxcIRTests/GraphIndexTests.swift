import OnnxcCore
import OnnxcIR
import OnnxcTestSupport
import Testing

@Suite struct GraphIndexTests {
    /// x → Relu → a → Add(a, w) → y, with an If whose branch reads `a` from the outer scope.
    func sample() throws -> Graph {
        let branch = Graph(name: "then", outputs: [ValueInfo(name: "t", type: nil)], nodes: [Build.node("Identity", ["a"], ["t"])])
        return Graph(
            name: "g",
            inputs: [Build.input("x", [.fixed(2)]), Build.input("c", [], .bool)],
            outputs: [ValueInfo(name: "y", type: nil), ValueInfo(name: "z", type: nil)],
            initializers: [try Build.floatTensor("w", [2], [1, 2])],
            nodes: [
                Build.node("Relu", ["x"], ["a"], name: "relu"),
                Build.node("Add", ["a", "w"], ["y"], name: "add"),
                Build.node("If", ["c"], ["z"], name: "if", [Attribute("then_branch", .graph(branch)), Attribute("else_branch", .graph(branch))]),
            ])
    }

    @Test func producersAndConsumers() throws {
        let index = GraphIndex(try sample())
        #expect(index.producer(of: "a")?.node == 0)
        #expect(index.producer(of: "y")?.node == 1)
        #expect(index.producer(of: "x") == nil)
        #expect(index.definitions["x"] == .input(0))
        #expect(index.definitions["w"] == .initializer(0))
        #expect(index.consumers(of: "a") == [GraphIndex.Use(node: 1, input: 0), GraphIndex.Use(node: 2, input: nil)])
        #expect(index.consumers(of: "w") == [GraphIndex.Use(node: 1, input: 1)])
        #expect(index.isGraphOutput("y"))
        #expect(!index.isUnused("a"))
        #expect(index.isUnused("nothing"))
    }

    @Test func capturedValuesSeeThroughNesting() throws {
        let graph = try sample()
        #expect(graph.capturedValues.isEmpty)
        let branch = graph.nodes[2].subgraphs[0]
        #expect(branch.capturedValues == ["a"])
        #expect(graph.nodeCountIncludingSubgraphs == 5)
    }
}
