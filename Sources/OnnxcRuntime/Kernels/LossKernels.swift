import OnnxcCore
#if canImport(Glibc)
import Glibc
#endif

/// Training losses that appear in exported graphs: NegativeLogLikelihoodLoss and SoftmaxCrossEntropyLoss.
/// Both reduce to one gather-and-weight core; SoftmaxCrossEntropyLoss first takes log-softmax over axis 1.
enum LossKernels {
    static let table: [String: Kernel] = [
        "NegativeLogLikelihoodLoss": { inputs, context throws(RuntimeError) in
            let input = try context.tensor(inputs, 0)
            let target = try context.tensor(inputs, 1)
            let weight = try context.optionalTensor(inputs, 2)
            return [.tensor(try negativeLogLikelihood(logProbabilities: input, target: target, weight: weight, context: context))]
        },
        "SoftmaxCrossEntropyLoss": { inputs, context throws(RuntimeError) in
            let scores = try context.tensor(inputs, 0)
            let target = try context.tensor(inputs, 1)
            let weight = try context.optionalTensor(inputs, 2)
            let logProbabilities = try logSoftmaxOverClasses(scores, op: context.node.opType)
            let loss = try negativeLogLikelihood(logProbabilities: logProbabilities, target: target, weight: weight, context: context)
            return [.tensor(loss), .tensor(logProbabilities)]
        },
    ]

    /// log(softmax(x)) along axis 1, computed stably (max subtracted) in Double and stored in x's type.
    static func logSoftmaxOverClasses(_ x: Tensor, op: String) throws(RuntimeError) -> Tensor {
        guard x.rank >= 2 else { throw .invalidShape("\(op): scores must have rank 2 or more, got \(x.shape)") }
        let n = x.shape[0], c = x.shape[1], inner = x.count / max(n * c, 1)
        let values = x.doubles()
        var out = [Double](repeating: 0, count: values.count)
        for i in 0..<n {
            for d in 0..<inner {
                var top = -Double.infinity
                for k in 0..<c { top = max(top, values[(i * c + k) * inner + d]) }
                var sum = 0.0
                for k in 0..<c { sum += exp(values[(i * c + k) * inner + d] - top) }
                let logSum = log(sum) + top
                for k in 0..<c { out[(i * c + k) * inner + d] = values[(i * c + k) * inner + d] - logSum }
            }
        }
        return try floatTensor(out, like: x, shape: x.shape, op: op)
    }

    /// The ONNX reference's NLL: loss[n, d] = −weight[t]·x[n, t, d] with t = target[n, d], zero where t is
    /// `ignore_index`; "mean" divides by the sum of the weights used (or by the element count without weights
    /// and without ignore_index).
    static func negativeLogLikelihood(logProbabilities x: Tensor, target: Tensor, weight: Tensor?, context: KernelContext) throws(RuntimeError) -> Tensor {
        let op = context.node.opType
        guard x.rank >= 2 else { throw .invalidShape("\(op): input must have rank 2 or more, got \(x.shape)") }
        let n = x.shape[0], c = x.shape[1]
        guard target.shape == [n] + Array(x.shape.dropFirst(2)) else {
            throw .invalidShape("\(op): target shape \(target.shape) does not match input \(x.shape) without its class axis")
        }
        let reduction = context.attributes.string("reduction", "mean")
        let ignoreIndex = context.attributes.int("ignore_index")
        let inner = target.count / max(n, 1)
        let values = x.doubles(), labels = target.int64s()
        let weights = weight?.doubles()
        if let weights, weights.count != c { throw .invalidShape("\(op): weight has \(weights.count) entries for \(c) classes") }
        var losses = [Double](repeating: 0, count: target.count)
        var used = [Double](repeating: 0, count: target.count)
        for i in 0..<n {
            for d in 0..<inner {
                let k = i * inner + d
                let label = labels[k]
                if let ignoreIndex, label == ignoreIndex { continue }
                guard label >= 0 && label < Int64(c) else { throw .invalidArgument("\(op): target \(label) is outside [0, \(c))") }
                let w = weights?[Int(label)] ?? 1
                losses[k] = -values[(i * c + Int(label)) * inner + d] * w
                used[k] = w
            }
        }
        switch reduction {
        case "none":
            return try floatTensor(losses, like: x, shape: target.shape, op: op)
        case "sum":
            return try floatTensor([losses.reduce(0, +)], like: x, shape: [], op: op)
        case "mean":
            let total = losses.reduce(0, +)
            let denominator = weights != nil || ignoreIndex != nil ? used.reduce(0, +) : Double(losses.count)
            return try floatTensor([total / denominator], like: x, shape: [], op: op)
        default:
            throw .invalidArgument("\(op): reduction must be none, sum or mean, not \(reduction)")
        }
    }

    private static func floatTensor(_ values: [Double], like x: Tensor, shape: [Int], op: String) throws(RuntimeError) -> Tensor {
        switch x.dtype {
        case .float: return try Tensor(values.map { Float($0) }, shape: shape)
        case .double: return try Tensor(values, shape: shape)
        case .float16: return try Tensor(values.map { Float16(Float($0)) }, shape: shape)
        default: throw .unsupportedType(op: op, dtype: x.dtype.onnxName)
        }
    }
}
