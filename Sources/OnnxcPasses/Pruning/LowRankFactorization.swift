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
        result.graph.dropUnusedInitializers()
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
        guard let (values, vectors) = SymmetricEigen.decompose(g, side) else { return nil }
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

/// Eigen-decomposition of a symmetric matrix: Householder reduction to tridiagonal form, then the implicit QL
/// algorithm (EISPACK's tred2/tql2, as in JAMA). About 5n³ flops where cyclic Jacobi takes 6n³ per sweep.
enum SymmetricEigen {
    /// Eigenvalues and eigenvectors (column j of the n × n row-major result belongs to value j); nil if QL does
    /// not converge (it always does for finite input; the bound only keeps a NaN from looping).
    static func decompose(_ matrix: [Double], _ n: Int) -> ([Double], [Double])? {
        guard n > 0 else { return ([], []) }
        var v = matrix, d = [Double](repeating: 0, count: n), e = [Double](repeating: 0, count: n)
        tridiagonalize(&v, &d, &e, n)
        guard diagonalize(&v, &d, &e, n) else { return nil }
        return (d, v)
    }

    static func tridiagonalize(_ v: inout [Double], _ d: inout [Double], _ e: inout [Double], _ n: Int) {
        for j in 0..<n { d[j] = v[(n - 1) * n + j] }
        for i in stride(from: n - 1, to: 0, by: -1) {
            var scale = 0.0, h = 0.0
            for k in 0..<i { scale += abs(d[k]) }
            if scale == 0 {
                e[i] = d[i - 1]
                for j in 0..<i {
                    d[j] = v[(i - 1) * n + j]
                    v[i * n + j] = 0
                    v[j * n + i] = 0
                }
            } else {
                for k in 0..<i {
                    d[k] /= scale
                    h += d[k] * d[k]
                }
                var f = d[i - 1]
                var g = h.squareRoot()
                if f > 0 { g = -g }
                e[i] = scale * g
                h -= f * g
                d[i - 1] = f - g
                for j in 0..<i { e[j] = 0 }
                for j in 0..<i {
                    f = d[j]
                    v[j * n + i] = f
                    g = e[j] + v[j * n + j] * f
                    for k in (j + 1)..<max(j + 1, i) {
                        g += v[k * n + j] * d[k]
                        e[k] += v[k * n + j] * f
                    }
                    e[j] = g
                }
                f = 0
                for j in 0..<i {
                    e[j] /= h
                    f += e[j] * d[j]
                }
                let hh = f / (h + h)
                for j in 0..<i { e[j] -= hh * d[j] }
                for j in 0..<i {
                    f = d[j]
                    g = e[j]
                    for k in j..<i { v[k * n + j] -= f * e[k] + g * d[k] }
                    d[j] = v[(i - 1) * n + j]
                    v[i * n + j] = 0
                }
            }
            d[i] = h
        }
        for i in 0..<(n - 1) {
            v[(n - 1) * n + i] = v[i * n + i]
            v[i * n + i] = 1
            let h = d[i + 1]
            if h != 0 {
                for k in 0...i { d[k] = v[k * n + i + 1] / h }
                for j in 0...i {
                    var g = 0.0
                    for k in 0...i { g += v[k * n + i + 1] * v[k * n + j] }
                    for k in 0...i { v[k * n + j] -= g * d[k] }
                }
            }
            for k in 0...i { v[k * n + i + 1] = 0 }
        }
        for j in 0..<n {
            d[j] = v[(n - 1) * n + j]
            v[(n - 1) * n + j] = 0
        }
        v[(n - 1) * n + n - 1] = 1
        e[0] = 0
    }

    static func diagonalize(_ v: inout [Double], _ d: inout [Double], _ e: inout [Double], _ n: Int) -> Bool {
        for i in 1..<max(1, n) { e[i - 1] = e[i] }
        e[n - 1] = 0
        var f = 0.0, tst1 = 0.0
        let eps = Double.ulpOfOne
        for l in 0..<n {
            tst1 = max(tst1, abs(d[l]) + abs(e[l]))
            var m = l
            while m < n - 1, abs(e[m]) > eps * tst1 { m += 1 }
            if m > l {
                var iterations = 0
                repeat {
                    iterations += 1
                    guard iterations <= 100 else { return false }
                    var g = d[l]
                    var p = (d[l + 1] - g) / (2 * e[l])
                    var r = (p * p + 1).squareRoot()
                    if p < 0 { r = -r }
                    d[l] = e[l] / (p + r)
                    d[l + 1] = e[l] * (p + r)
                    let dl1 = d[l + 1]
                    var h = g - d[l]
                    for i in (l + 2)..<max(l + 2, n) { d[i] -= h }
                    f += h
                    p = d[m]
                    var c = 1.0, c2 = c, c3 = c
                    let el1 = e[l + 1]
                    var s = 0.0, s2 = 0.0
                    for i in stride(from: m - 1, through: l, by: -1) {
                        c3 = c2
                        c2 = c
                        s2 = s
                        g = c * e[i]
                        h = c * p
                        r = (p * p + e[i] * e[i]).squareRoot()
                        e[i + 1] = s * r
                        s = e[i] / r
                        c = p / r
                        p = c * d[i] - s * g
                        d[i + 1] = h + s * (c * g + s * d[i])
                        for k in 0..<n {
                            h = v[k * n + i + 1]
                            v[k * n + i + 1] = s * v[k * n + i] + c * h
                            v[k * n + i] = c * v[k * n + i] - s * h
                        }
                    }
                    p = -s * s2 * c3 * el1 * e[l] / dl1
                    e[l] = s * p
                    d[l] = c * p
                } while abs(e[l]) > eps * tst1
            }
            d[l] += f
            e[l] = 0
        }
        return true
    }
}
