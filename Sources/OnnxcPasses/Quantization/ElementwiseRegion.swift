import OnnxcCore
import OnnxcIR
import OnnxcLowering
import OnnxcRuntime

/// A chain of element-wise ops that computes a function of one tensor alone, scalar constants aside: GELU as
/// exporters write it below opset 20 (x · 0.5 · (1 + erf(x / √2))), x · sigmoid(x), a softplus spelled out.
/// Quantized op by op, such a chain is a string of float islands and roundings (and its Erf has no integer form);
/// as a whole it is one 256-entry table of its input. So `QDQInsertion` quantizes only the chain's input and
/// output, and `QuantizedLowering` tabulates DQ(input) → chain → Q(output) by running the chain on the input
/// grid's 256 values. Found by walking back from the output through the chain's producers.
struct ElementwiseRegion: Equatable {
    let input: String
    let output: String
    /// Graph indices, in graph order.
    let nodes: [Int]

    /// Default-domain ops that map each element on its own (the binary ones when every other operand is a scalar
    /// constant or a value of the chain itself).
    static let ops: Set<String> = [
        "Add", "Sub", "Mul", "Div", "Pow", "Max", "Min", "Erf", "Tanh", "Sigmoid", "Relu", "Exp", "Log", "Neg", "Abs",
        "Sqrt", "Reciprocal", "Softplus", "Softsign", "HardSigmoid", "HardSwish", "LeakyRelu", "Elu", "Selu", "Celu",
        "Gelu", "Mish", "Clip", "Sin", "Cos",
    ]

    /// The region whose output is `output`, or nil: walking back from `output`'s producer through element-wise
    /// ops until tensors that are not their outputs, which must be one tensor (the input; `stop` may end the walk
    /// earlier at a tensor, as the lowering does at a DequantizeLinear's output). At least two ops; every value
    /// the chain computes but `output` is read only inside it.
    static func ending(at output: String, in graph: Graph, index: GraphIndex, stop: (String) -> Bool = { _ in false }) -> ElementwiseRegion? {
        var members = Set<Int>()
        var leaves = Set<String>()
        var pending = [output]
        var seen = Set<String>()
        while let value = pending.popLast() {
            guard seen.insert(value).inserted else { continue }
            // A second leaf means the chain computes from two values: no region (and no need to walk further).
            guard !stop(value), let (p, _) = index.producer(of: value), admissible(graph.nodes[p], graph) else {
                leaves.insert(value)
                if leaves.count > 1 { return nil }
                continue
            }
            let node = graph.nodes[p]
            members.insert(p)
            for input in node.inputs where !input.isEmpty && !isScalarConstant(input, graph) { pending.append(input) }
        }
        guard members.count >= 2, leaves.count == 1, let input = leaves.first, input != output,
              FusionSupport.constant(input, in: graph) == nil else { return nil }
        // Only `output` leaves the chain.
        for m in members {
            for value in graph.nodes[m].outputs where value != output {
                if index.isGraphOutput(value) || index.consumers(of: value).contains(where: { !members.contains($0.node) }) { return nil }
            }
        }
        return ElementwiseRegion(input: input, output: output, nodes: members.sorted())
    }

    static func isScalarConstant(_ name: String, _ graph: Graph) -> Bool {
        guard let t = FusionSupport.constant(name, in: graph) else { return false }
        return t.data.elementCount == 1 && t.dtype == .float
    }

    /// An element-wise op of one output whose constant operands are all scalars and that reads some value.
    static func admissible(_ node: Node, _ graph: Graph) -> Bool {
        node.domain.isEmpty && ops.contains(node.opType) && node.outputs.count == 1
            && node.inputs.contains { !$0.isEmpty && !isScalarConstant($0, graph) }
            && node.inputs.allSatisfy { $0.isEmpty || isScalarConstant($0, graph) || FusionSupport.constant($0, in: graph) == nil }
    }

    /// Every region of `graph`, each as long as it can be: outputs are tried from the graph's end, and an op already
    /// in a region ends no other.
    static func all(in graph: Graph, index: GraphIndex) -> [ElementwiseRegion] {
        var regions: [ElementwiseRegion] = []
        var claimed = Set<Int>()
        for (n, node) in graph.nodes.enumerated().reversed() where !claimed.contains(n) && admissible(node, graph) {
            guard let out = node.outputs.first, !out.isEmpty, let region = ending(at: out, in: graph, index: index),
                  claimed.isDisjoint(with: region.nodes) else { continue }
            claimed.formUnion(region.nodes)
            regions.append(region)
        }
        return regions.reversed()
    }

    /// The output for each of `values` as its input, run by the interpreter on a graph of the chain alone
    /// (its scalar constants copied); nil when it cannot run.
    func evaluate(in graph: Graph, on values: [Float], opsets: [String: Int64]) -> [Float]? {
        let nodes = self.nodes.map { graph.nodes[$0] }
        var named = Set<String>()
        let constants = nodes.flatMap(\.inputs).filter { named.insert($0).inserted }.compactMap { FusionSupport.constant($0, in: graph) }
        let shape = Shape(fixed: [Int64(values.count)])
        let body = OnnxcIR.Graph(name: "region", inputs: [ValueInfo(name: input, type: .tensor(.float, shape))],
                                 outputs: [ValueInfo(name: output, type: nil)], initializers: constants, nodes: nodes)
        let model = Model(opsetImports: opsets.map { OpsetImport(domain: $0.key, version: $0.value) }, graph: body)
        guard let x = try? OnnxcRuntime.Tensor(values, shape: [values.count]),
              let y = try? Executor(graph: try Lowering.lower(model)).run([input: .tensor(x)])[output]?.tensor,
              y.dtype == .float, y.count == values.count else { return nil }
        return y.array(Float.self)
    }
}
