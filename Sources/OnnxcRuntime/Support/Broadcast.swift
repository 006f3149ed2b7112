/// Multidirectional (NumPy) broadcasting and the index arithmetic kernels share.
public enum Broadcast {
    /// The broadcast of several shapes, or an error naming them.
    public static func shape(_ shapes: [[Int]]) throws(RuntimeError) -> [Int] {
        let rank = shapes.map(\.count).max() ?? 0
        var result = [Int](repeating: 1, count: rank)
        for shape in shapes {
            let offset = rank - shape.count
            for (i, dim) in shape.enumerated() {
                let current = result[offset + i]
                if current == dim || dim == 1 { continue }
                if current == 1 { result[offset + i] = dim; continue }
                throw .invalidShape("shapes \(shapes.map { "\($0)" }.joined(separator: ", ")) cannot be broadcast together")
            }
        }
        return result
    }

    /// Row-major strides of `shape`.
    public static func strides(_ shape: [Int]) -> [Int] {
        var strides = [Int](repeating: 1, count: shape.count)
        var running = 1
        for i in stride(from: shape.count - 1, through: 0, by: -1) {
            strides[i] = running
            running *= shape[i]
        }
        return strides
    }

    /// Strides of `shape` viewed as `target` (right-aligned): 0 along broadcast dims.
    public static func strides(of shape: [Int], broadcastTo target: [Int]) -> [Int] {
        let own = strides(shape)
        let offset = target.count - shape.count
        return target.indices.map { i in
            let j = i - offset
            return j < 0 || shape[j] == 1 ? 0 : own[j]
        }
    }

    /// The axes of a binary op's output `shape` (a broadcast of `a` and `b`) with the element strides of each
    /// operand (0 where it is broadcast), size-1 axes dropped and an axis merged into the next where, for both
    /// operands, stepping over it is stepping over the next one's whole extent: the fewest axes a strided kernel
    /// (`ck_binary_f32`, `ck_qbinary_u8`) must walk. At least one axis.
    public static func mergedAxes(_ a: [Int], _ b: [Int], into shape: [Int]) -> (dims: [Int], a: [Int], b: [Int]) {
        let rank = shape.count
        func strides(_ s: [Int]) -> [Int] {
            let aligned = [Int](repeating: 1, count: rank - s.count) + s
            var result = [Int](repeating: 0, count: rank), step = 1
            for d in stride(from: rank - 1, through: 0, by: -1) {
                result[d] = aligned[d] == 1 ? 0 : step
                step *= aligned[d]
            }
            return result
        }
        var dims: [Int] = [], sa: [Int] = [], sb: [Int] = []
        let fa = strides(a), fb = strides(b)
        for d in 0..<rank where shape[d] != 1 {
            if let last = dims.last, sa.last == fa[d] * shape[d], sb.last == fb[d] * shape[d] {
                dims[dims.count - 1] = last * shape[d]
                sa[sa.count - 1] = fa[d]
                sb[sb.count - 1] = fb[d]
            } else {
                dims.append(shape[d])
                sa.append(fa[d])
                sb.append(fb[d])
            }
        }
        return dims.isEmpty ? ([1], [0], [0]) : (dims, sa, sb)
    }

    /// For each element of `target` in row-major order, the offset into each input (one array per input).
    /// Used by n-ary kernels; binary kernels use `binary` below, which avoids building these tables.
    public static func offsets(of shapes: [[Int]], target: [Int]) -> [[Int]] {
        let count = target.reduce(1, *)
        return shapes.map { shape in
            let s = strides(of: shape, broadcastTo: target)
            var out = [Int](repeating: 0, count: count)
            var index = [Int](repeating: 0, count: target.count)
            var offset = 0
            for k in 0..<count {
                out[k] = offset
                var d = target.count - 1
                while d >= 0 {
                    index[d] += 1
                    offset += s[d]
                    if index[d] < target[d] { break }
                    offset -= s[d] * index[d]
                    index[d] = 0
                    d -= 1
                }
            }
            return out
        }
    }

    /// out[i] = f(a[ia], b[ib]) over the broadcast shape, with fast paths for equal shapes and scalars.
    public static func binary<A: TensorElement, B: TensorElement, R: TensorElement>(
        _ a: Tensor, _ b: Tensor, as _: A.Type, _: B.Type, to _: R.Type, _ f: (A, B) -> R
    ) throws(RuntimeError) -> Tensor {
        let shape = try Broadcast.shape([a.shape, b.shape])
        let out = try Tensor(zeros: R.dtype, shape: shape)
        a.withValues(A.self) { pa in
            b.withValues(B.self) { pb in
                out.withMutableValues(R.self) { po in
                    let n = po.count
                    if a.shape == b.shape {
                        for i in 0..<n { po[i] = f(pa[i], pb[i]) }
                    } else if b.count == 1 {
                        let y = pb[0]
                        for i in 0..<n { po[i] = f(pa[i], y) }
                    } else if a.count == 1 {
                        let x = pa[0]
                        for i in 0..<n { po[i] = f(x, pb[i]) }
                    } else if n > 0 {
                        let sa = strides(of: a.shape, broadcastTo: shape)
                        let sb = strides(of: b.shape, broadcastTo: shape)
                        // Walk the output with an odometer; the innermost dim runs as a plain loop.
                        let rank = shape.count
                        let inner = shape[rank - 1], ia = sa[rank - 1], ib = sb[rank - 1]
                        var index = [Int](repeating: 0, count: rank)
                        var oa = 0, ob = 0, o = 0
                        while o < n {
                            var xa = oa, xb = ob
                            for _ in 0..<inner {
                                po[o] = f(pa[xa], pb[xb])
                                o += 1
                                xa += ia
                                xb += ib
                            }
                            var d = rank - 2
                            while d >= 0 {
                                index[d] += 1
                                oa += sa[d]
                                ob += sb[d]
                                if index[d] < shape[d] { break }
                                oa -= sa[d] * index[d]
                                ob -= sb[d] * index[d]
                                index[d] = 0
                                d -= 1
                            }
                        }
                    }
                }
            }
        }
        return out
    }

    /// Normalizes a possibly negative axis against `rank`, or throws naming the op.
    public static func axis(_ axis: Int64, rank: Int, op: String) throws(RuntimeError) -> Int {
        let a = axis < 0 ? Int(axis) + rank : Int(axis)
        guard a >= 0 && a < max(rank, 1) else { throw .invalidArgument("\(op): axis \(axis) is out of range for rank \(rank)") }
        return a
    }
}
