import OnnxcCore
import OnnxcIR
import OnnxcTestSupport
import Testing

@Suite struct FunctionInlinerTests {
    /// `custom::Scaled(X) -> Y`: Y = LeakyRelu(X, alpha = @alpha), with a default alpha of 0.5.
    let scaled = Function(
        name: "Scaled", domain: "custom", inputs: ["X"], outputs: ["Y"], attributeNames: [],
        attributeDefaults: [Attribute("alpha", .float(0.5))],
        nodes: [Node(name: "act", opType: "LeakyRelu", inputs: ["X"], outputs: ["Y"],
                     attributes: [Attribute("alpha", .float(0), referencedAttribute: "alpha")])],
        opsetImports: [OpsetImport(domain: "", version: 17)])

    func model(_ nodes: [Node], functions: [Function]) -> Model {
        let graph = Graph(inputs: [Build.input("x", [.fixed(2)])], outputs: [ValueInfo(name: "y", type: nil)], nodes: nodes)
        return Model(opsetImports: [OpsetImport(domain: "", version: 17), OpsetImport(domain: "custom", version: 1)],
                     graph: graph, functions: functions)
    }

    @Test func inlinesWithFreshNamesAndResolvedAttributes() throws {
        let calls = [
            Node(name: "one", opType: "Scaled", domain: "custom", inputs: ["x"], outputs: ["m"], attributes: [Attribute("alpha", .float(0.1))]),
            Node(name: "two", opType: "Scaled", domain: "custom", inputs: ["m"], outputs: ["y"]),
        ]
        let inlined = try FunctionInliner.inline(model(calls, functions: [scaled]))
        #expect(inlined.functions.isEmpty)
        #expect(inlined.graph.nodes.map(\.name) == ["one/act", "two/act"])
        #expect(inlined.graph.nodes.map(\.inputs) == [["x"], ["m"]])
        #expect(inlined.graph.nodes.map(\.outputs) == [["m"], ["y"]])
        #expect(inlined.graph.nodes[0].attribute("alpha") == .float(0.1))
        #expect(inlined.graph.nodes[1].attribute("alpha") == .float(0.5))
        #expect(inlined.graph.nodes.allSatisfy { $0.attributes.allSatisfy { $0.referencedAttribute == nil } })
        try Verifier.verify(inlined)
    }

    @Test func internalValuesArePrefixedAndNestedCallsInlined() throws {
        let outer = Function(
            name: "Twice", domain: "custom", inputs: ["A"], outputs: ["B"],
            nodes: [Node(name: "first", opType: "Scaled", domain: "custom", inputs: ["A"], outputs: ["mid"]),
                    Node(name: "second", opType: "Relu", inputs: ["mid"], outputs: ["B"])],
            opsetImports: [OpsetImport(domain: "", version: 17), OpsetImport(domain: "custom", version: 1)])
        let inlined = try FunctionInliner.inline(model([Node(name: "call", opType: "Twice", domain: "custom", inputs: ["x"], outputs: ["y"])],
                                                       functions: [scaled, outer]))
        #expect(inlined.graph.nodes.map(\.opType) == ["LeakyRelu", "Relu"])
        #expect(inlined.graph.nodes[0].outputs == ["call/mid"])
        #expect(inlined.graph.nodes[1].inputs == ["call/mid"])
        try Verifier.verify(inlined)
    }

    @Test func rejectsRecursionAndOpsetConflicts() {
        let recursive = Function(name: "Loop", domain: "custom", inputs: ["A"], outputs: ["B"],
                                 nodes: [Node(opType: "Loop", domain: "custom", inputs: ["A"], outputs: ["B"])],
                                 opsetImports: [OpsetImport(domain: "custom", version: 1)])
        let call = [Node(name: "c", opType: "Loop", domain: "custom", inputs: ["x"], outputs: ["y"])]
        #expect(throws: IRError.self) { try FunctionInliner.inline(model(call, functions: [recursive])) }

        var conflicting = scaled
        conflicting.opsetImports = [OpsetImport(domain: "", version: 13)]
        let use = [Node(name: "c", opType: "Scaled", domain: "custom", inputs: ["x"], outputs: ["y"])]
        do {
            _ = try FunctionInliner.inline(model(use, functions: [conflicting]))
            Issue.record("expected an opset conflict")
        } catch {
            #expect(error.description.contains("imports ai.onnx version 13 but the model imports version 17"))
        }
    }
}
