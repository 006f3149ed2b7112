import OnnxcCore
import OnnxcIR
import OnnxcTestSupport
import Testing

@Suite struct VerifierTests {
    func messages(_ model: Model) -> [String] {
        do {
            try Verifier.verify(model)
            return []
        } catch {
            guard case .invalidGraph(let diagnostics) = error else { return ["unexpected \(error)"] }
            return diagnostics.map(\.description)
        }
    }

    func valid() throws -> Graph {
        Graph(name: "g", inputs: [Build.input("x", [.symbolic("batch"), .fixed(2)])],
              outputs: [ValueInfo(name: "y", type: nil)],
              initializers: [try Build.floatTensor("w", [2], [1, 2])],
              nodes: [Build.node("Add", ["x", "w"], ["s"], name: "add"), Build.node("Relu", ["s"], ["y"], name: "relu")])
    }

    @Test func acceptsAValidGraph() throws {
        #expect(messages(Build.model(try valid())).isEmpty)
    }

    @Test func reportsEveryProblemAtOnce() throws {
        var graph = try valid()
        graph.nodes.append(Build.node("Relu", ["nowhere"], ["s"], name: "again"))
        graph.outputs.append(ValueInfo(name: "missing", type: nil))
        let found = messages(Build.model(graph))
        #expect(found.count == 3)
        #expect(found.contains { $0.contains("input nowhere is not defined before it is used") && $0.contains("node again") })
        #expect(found.contains { $0.contains("value s is defined more than once") })
        #expect(found.contains { $0.contains("graph output missing is never defined") })
    }

    @Test func useBeforeDefinitionIsAnError() throws {
        var graph = try valid()
        graph.nodes.reverse()
        #expect(messages(Build.model(graph)).contains { $0.contains("input s is not defined before it is used") })
    }

    @Test func subgraphsSeeOuterValuesDefinedBeforeTheirNode() throws {
        let branch = Graph(name: "b", outputs: [ValueInfo(name: "t", type: nil)], nodes: [Build.node("Identity", ["s"], ["t"])])
        var graph = try valid()
        graph.inputs.append(Build.input("c", [], .bool))
        graph.nodes.append(Build.node("If", ["c"], ["z"], name: "if",
                                      [Attribute("then_branch", .graph(branch)), Attribute("else_branch", .graph(branch))]))
        #expect(messages(Build.model(graph)).isEmpty)

        // The same branch placed before `s` exists reads a value that is not yet defined.
        let early = graph.nodes.removeLast()
        graph.nodes.insert(early, at: 0)
        #expect(messages(Build.model(graph)).filter { $0.contains("input s is not defined") }.count == 2)
    }

    @Test func subgraphMayNotRedefineAnOuterValue() throws {
        let branch = Graph(name: "b", outputs: [ValueInfo(name: "x", type: nil)], nodes: [Build.node("Identity", ["s"], ["x"])])
        var graph = try valid()
        graph.inputs.append(Build.input("c", [], .bool))
        graph.nodes.append(Build.node("If", ["c"], ["z"], [Attribute("then_branch", .graph(branch))]))
        #expect(messages(Build.model(graph)).contains { $0.contains("already defined in an enclosing graph") })
    }

    @Test func initializerMustMatchItsDeclaration() throws {
        var graph = try valid()
        graph.inputs.append(Build.input("w", [.fixed(3)]))
        #expect(messages(Build.model(graph)).contains { $0.contains("initializer w has shape [2] but is declared as [3]") })
        graph.inputs[1] = Build.input("w", [.fixed(2)], .int64)
        #expect(messages(Build.model(graph)).contains { $0.contains("holds f32[2] but is declared as i64[2]") })
        graph.inputs[1] = Build.input("w", [.symbolic("n")])
        #expect(messages(Build.model(graph)).isEmpty)
    }

    @Test func domainsMustBeImported() throws {
        var graph = try valid()
        graph.nodes[1].domain = "com.example"
        #expect(messages(Build.model(graph)).contains { $0.contains("operator domain 'com.example' is not in the model's opset_import") })
    }

    @Test func modelInputsNeedTypes() throws {
        var graph = try valid()
        graph.inputs[0].type = nil
        #expect(messages(Build.model(graph)).contains { $0.contains("model input x declares no type") })
    }
}
