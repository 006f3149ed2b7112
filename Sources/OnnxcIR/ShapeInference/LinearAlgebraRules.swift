import OnnxcCore

/// MatMul (batched, with numpy's 1-D rules), Gemm, Einsum, and the integer MatMul.
enum LinearAlgebraRules {
    static let table: [String: InferenceRule] = [
        "MatMul": matMul,
        "MatMulInteger": { ctx in [InferenceSupport.tensor(.int32, try matmulShape(ctx.shape(0), ctx.shape(1)))] },
        "Gemm": gemm,
        "Einsum": einsum,
    ]

    /// MatMul, and ai.onnxc::FusedMatMul (whose optional bias is one value per column and keeps the shape).
    static let matMul: InferenceRule = { ctx in [InferenceSupport.tensor(ctx.dtype(0), try matmulShape(ctx.shape(0), ctx.shape(1)))] }

    /// numpy matmul: a 1-D left operand gets a leading 1 and a 1-D right operand a trailing 1, both removed from
    /// the result; leading (batch) dims broadcast; the contracted dims must agree.
    static func matmulShape(_ a: Shape?, _ b: Shape?) throws -> Shape? {
        guard let a, let b else { return nil }
        guard a.rank >= 1, b.rank >= 1 else { throw InferenceError("MatMul operands must have rank 1 or more, got \(a) and \(b)") }
        let left = a.rank == 1 ? [Dim.fixed(1)] + a.dims : a.dims
        let right = b.rank == 1 ? b.dims + [Dim.fixed(1)] : b.dims
        let k1 = left[left.count - 1], k2 = right[right.count - 2]
        _ = try InferenceSupport.unify(k1, k2, "MatMul inner dims of \(a) and \(b) differ")
        let batch: Shape
        do {
            batch = try InferenceSupport.broadcast([Shape(Array(left.dropLast(2))), Shape(Array(right.dropLast(2)))])
        } catch {
            throw InferenceError("MatMul batch dims of \(a) and \(b) are not broadcastable")
        }
        var dims = batch.dims
        if a.rank != 1 { dims.append(left[left.count - 2]) }
        if b.rank != 1 { dims.append(right[right.count - 1]) }
        return Shape(dims)
    }

    static let gemm: InferenceRule = { ctx in
        let dtype = ctx.dtype(0) ?? ctx.dtype(1)
        guard let a = ctx.shape(0), let b = ctx.shape(1) else { return [InferenceSupport.tensor(dtype, nil)] }
        guard a.rank == 2, b.rank == 2 else { throw InferenceError("Gemm needs 2-D A and B, got \(a) and \(b)") }
        let transA = ctx.int("transA", default: 0) != 0, transB = ctx.int("transB", default: 0) != 0
        let m = transA ? a.dims[1] : a.dims[0], ka = transA ? a.dims[0] : a.dims[1]
        let kb = transB ? b.dims[1] : b.dims[0], n = transB ? b.dims[0] : b.dims[1]
        _ = try InferenceSupport.unify(ka, kb, "Gemm inner dims of \(a) and \(b) differ")
        let out = Shape([m, n])
        if let c = ctx.shape(2) {
            // C broadcasts unidirectionally to [M, N].
            let joined = try? InferenceSupport.broadcast([out, c])
            if c.rank > 2 || (joined.map { !$0.isCompatible(with: out) } ?? true) {
                throw InferenceError("Gemm bias C \(c) does not broadcast to \(out)")
            }
        }
        return [InferenceSupport.tensor(dtype, out)]
    }

    /// Einsum: explicit (`ij,jk->ik`) or implicit output (letters used once, in alphabetical order), with `...`
    /// standing for broadcast leading dims.
    static let einsum: InferenceRule = { ctx in
        let dtype = ctx.dtype(0)
        guard let equation = ctx.string("equation")?.filter({ $0 != " " }) else {
            throw InferenceError("Einsum needs an equation")
        }
        // No Foundation here: `...` becomes one character `…`, and `->` splits on `>` after dropping `-`.
        let compact = ellipsized(equation)
        let sides = compact.replacingArrow().split(separator: ">", omittingEmptySubsequences: false).map(String.init)
        let operands = sides[0].split(separator: ",", omittingEmptySubsequences: false).map(String.init)
        guard operands.count == ctx.inputCount, sides.count <= 2 else {
            throw InferenceError("Einsum equation \(equation) does not match \(ctx.inputCount) inputs")
        }
        var letters: [Character: Dim] = [:]
        var counts: [Character: Int] = [:]
        var ellipsis: Shape?
        for (i, term) in operands.enumerated() {
            guard let shape = ctx.shape(i) else { return [InferenceSupport.tensor(dtype, nil)] }
            let ellipses = term.filter { $0 == "…" }.count
            guard ellipses <= 1 else { throw InferenceError("Einsum term \(term) has more than one ellipsis") }
            let hasEllipsis = ellipses == 1
            let named = term.filter { $0 != "…" }
            let ellipsisRank = shape.rank - named.count
            guard ellipsisRank >= 0, hasEllipsis || ellipsisRank == 0 else {
                throw InferenceError("Einsum term \(term) does not match input \(i) of rank \(shape.rank)")
            }
            var k = 0
            for c in term {
                if c == "…" {
                    let part = Shape(Array(shape.dims[k..<(k + ellipsisRank)]))
                    ellipsis = try ellipsis.map { try InferenceSupport.broadcast([$0, part]) } ?? part
                    k += ellipsisRank
                    continue
                }
                let d = shape.dims[k]
                letters[c] = try letters[c].map { try InferenceSupport.unify($0, d, "Einsum label \(c) has different sizes") } ?? d
                counts[c, default: 0] += 1
                k += 1
            }
        }
        var dims: [Dim] = []
        if sides.count == 2 {
            for c in sides[1] {
                if c == "…" { dims += ellipsis?.dims ?? []; continue }
                guard let d = letters[c] else { throw InferenceError("Einsum output label \(c) is not an input label") }
                dims.append(d)
            }
        } else {
            dims = (ellipsis?.dims ?? []) + counts.filter { $0.value == 1 }.keys.sorted().compactMap { letters[$0] }
        }
        return [InferenceSupport.tensor(dtype, Shape(dims))]
    }

    static func ellipsized(_ text: String) -> String {
        var out = ""
        var dots = 0
        for c in text {
            if c == "." {
                dots += 1
                if dots == 3 { out.append("…"); dots = 0 }
                continue
            }
            dots = 0
            out.append(c)
        }
        return out
    }
}

private extension String {
    /// `ij->ji` as `ij>ji`; a lone `-` or `>` makes the equation invalid, which the caller reports.
    func replacingArrow() -> String {
        var out = ""
        var pendingDash = false
        for c in self {
            if c == "-" { pendingDash = true; continue }
            if pendingDash && c != ">" { out.append("?") }
            pendingDash = false
            out.append(c)
        }
        return out
    }
}
