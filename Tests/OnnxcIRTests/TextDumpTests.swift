import OnnxcCore
import OnnxcIR
import OnnxcTestSupport
import Testing

@Suite struct TextDumpTests {
    @Test func rendersNodesAttributesAndSubgraphs() throws {
        let branch = Graph(name: "then", outputs: [ValueInfo(name: "t", type: .tensor(.float, Shape(fixed: [2])))],
                           nodes: [Build.node("Identity", ["a"], ["t"])])
        let graph = Graph(
            name: "demo",
            inputs: [Build.input("x", [.symbolic("batch"), .fixed(2)]), Build.input("c", [], .bool)],
            outputs: [ValueInfo(name: "y", type: .tensor(.float, Shape([.symbolic("batch"), .fixed(2)])))],
            initializers: [try Build.floatTensor("w", [2], [1.5, -2])],
            nodes: [
                Build.node("LeakyRelu", ["x"], ["a"], name: "act", [Attribute("alpha", .float(0.25))]),
                Build.node("Clip", ["a", "", "w"], ["y"], name: "clip"),
                Build.node("If", ["c"], ["z"], name: "branch", [Attribute("then_branch", .graph(branch))]),
                Build.node("Custom", ["a"], ["u", ""], [Attribute("modes", .strings([Array("a b".utf8)])), Attribute("k", .ints([1, -1]))]),
            ])
        var model = Build.model(graph)
        model.opsetImports.append(OpsetImport(domain: "com.example", version: 1))
        model.graph.nodes[3].domain = "com.example"
        let text = TextDump.render(model, options: DumpOptions(includeWeights: true))
        let expected = """
            model ir_version=8 opsets=[ai.onnx:17, com.example:1] producer="onnxc-tests"
            graph "demo" {
              input  %x: f32[batch,2]
              input  %c: bool[]
              init   %w: f32[2] = {1.5, -2.0} min=-2.0 max=1.5 mean=-0.25
              %a = LeakyRelu[alpha=0.25](%x)  # act
              %y: f32[batch,2] = Clip(%a, _, %w)  # clip
              %z = If(%c)  # branch
                then_branch: graph "then" {
                  %t: f32[2] = Identity(%a)
                  output %t: f32[2]
                }
              %u, _ = com.example::Custom[modes=["a b"], k=[1,-1]](%a)
              output %y: f32[batch,2]
            }

            """
        #expect(text == expected)
    }

    @Test func quotesNamesThatNeedIt() {
        #expect(DumpOptions().maximumValues == 16)
        let graph = Graph(inputs: [Build.input("a b", [.fixed(1)])], outputs: [ValueInfo(name: "a b", type: nil)])
        #expect(TextDump.render(Build.model(graph)).contains("input  %\"a b\": f32[1]"))
    }
}
