import OnnxcCore
import OnnxcFormat

/// Steps for products with a constant weight — Gemm, MatMul and their fused forms, the fully connected layers of
/// CNN heads and every projection of a transformer: the weight sits in the GEMM's packed B layout (packed by the
/// compiler, or once here), A is read in place, and bias and activation run in the GEMM's epilogue.
enum LinearSteps {
    static let factories: [String: StepFactories.Factory] = [
        "Gemm": { setup throws(RuntimeError) in try DenseStep(setup) },
        "MatMul": { setup throws(RuntimeError) in try DenseStep(setup) },
        KernelRegistry.key(RuntimeOps.domain, "FusedGemm"): { setup throws(RuntimeError) in try DenseStep(setup) },
        KernelRegistry.key(RuntimeOps.domain, "FusedMatMul"): { setup throws(RuntimeError) in try DenseStep(setup) },
    ]

    /// Whether a product runs as a `DenseStep`, which is also when the compiler may pack its weight: a 2-D weight;
    /// for Gemm, A not transposed, alpha 1 and C absent or a constant per-column vector with beta 1; for FusedMatMul,
    /// its bias absent or a constant vector. `biasIsConstantVector`: nil when the bias input is absent.
    static func packable(opType: String, domain: String, attributes: (String) -> Int64?, alphaBeta: (Float, Float),
                         weightRank: Int, biasIsConstantVector: Bool?) -> Bool {
        guard weightRank == 2 else { return false }
        switch (domain, opType) {
        case ("", "Gemm"), (RuntimeOps.domain, "FusedGemm"):
            guard attributes("transA") ?? 0 == 0, alphaBeta.0 == 1 else { return false }
            guard let bias = biasIsConstantVector else { return true }
            return bias && alphaBeta.1 == 1
        case ("", "MatMul"):
            return true
        case (RuntimeOps.domain, "FusedMatMul"):
            return biasIsConstantVector ?? true
        default:
            return false
        }
    }

    /// A ← x · W (+ bias) then the activation, for A of any rank ≥ 1 (rows are every dim but the last).
    struct DenseStep: Step {
        let node: RuntimeNode
        let a: TensorID, y: TensorID
        let k: Int, n: Int
        /// Gemm: A must be 2-D; MatMul: any rank, a 1-D A gives a 1-D output.
        let isGemm: Bool
        let weights: Tensor
        let bias: Tensor?
        let activation: FusedActivation?
        let slot: ArenaSlot?

        init?(_ setup: StepSetup) throws(RuntimeError) {
            let node = setup.node
            isGemm = node.opType == "Gemm" || node.opType == "FusedGemm"
            guard let w = setup.constant(1), w.dtype == .float, w.rank == 2, setup.dtype(setup.input(0)) == .float else { return nil }
            let transposed = isGemm && node.attributes.int("transB", 0) != 0
            let (k, n) = transposed ? (w.shape[1], w.shape[0]) : (w.shape[0], w.shape[1])
            let biasID = setup.input(2)
            let bias = setup.constant(2)
            let biasIsVector: Bool? = biasID < 0 ? nil : bias.map { $0.dtype == .float && $0.count == n && ($0.rank == 1 || ($0.rank == 2 && $0.shape[0] == 1)) } ?? false
            guard LinearSteps.packable(opType: node.opType, domain: node.domain, attributes: { node.attributes.values[$0].flatMap { if case .int(let v) = $0 { v } else { nil } } },
                                       alphaBeta: (node.attributes.float("alpha", 1), node.attributes.float("beta", 1)),
                                       weightRank: w.rank, biasIsConstantVector: biasIsVector),
                  PackedGemm.fits(m: 1, n: n, k: k), k > 0, n > 0 else { return nil }
            self.node = node
            a = setup.input(0)
            y = setup.output(0)
            self.k = k
            self.n = n
            self.bias = bias
            activation = try FusedActivation(node: node)
            slot = setup.slot(y)
            switch w.packing {
            case .gemmB(let pk, let pn)? where pk == k && pn == n:
                weights = w
            case nil:
                weights = try LinearSteps.pack(w, k: k, n: n, transposed: transposed)
            case let other?:
                throw .invalidArgument("\(node.opType): weights were packed for another product (\(other)); recompile the model")
            }
        }

        func run(_ frame: Frame) throws(RuntimeError) {
            let x = try frame.tensor(a, self)
            do throws(RuntimeError) {
                guard x.dtype == .float, x.rank >= 1, x.shape[x.rank - 1] == k, !isGemm || x.rank == 2 else {
                    throw .invalidShape("\(node.opType): A \(x.dtype.onnxName)\(x.shape) does not match the weight's \(k) rows")
                }
                let rows = x.shape.dropLast().reduce(1, *)
                let shape = Array(x.shape.dropLast()) + [n]
                guard PackedGemm.fits(m: rows, n: n, k: k) else { throw .invalidShape("\(node.opType): \(x.shape) exceeds the kernel's 32-bit limits") }
                let out = try frame.output(slot, y, .float, shape)
                let fused = PackedGemm.kernelActivation(activation) != nil
                if out.count > 0 {
                    x.withValues(Float.self) { xb in
                        weights.withValues(Float.self) { wb in
                            out.withMutableValues(Float.self) { ob in
                                guard let xp = xb.baseAddress, let wp = wb.baseAddress, let op = ob.baseAddress else { return }
                                LinearSteps.withBias(bias) { b in
                                    PackedGemm.multiply(m: rows, n: n, k: k, a: .init(data: xp, rowStride: k, columnStride: 1),
                                                        b: .init(data: wp, rowStride: 0, columnStride: 0, packed: true), c: op, ldc: n,
                                                        bias: b.map { .perColumn($0) } ?? .none, activation: fused ? activation : nil)
                                }
                            }
                        }
                    }
                }
                frame.values[Int(y)] = .tensor(fused ? out : try FusedKernels.epilogue(out, bias: nil, activation, op: node.opType))
            } catch {
                throw .atNode(node: node.displayName, op: node.opType, error)
            }
        }
    }

    static func withBias<R>(_ bias: Tensor?, _ body: (UnsafePointer<Float>?) -> R) -> R {
        guard let bias else { return body(nil) }
        return bias.withValues(Float.self) { body($0.baseAddress) }
    }

    /// Packs a plain weight at load (a model compiled with --no-prepack, or an interpreter-built program).
    static func pack(_ w: Tensor, k: Int, n: Int, transposed: Bool) throws(RuntimeError) -> Tensor {
        guard let bytes = PrepackedWeights.packedGemmBytes(k: k, n: n) else { throw .invalidShape("weights \(w.shape) are too large to pack") }
        let packed = try Tensor(uninitialized: .float, shape: [bytes / 4])
        w.withValues(Float.self) { source in
            packed.withMutableValues(Float.self) { target in
                guard let from = source.baseAddress, let to = target.baseAddress else { return }
                PackedGemm.packB(k: k, n: n, b: from, rowStride: transposed ? 1 : n, columnStride: transposed ? k : 1, into: to)
            }
        }
        return packed
    }
}
