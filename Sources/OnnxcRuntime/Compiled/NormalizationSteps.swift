import OnnxcCore
import OnnxcFormat

/// Steps for the normalizations of transformer blocks. LayerNormalization runs `ck_layernorm` straight into its
/// planned slot with the constant scale and bias read in place: the registered kernel converts both to doubles and
/// allocates the Mean and InvStdDev outputs on every call, which an inference graph never reads (with the kernel's
/// four sums, bert_tiny's LayerNormalization went from 10 to 5 µs a call; docs/benchmarks.md).
enum NormalizationSteps {
    static let factories: [String: StepFactories.Factory] = [
        "LayerNormalization": { setup in LayerNormStep(setup) },
        KernelRegistry.key(RuntimeOps.domain, "LayerNormalization"): { setup in LayerNormStep(setup) },
    ]

    /// float32 LayerNormalization over the axes from `axis` on, of a compiled shape, with constant float32 scale
    /// and bias of exactly the normalized shape (leading 1s aside), float statistics (`stash_type` 1) and only Y
    /// read. Anything else stays with the registered kernel.
    struct LayerNormStep: Step {
        let node: RuntimeNode
        let x: TensorID, y: TensorID
        let shape: [Int]
        let rows: Int, length: Int
        let scale: Tensor, bias: Tensor?
        let epsilon: Float
        let slot: ArenaSlot?

        init?(_ setup: StepSetup) {
            let node = setup.node
            guard setup.dtype(setup.input(0)) == .float, let shape = setup.staticShape(setup.input(0)), !shape.isEmpty,
                  setup.outputs.dropFirst().allSatisfy({ $0 < 0 }), node.attributes.int("stash_type", 1) == Int64(DType.float.rawValue),
                  let axis = try? Broadcast.axis(node.attributes.int("axis", -1), rank: shape.count, op: node.opType),
                  let scale = setup.constant(1), Self.covers(scale, Array(shape[axis...])) else { return nil }
            let bias = setup.constant(2)
            guard setup.input(2) < 0 || bias.map({ Self.covers($0, Array(shape[axis...])) }) == true else { return nil }
            let rows = shape[..<axis].reduce(1, *), length = shape[axis...].reduce(1, *)
            guard rows > 0, length > 0, rows <= Int(Int32.max), length <= Int(Int32.max) else { return nil }
            self.node = node
            x = setup.input(0)
            y = setup.output(0)
            self.shape = shape
            self.rows = rows
            self.length = length
            self.scale = scale
            self.bias = bias
            epsilon = node.attributes.float("epsilon", 1e-5)
            slot = setup.slot(y)
        }

        /// A float32 parameter of the normalized shape itself: the kernel reads it as one row of `length` values.
        private static func covers(_ parameter: Tensor, _ inner: [Int]) -> Bool {
            guard parameter.dtype == .float, parameter.packing == nil else { return false }
            var dims = parameter.shape[...]
            while dims.count > inner.count, dims.first == 1 { dims = dims.dropFirst() }
            return Array(dims) == inner
        }

        func run(_ frame: Frame) throws(RuntimeError) {
            let input = try frame.tensor(x, self)
            do throws(RuntimeError) {
                guard input.dtype == .float, input.shape == shape else {
                    throw .invalidShape("LayerNormalization: X is \(input.dtype.onnxName)\(input.shape), but the model was compiled for float\(shape); recompile it for these input shapes")
                }
                let out = try frame.output(slot, y, .float, shape)
                input.withValues(Float.self) { xb in
                    scale.withValues(Float.self) { sb in
                        out.withMutableValues(Float.self) { yb in
                            guard let xp = xb.baseAddress, let sp = sb.baseAddress, let yp = yb.baseAddress else { return }
                            LinearSteps.withBias(bias) { bp in
                                PackedGemm.layerNorm(rows: rows, length: length, x: xp, scale: sp, bias: bp, epsilon: epsilon, y: yp, mean: nil, invStd: nil)
                            }
                        }
                    }
                }
                frame.values[Int(y)] = .tensor(out)
            } catch {
                throw .atNode(node: node.displayName, op: node.opType, error)
            }
        }
    }
}
