import OnnxcCore
import OnnxcIR
import OnnxcPasses
import OnnxcRuntime
import OnnxcTestSupport
import Testing

/// What the layout pass tests share: small graph builders, running passes the way the layout stage does (shapes
/// inferred first and after every change), and before/after comparison with a tolerance for reordered sums.
enum LayoutTesting {
    static let nhwc: [Int64] = [0, 2, 3, 1], nchw: [Int64] = [0, 3, 1, 2]

    static func model(inputs: [ValueInfo], outputs: [String], initializers: [OnnxcIR.Tensor] = [], nodes: [Node],
                      opset: Int64 = 17) -> Model {
        var model = Build.model(Graph(inputs: inputs, outputs: outputs.map { ValueInfo(name: $0, type: nil) },
                                      initializers: initializers, nodes: nodes), opset: opset)
        if nodes.contains(where: { $0.domain == RuntimeOps.domain }) {
            model.opsetImports.append(OpsetImport(domain: RuntimeOps.domain, version: RuntimeOps.version))
        }
        return model
    }

    static func input(_ name: String, _ dims: [Int64], _ dtype: DType = .float) -> ValueInfo {
        Build.input(name, dims.map(Dim.fixed), dtype)
    }

    /// Float weights in [-scale, scale].
    static func weights(_ name: String, _ dims: [Int64], seed: Int, scale: Float = 0.3) throws -> OnnxcIR.Tensor {
        try Build.floatTensor(name, dims, Pseudorandom.floats(Int(dims.reduce(1, *)), seed: seed).map { $0 * scale })
    }

    static func node(_ op: String, _ inputs: [String], _ outputs: [String], name: String, domain: String = "",
                     _ attributes: [Attribute] = []) -> Node {
        Node(name: name, opType: op, domain: domain, inputs: inputs, outputs: outputs, attributes: attributes)
    }

    static func transpose(_ input: String, _ output: String, _ perm: [Int64], name: String) -> Node {
        node("Transpose", [input], [output], name: name, [Attribute("perm", .ints(perm))])
    }

    /// Conv `name` reading `x` with weights `name_w` [out, in/group, k, k] (and bias `name_b`), `k/2` padding.
    static func conv(_ x: String, _ y: String, name: String, in inChannels: Int64, out: Int64, kernel: Int64 = 3, group: Int64 = 1,
                     bias: Bool = true, strides: Int64 = 1, seed: Int) throws -> (node: Node, initializers: [OnnxcIR.Tensor]) {
        let pad = kernel / 2
        var initializers = [try weights(name + "_w", [out, inChannels / group, kernel, kernel], seed: seed)]
        if bias { initializers.append(try weights(name + "_b", [out], seed: seed + 1)) }
        var attributes = [Attribute("pads", .ints([pad, pad, pad, pad]))]
        if group != 1 { attributes.append(Attribute("group", .int(group))) }
        if strides != 1 { attributes.append(Attribute("strides", .ints([strides, strides]))) }
        let node = self.node("Conv", [x, name + "_w"] + (bias ? [name + "_b"] : []), [y], name: name, attributes)
        return (node, initializers)
    }

    static func inferred(_ model: Model) -> Model { ShapeInference.infer(model).0 }

    /// `passes` on the runtime target through their own driver, shapes inferred before and after every change (as
    /// the layout stage runs them).
    static func apply(_ passes: [any Pass], to model: Model, target: OptimizationTarget = .runtime) throws -> Model {
        try PassManager(passes: passes, options: PassOptions(target: target), rounds: Pipelines.layoutRounds,
                        reinfersShapes: true).run(inferred(model))
    }

    /// The layout stage exactly as `OptimizationLevel.optimize` runs it after -O2 for the runtime: `Pipelines.layout`
    /// to its fixed point, then `Pipelines.layoutCleanup`, each its own driver.
    static func layoutStage(_ model: Model, target: OptimizationTarget = .runtime) throws -> Model {
        var current = inferred(model)
        for driver in Pipelines.layoutDrivers(options: PassOptions(target: target)) { current = try driver.run(current) }
        return current
    }

    /// Reproducible inputs for every graph input (floats in [-1, 1], integers 1…7).
    static func feeds(_ model: Model) throws -> [String: OnnxcRuntime.Tensor] {
        var feeds: [String: OnnxcRuntime.Tensor] = [:]
        for (i, input) in model.graph.inputs.enumerated() {
            guard let type = input.type?.tensorType, let dims = type.shape?.fixedDims else { continue }
            let shape = dims.map { Int($0) }, count = shape.reduce(1, *)
            switch type.elementType {
            case .float: feeds[input.name] = try OnnxcRuntime.Tensor(Pseudorandom.floats(count, seed: 50 + i), shape: shape)
            case .double: feeds[input.name] = try OnnxcRuntime.Tensor(Pseudorandom.floats(count, seed: 50 + i).map(Double.init), shape: shape)
            case .int64: feeds[input.name] = try OnnxcRuntime.Tensor((0..<count).map { Int64($0 % 7 + 1) }, shape: shape)
            default: continue
            }
        }
        return feeds
    }

    /// Same outputs from both models through the interpreter: |b − a| ≤ 2e-5·(1 + max|a|) per output (the channels-last
    /// kernels sum in another order, so values that cancel to near zero differ by rounding relative to the output's
    /// scale, not their own).
    static func expectSameOutputs(_ a: Model, _ b: Model, sourceLocation: SourceLocation = #_sourceLocation) throws {
        let inputs = try feeds(a)
        let x = try PassTesting.outputs(a, inputs), y = try PassTesting.outputs(b, inputs)
        #expect(Set(x.keys) == Set(y.keys) && !x.isEmpty, sourceLocation: sourceLocation)
        for (name, expected) in x {
            guard let actual = y[name] else { continue }
            let scale = expected.doubles().map(abs).max() ?? 0
            #expect(TensorComparison.difference(actual, expected, rtol: 0, atol: 2e-5 * (1 + scale)) == nil, "output \(name)",
                    sourceLocation: sourceLocation)
        }
    }

    static func nodes(_ model: Model, _ qualifiedOp: String) -> [Node] { model.graph.nodes.filter { $0.qualifiedOpType == qualifiedOp } }

    static func perm(_ node: Node) -> [Int64]? {
        if case .ints(let p)? = node.attribute("perm") { return p }
        return nil
    }

    /// The initializer's int64 values.
    static func ints(_ model: Model, _ name: String) -> [Int64]? { model.graph.initializer(named: name)?.data.integers() }

    static func floats(_ model: Model, _ name: String) -> [Float]? {
        guard let tensor = model.graph.initializer(named: name), tensor.dtype == .float, let bytes = tensor.data.bytes else { return nil }
        return bytes.withUnsafeBytes { raw in
            (0..<tensor.data.elementCount).map { Float(bitPattern: UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: $0 * 4, as: UInt32.self))) }
        }
    }

    /// The node producing `value`.
    static func producer(_ model: Model, _ value: String) -> Node? { model.graph.nodes.first { $0.outputs.contains(value) } }
}
