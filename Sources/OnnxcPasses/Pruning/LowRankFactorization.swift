public import OnnxcIR

public struct LowRankSummary: Sendable {
    public struct Factored: Sendable {
        public var layer: String
        public var rank: Int
        public var fullRank: Int
    }
    public var factored: [Factored] = []
    public var parametersBefore = 0
    public var parametersAfter = 0
}

/// Truncated SVD of dense weights: W (K × N) ≈ (U·Σ)ᵣ (K × r) · Vᵣᵀ (r × N), keeping the fewest singular values
/// whose squares hold `energy` of ‖W‖², and only where r·(K + N) < K·N, i.e. the two thin products cost fewer
/// FLOPs and bytes than the one. Gemm, MatMul with a constant 2-D right operand, and 1×1 Conv (a Gemm over pixels).
public enum LowRankFactorization {
    /// The largest dimension factored: the eigen-solver is O(n³) per sweep in the smaller side.
    static let largestSide = 1024

    public static func factorize(_ model: Model, energy: Double) -> (Model, LowRankSummary) {
        var result = model
        var summary = LowRankSummary()
        let graph = model.graph
        let view = PruningGraphView(graph)
        var taken = FusionSupport.takenNames(graph)
        var nodes: [Node] = []
        summary.parametersBefore = graph.initializers.filter { $0.dtype.isFloatingPoint }.reduce(0) { $0 + $1.data.elementCount }
        for node in graph.nodes {
            guard let (k, n, w) = matrix(node, view), min(k, n) <= largestSide, min(k, n) >= 2,
                  let (left, right, rank) = factor(w, k, n, energy: energy), rank * (k + n) < k * n,
                  let weight = view.constant(node.inputs[1]) else {
                nodes.append(node)
                continue
            }
            let name = node.name.isEmpty ? node.displayName : node.name
            let mid = FusionSupport.freshName(node.outputs[0] + "_lowrank", &taken)
            let leftName = FusionSupport.freshName(weight.name + "_u", &taken), rightName = FusionSupport.freshName(weight.name + "_v", &taken)
            var first = node, second = node
            first.name = FusionSupport.freshName(name + "_lowrank_u", &taken)
            first.outputs = [mid]
            second.inputs[0] = mid
            second.inputs[1] = rightName
            first.inputs[1] = leftName
            let leftDims: [Int64], rightDims: [Int64]
            var leftValues = left, rightValues = right
            switch node.opType {
            case "Conv":
                // W is M × C × 1 × 1 = N × K: the first conv maps C → r (Uᵀ rows), the second r → M.
                leftDims = [Int64(rank), Int64(k), 1, 1]
                rightDims = [Int64(n), Int64(rank), 1, 1]
                leftValues = transpose(left, k, rank)
                rightValues = transpose(right, rank, n)
                first.inputs = Array(first.inputs.prefix(2))
                second.attributes = node.attributes.filter { !["strides", "pads", "dilations", "auto_pad"].contains($0.name) }
            case "Gemm":
                let transB = (FusionSupport.int(node, "transB") ?? 0) != 0
                leftDims = transB ? [Int64(rank), Int64(k)] : [Int64(k), Int64(rank)]
                rightDims = transB ? [Int64(n), Int64(rank)] : [Int64(rank), Int64(n)]
                if transB {
                    leftValues = transpose(left, k, rank)
                    rightValues = transpose(right, rank, n)
                }
                first.inputs = Array(first.inputs.prefix(2))
                first.attributes = node.attributes.filter { $0.name != "beta" }
                second.attributes = node.attributes.filter { !["transA", "alpha"].contains($0.name) }
            default:
                leftDims = [Int64(k), Int64(rank)]
                rightDims = [Int64(rank), Int64(n)]
            }
            guard let l = FusionSupport.tensor(leftName, weight.dtype, leftDims, leftValues),
                  let r = FusionSupport.tensor(rightName, weight.dtype, rightDims, rightValues) else {
                nodes.append(node)
                continue
            }
            result.graph.initializers += [l, r]
            nodes += [first, second]
            summary.factored.append(.init(layer: name, rank: rank, fullRank: min(k, n)))
        }
        result.graph.nodes = nodes
        let index = GraphIndex(result.graph)
        let inputs = Set(result.graph.inputs.map(\.name))
        result.graph.initializers.removeAll { !inputs.contains($0.name) && index.isUnused($0.name) }
        summary.parametersAfter = result.graph.initializers.filter { $0.dtype.isFloatingPoint }.reduce(0) { $0 + $1.data.elementCount }
        return (result, summary)
    }

    /// The weight as K × N (input features × outputs), row-major.
    static func matrix(_ node: Node, _ view: PruningGraphView) -> (Int, Int, [Double])? {
        guard node.inputs.count > 1, let w = view.constant(node.inputs[1]), let values = FusionSupport.doubles(w) else { return nil }
        let d = w.dims.map(Int.init)
        switch node.opType {
        case "MatMul" where d.count == 2:
            return (d[0], d[1], values)
        case "Gemm" where d.count == 2 && (FusionSupport.int(node, "transA") ?? 0) == 0:
            let transB = (FusionSupport.int(node, "transB") ?? 0) != 0
            return transB ? (d[1], d[0], transpose(values, d[0], d[1])) : (d[0], d[1], values)
        case "Conv" where d.count == 4 && d[2] == 1 && d[3] == 1 && (FusionSupport.int(node, "group") ?? 1) == 1:
            return (d[1], d[0], transpose(values, d[0], d[1]))
        default:
            return nil
        }
    }

    static func transpose(_ a: [Double], _ rows: Int, _ cols: Int) -> [Double] {
        var t = [Double](repeating: 0, count: a.count)
        for i in 0..<rows { for j in 0..<cols { t[j * rows + i] = a[i * cols + j] } }
        return t
    }

    /// W (k × n) ≈ L (k × r) · R (r × n) from the eigen-decomposition of the smaller Gram matrix.
    static func factor(_ w: [Double], _ k: Int, _ n: Int, energy: Double) -> ([Double], [Double], Int)? {
        let wide = k < n
        let side = wide ? k : n
        // G = W·Wᵀ (k × k) when k < n, else Wᵀ·W (n × n).
        var g = [Double](repeating: 0, count: side * side)
        for i in 0..<side {
            for j in i..<side {
                var s = 0.0
                if wide { for c in 0..<n { s += w[i * n + c] * w[j * n + c] } }
                else { for r in 0..<k { s += w[r * n + i] * w[r * n + j] } }
                g[i * side + j] = s
                g[j * side + i] = s
            }
        }
        let (values, vectors) = SymmetricEigen.decompose(g, side)
        let order = values.indices.sorted { values[$0] > values[$1] }
        let total = values.reduce(0) { $0 + max(0, $1) }
        guard total > 0 else { return nil }
        var rank = 0, kept = 0.0
        while rank < order.count, kept < energy * total {
            kept += max(0, values[order[rank]])
            rank += 1
        }
        rank = max(1, rank)
        var left = [Double](repeating: 0, count: k * rank), right = [Double](repeating: 0, count: rank * n)
        for (q, e) in order.prefix(rank).enumerated() {
            if wide {
                // Columns of U are G's eigenvectors; R = Uᵀ W.
                for i in 0..<k { left[i * rank + q] = vectors[i * side + e] }
                for c in 0..<n {
                    var s = 0.0
                    for i in 0..<k { s += vectors[i * side + e] * w[i * n + c] }
                    right[q * n + c] = s
                }
            } else {
                // Rows of Vᵀ are G's eigenvectors; L = W V.
                for c in 0..<n { right[q * n + c] = vectors[c * side + e] }
                for r in 0..<k {
                    var s = 0.0
                    for c in 0..<n { s += w[r * n + c] * vectors[c * side + e] }
                    left[r * rank + q] = s
                }
            }
        }
        return (left, right, rank)
    }
}

/// Cyclic Jacobi eigen-decomposition of a symmetric matrix: exact to rounding, simple, and fast enough for the
/// ≤ 1024-wide Gram matrices of dense layers.
enum SymmetricEigen {
    /// Eigenvalues and eigenvectors (column j of the n × n row-major result belongs to value j).
    static func decompose(_ matrix: [Double], _ n: Int) -> ([Double], [Double]) {
        var a = matrix
        var v = [Double](repeating: 0, count: n * n)
        for i in 0..<n { v[i * n + i] = 1 }
        let scale = matrix.reduce(0) { $0 + $1 * $1 }
        for _ in 0..<30 {
            var off = 0.0
            for i in 0..<n { for j in (i + 1)..<max(i + 1, n) { off += a[i * n + j] * a[i * n + j] } }
            if off <= 1e-24 * scale { break }
            for p in 0..<n {
                for q in (p + 1)..<max(p + 1, n) {
                    let apq = a[p * n + q]
                    if abs(apq) < 1e-300 { continue }
                    let theta = (a[q * n + q] - a[p * n + p]) / (2 * apq)
                    let t = (theta >= 0 ? 1 : -1) / (abs(theta) + (theta * theta + 1).squareRoot())
                    let c = 1 / (t * t + 1).squareRoot(), s = t * c
                    for k in 0..<n {
                        let akp = a[k * n + p], akq = a[k * n + q]
                        a[k * n + p] = c * akp - s * akq
                        a[k * n + q] = s * akp + c * akq
                    }
                    for k in 0..<n {
                        let apk = a[p * n + k], aqk = a[q * n + k]
                        a[p * n + k] = c * apk - s * aqk
                        a[q * n + k] = s * apk + c * aqk
                    }
                    for k in 0..<n {
                        let vkp = v[k * n + p], vkq = v[k * n + q]
                        v[k * n + p] = c * vkp - s * vkq
                        v[k * n + q] = s * vkp + c * vkq
                    }
                }
            }
        }
        return ((0..<n).map { a[$0 * n + $0] }, v)
    }
}
