import OnnxcCore
import OnnxcFrontend
import OnnxcIR
import OnnxcPasses
import OnnxcRuntime
import OnnxcTestSupport
import Testing

/// Attention spelled out as exporters emit it: Q [2, 3, 5, 4], K [2, 3, 6, 4] transposed to Kt [2, 3, 4, 6],
/// V [2, 3, 6, 7], an optional padding mask [2, 1, 1, 6].
enum AttentionPatterns {
    enum Scale: CaseIterable {
        case none
        /// MatMul(Q, Kt) · c
        case mulAfter
        /// c · MatMul(Q, Kt)
        case mulAfterSwapped
        /// MatMul(Q, Kt) / c — BERT (Hugging Face)
        case divAfter
        /// MatMul(Q / c, Kt)
        case divOnQ
        /// MatMul(Q · √c, Kt · √c) — torch's scaled_dot_product_attention
        case mulOnBoth
    }

    enum Mask { case none, scoresFirst, maskFirst }

    struct Options {
        var scale = Scale.divAfter
        var mask = Mask.scoresFirst
        var opset: Int64 = 17
        var softmaxAxis: Int64?
        var scaleIsInput = false
        var scaleDims: [Int64] = []
        var scoresAreOutput = false
        var extraReaderOfSoftmax = false
    }

    static let scale: Float = 2

    static func model(_ o: Options = Options()) throws -> Model {
        var inputs = [Build.input("q", [.fixed(2), .fixed(3), .fixed(5), .fixed(4)]),
                      Build.input("k", [.fixed(2), .fixed(3), .fixed(6), .fixed(4)]),
                      Build.input("v", [.fixed(2), .fixed(3), .fixed(6), .fixed(7)])]
        var outputs = [ValueInfo(name: "y", type: nil)]
        var initializers: [OnnxcIR.Tensor] = []
        var nodes = [Build.node("Transpose", ["k"], ["kt"], [Attribute("perm", .ints([0, 1, 3, 2]))])]
        let count = Int(o.scaleDims.reduce(1, *))
        if o.scaleIsInput {
            inputs.append(Build.input("c", o.scaleDims.map(Dim.fixed)))
        } else {
            let value = o.scale == .mulOnBoth ? scale.squareRoot() : scale
            initializers.append(try Build.floatTensor("c", o.scaleDims, [Float](repeating: value, count: count)))
        }
        var q = "q", kt = "kt"
        switch o.scale {
        case .divOnQ:
            nodes.append(Build.node("Div", ["q", "c"], ["qs"]))
            q = "qs"
        case .mulOnBoth:
            nodes.append(Build.node("Mul", ["q", "c"], ["qs"]))
            nodes.append(Build.node("Mul", ["c", "kt"], ["kts"]))
            (q, kt) = ("qs", "kts")
        default:
            break
        }
        nodes.append(Build.node("MatMul", [q, kt], ["s"]))
        var scores = "s"
        switch o.scale {
        case .mulAfter: nodes.append(Build.node("Mul", ["s", "c"], ["ss"]))
        case .mulAfterSwapped: nodes.append(Build.node("Mul", ["c", "s"], ["ss"]))
        case .divAfter: nodes.append(Build.node("Div", ["s", "c"], ["ss"]))
        default: break
        }
        if nodes.last?.outputs == ["ss"] { scores = "ss" }
        if o.mask != .none {
            inputs.append(Build.input("mask", [.fixed(2), .fixed(1), .fixed(1), .fixed(6)]))
            nodes.append(Build.node("Add", o.mask == .scoresFirst ? [scores, "mask"] : ["mask", scores], ["masked"]))
            scores = "masked"
        }
        let axis = o.softmaxAxis.map { [Attribute("axis", .int($0))] } ?? []
        nodes.append(Build.node("Softmax", [scores], ["p"], axis))
        nodes.append(Build.node("MatMul", ["p", "v"], ["y"]))
        if o.scoresAreOutput { outputs.append(ValueInfo(name: "s", type: nil)) }
        if o.extraReaderOfSoftmax {
            nodes.append(Build.node("Neg", ["p"], ["np"]))
            outputs.append(ValueInfo(name: "np", type: nil))
        }
        let graph = Graph(inputs: inputs, outputs: outputs, initializers: initializers, nodes: nodes)
        // The pipeline runs after shape inference (the fusion needs the operands' ranks); so do these tests.
        return ShapeInference.infer(Build.model(graph, opset: o.opset)).0
    }

    static func feeds(_ o: Options) throws -> [String: OnnxcRuntime.Tensor] {
        var feeds = ["q": try PassTesting.input(DecomposedPatterns.values(120, seed: 1), [2, 3, 5, 4]),
                     "k": try PassTesting.input(DecomposedPatterns.values(144, seed: 2), [2, 3, 6, 4]),
                     "v": try PassTesting.input(DecomposedPatterns.values(252, seed: 3), [2, 3, 6, 7])]
        // Batch 1 pads its last two keys away, as a BERT padding mask does.
        if o.mask != .none { feeds["mask"] = try PassTesting.input([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, -1e4, -1e4], [2, 1, 1, 6]) }
        if o.scaleIsInput {
            let count = Int(o.scaleDims.reduce(1, *))
            feeds["c"] = try PassTesting.input([Float](repeating: scale, count: count), o.scaleDims.map { Int($0) })
        }
        return feeds
    }

    static func attentionNodes(_ model: Model) -> [Node] {
        model.graph.nodes.filter { $0.opType == "Attention" && $0.domain == RuntimeOps.domain }
    }
}

@Suite struct AttentionFusionTests {
    /// Applies the pass for the runtime target and checks the outputs against the unfused model.
    private func fused(_ options: AttentionPatterns.Options) throws -> Model {
        let model = try AttentionPatterns.model(options)
        let result = try PassTesting.apply(AttentionFusion(), to: model, target: .runtime)
        try PassTesting.expectSameOutputs(model, result, try AttentionPatterns.feeds(options))
        return result
    }

    @Test(arguments: AttentionPatterns.Scale.allCases)
    func fusesEveryScaleForm(_ scale: AttentionPatterns.Scale) throws {
        var options = AttentionPatterns.Options()
        options.scale = scale
        let result = try fused(options)
        #expect(DecomposedPatterns.ops(result) == ["Transpose", "Attention"])
        let node = try #require(AttentionPatterns.attentionNodes(result).first)
        #expect(node.inputs == ["q", "kt", "v", "mask"])
        #expect(node.outputs == ["y"])
        let expected: OnnxcIR.AttributeValue? = switch scale {
        case .none: nil
        case .mulAfter, .mulAfterSwapped: .float(2)
        case .divAfter, .divOnQ: .float(0.5)
        case .mulOnBoth: .float(Float(Double(AttentionPatterns.scale.squareRoot()) * Double(AttentionPatterns.scale.squareRoot())))
        }
        #expect(node.attribute("scale") == expected)
    }

    @Test func fusesBothMaskOrdersAndNoMask() throws {
        for mask in [AttentionPatterns.Mask.maskFirst, .none] {
            var options = AttentionPatterns.Options()
            options.mask = mask
            let result = try fused(options)
            let node = try #require(AttentionPatterns.attentionNodes(result).first)
            #expect(node.inputs == (mask == .none ? ["q", "kt", "v"] : ["q", "kt", "v", "mask"]))
        }
    }

    @Test func fusesALastAxisSoftmaxSpelledPositivelyAndBeforeOpset13() throws {
        var options = AttentionPatterns.Options()
        options.softmaxAxis = 3
        #expect(AttentionPatterns.attentionNodes(try fused(options)).count == 1)
        options.opset = 12
        #expect(AttentionPatterns.attentionNodes(try fused(options)).count == 1)
    }

    @Test func leavesASoftmaxOverAnotherAxis() throws {
        var options = AttentionPatterns.Options()
        options.softmaxAxis = 2
        #expect(AttentionPatterns.attentionNodes(try fused(options)).isEmpty)
        // Before opset 13 the default axis 1 coerces [2, 3, 5, 6] to [2, 90]: not a per-row softmax.
        options.softmaxAxis = nil
        options.opset = 12
        #expect(AttentionPatterns.attentionNodes(try fused(options)).isEmpty)
    }

    @Test func leavesMultiUseIntermediates() throws {
        var options = AttentionPatterns.Options()
        options.scoresAreOutput = true
        #expect(AttentionPatterns.attentionNodes(try fused(options)).isEmpty)
        options = AttentionPatterns.Options()
        options.extraReaderOfSoftmax = true
        #expect(AttentionPatterns.attentionNodes(try fused(options)).isEmpty)
    }

    @Test func leavesNonConstantOrNonScalarScales() throws {
        var options = AttentionPatterns.Options()
        options.scaleIsInput = true
        #expect(AttentionPatterns.attentionNodes(try fused(options)).isEmpty)
        options = AttentionPatterns.Options()
        options.scaleDims = [6]
        #expect(AttentionPatterns.attentionNodes(try fused(options)).isEmpty)
        // A one-element scale of rank 5 would raise the scores' rank: left alone too.
        options.scaleDims = [1, 1, 1, 1, 1]
        #expect(AttentionPatterns.attentionNodes(try fused(options)).isEmpty)
    }

    @Test func createsNoRuntimeOpForTheOnnxTarget() throws {
        let model = try AttentionPatterns.model()
        let result = try PassTesting.apply(AttentionFusion(), to: model, target: .onnx)
        #expect(!result.graph.containsNode { $0.domain == RuntimeOps.domain })
        #expect(!result.opsetImports.contains { $0.domain == RuntimeOps.domain })
    }

    @Test func inferredTypeOfTheFusedOutputIsTheUnfusedOne() throws {
        let result = try fused(AttentionPatterns.Options())
        var stripped = result
        stripped.graph.valueInfo = []
        let inferred = ShapeInference.infer(stripped)
        #expect(inferred.1.isEmpty)
        #expect(inferred.0.graph.declaredType(of: "y") == result.graph.declaredType(of: "y"))
    }

    /// bert_tiny (opset 17, dynamic batch and sequence, padding mask) has one attention block per layer; the
    /// runtime -O2 pipeline fuses every one and keeps the outputs of the unoptimized model.
    @Test func fusesEveryAttentionBlockOfBertTiny() throws {
        let path = Fixtures.testdata.appendingPathComponent("exported/bert_tiny.onnx").path
        let model = try ONNXImporter.load(path: path)
        let softmaxes = model.graph.nodes.filter { $0.opType == "Softmax" }.count
        let manager = PassManager(passes: Pipelines.passes(level: 2, target: .runtime), options: PassOptions(target: .runtime))
        let optimized = try manager.run(ShapeInference.infer(model).0)
        #expect(softmaxes == 2)
        #expect(AttentionPatterns.attentionNodes(optimized).count == softmaxes)
        #expect(!optimized.graph.nodes.contains { $0.opType == "Softmax" })
        #expect(optimized.opsetImports.contains { $0.domain == RuntimeOps.domain })
        let ids = (0..<24).map { Int64(($0 * 37 + 5) % 1000) }
        let mask: [Int64] = [1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0]
        let feeds = ["input_ids": try OnnxcRuntime.Tensor(ids, shape: [2, 12]), "attention_mask": try OnnxcRuntime.Tensor(mask, shape: [2, 12])]
        let expected = try PassTesting.outputs(model, feeds), actual = try PassTesting.outputs(optimized, feeds)
        #expect(Set(expected.keys) == Set(actual.keys))
        for (name, tensor) in expected {
            let other = try #require(actual[name])
            #expect(TensorComparison.difference(other, tensor, rtol: 1e-4, atol: 1e-5) == nil, "output \(name)")
        }
    }
}
