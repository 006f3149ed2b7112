import OnnxcCore
#if canImport(Glibc)
import Glibc
#endif

/// Optimizer steps of the `ai.onnx.preview.training` domain (Adagrad, Adam, Momentum), as training graphs
/// export them. Each takes R (learning rate) and T (step count), then N tensors per state slot, and updates
/// all N parameter groups with the same rule.
enum TrainingKernels {
    static let domain = "ai.onnx.preview.training"

    static let table: [String: Kernel] = [
        "\(domain)::Adagrad": { inputs, context throws(RuntimeError) in
            let a = context.attributes
            let decay = Double(a.float("decay_factor", 0)), epsilon = Double(a.float("epsilon", 1e-6))
            let norm = Double(a.float("norm_coefficient", 0))
            return try step(inputs, context: context, slots: 3) { r, t, s in
                let (x, g, h) = (s[0], s[1], s[2])
                let rate = r / (1 + t * decay)
                let regularized = norm * x + g
                let hNew = h + regularized * regularized
                return [x - rate * regularized / (hNew.squareRoot() + epsilon), hNew]
            }
        },
        "\(domain)::Adam": { inputs, context throws(RuntimeError) in
            let a = context.attributes
            let alpha = Double(a.float("alpha", 0.9)), beta = Double(a.float("beta", 0.999))
            let epsilon = Double(a.float("epsilon", 1e-6)), norm = Double(a.float("norm_coefficient", 0))
            let post = Double(a.float("norm_coefficient_post", 0))
            return try step(inputs, context: context, slots: 4) { r, t, s in
                let (x, g, v, h) = (s[0], s[1], s[2], s[3])
                let regularized = norm * x + g
                let vNew = alpha * v + (1 - alpha) * regularized
                let hNew = beta * h + (1 - beta) * regularized * regularized
                // Bias correction applies from the first counted step on.
                let rate = t > 0 ? r * (1 - pow(beta, t)).squareRoot() / (1 - pow(alpha, t)) : r
                let xNew = x - rate * vNew / (hNew.squareRoot() + epsilon)
                return [(1 - post) * xNew, vNew, hNew]
            }
        },
        "\(domain)::Momentum": { inputs, context throws(RuntimeError) in
            let a = context.attributes
            guard a.has("alpha"), a.has("beta"), a.has("norm_coefficient"), a.has("mode") else {
                throw .invalidArgument("Momentum needs the attributes alpha, beta, mode and norm_coefficient")
            }
            let alpha = Double(a.float("alpha", 0)), beta = Double(a.float("beta", 0))
            let norm = Double(a.float("norm_coefficient", 0))
            let nesterov = a.string("mode", "standard") == "nesterov"
            return try step(inputs, context: context, slots: 3) { r, t, s in
                let (x, g, v) = (s[0], s[1], s[2])
                let regularized = norm * x + g
                // The gradient's coefficient is 1 on the first step.
                let vNew = alpha * v + (t > 0 ? beta : 1) * regularized
                let xNew = nesterov ? x - r * (regularized + alpha * vNew) : x - r * vNew
                return [xNew, vNew]
            }
        },
    ]

    /// Applies `update` element-wise to each of the N groups. Inputs are R, T, then `slots` blocks of N tensors
    /// (X₁…Xₙ, G₁…Gₙ, …); outputs are the updated blocks in the same order, minus the gradient block.
    private static func step(_ inputs: [Value?], context: KernelContext, slots: Int,
                             _ update: (Double, Double, [Double]) -> [Double]) throws(RuntimeError) -> [Value?] {
        let op = context.node.opType
        guard inputs.count >= 2 + slots, (inputs.count - 2) % slots == 0 else {
            throw .invalidArgument("\(op) needs R, T and \(slots) tensors per parameter group, got \(inputs.count) inputs")
        }
        let r = try context.tensor(inputs, 0).doubles().first ?? 0
        let t = try context.tensor(inputs, 1).doubles().first ?? 0
        let groups = (inputs.count - 2) / slots
        var outputs = [Value?](repeating: nil, count: groups * (slots - 1))
        for group in 0..<groups {
            var blocks: [Tensor] = []
            for slot in 0..<slots { blocks.append(try context.tensor(inputs, 2 + slot * groups + group)) }
            guard blocks.allSatisfy({ $0.shape == blocks[0].shape }) else {
                throw .invalidShape("\(op): the tensors of parameter group \(group) differ in shape")
            }
            let values = blocks.map { $0.doubles() }
            var results = [[Double]](repeating: [Double](repeating: 0, count: blocks[0].count), count: slots - 1)
            for i in 0..<blocks[0].count {
                let updated = update(r, t, values.map { $0[i] })
                for k in 0..<(slots - 1) { results[k][i] = updated[k] }
            }
            // Output k holds the k-th updated state; the gradient block (slot 1) has no output.
            let stateSlots = [0] + Array(2..<slots)
            for (k, slot) in stateSlots.enumerated() {
                outputs[k * groups + group] = .tensor(try typed(results[k], like: blocks[slot], op: op))
            }
        }
        return outputs
    }

    private static func typed(_ values: [Double], like x: Tensor, op: String) throws(RuntimeError) -> Tensor {
        switch x.dtype {
        case .float: return try Tensor(values.map { Float($0) }, shape: x.shape)
        case .double: return try Tensor(values, shape: x.shape)
        default: throw .unsupportedType(op: op, dtype: x.dtype.onnxName)
        }
    }
}
