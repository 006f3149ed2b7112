import OnnxcCore
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Reduction operators: the Reduce* family, ArgMax/ArgMin, CumSum, TopK and the softmax family.
enum ReductionKernels {
    static let table: [String: Kernel] = [
        "ReduceSum": reduceKernel(.sum, axesInputSince: 13),
        "ReduceMean": reduceKernel(.mean, axesInputSince: 18),
        "ReduceMax": reduceKernel(.max, axesInputSince: 18),
        "ReduceMin": reduceKernel(.min, axesInputSince: 18),
        "ReduceProd": reduceKernel(.prod, axesInputSince: 18),
        "ReduceL1": reduceKernel(.l1, axesInputSince: 18),
        "ReduceL2": reduceKernel(.l2, axesInputSince: 18),
        "ReduceLogSum": reduceKernel(.logSum, axesInputSince: 18),
        "ReduceLogSumExp": reduceKernel(.logSumExp, axesInputSince: 18),
        "ReduceSumSquare": reduceKernel(.sumSquare, axesInputSince: 18),
        "ArgMax": argKernel(max: true),
        "ArgMin": argKernel(max: false),
        "CumSum": { inputs, context throws(RuntimeError) in
            let x = try context.tensor(inputs, 0)
            let axisTensor = try context.tensor(inputs, 1)
            guard axisTensor.count == 1, let rawAxis = axisTensor.int64s().first else {
                throw .invalidArgument("CumSum: axis must be a single integer, got shape \(axisTensor.shape)")
            }
            let axis = try Broadcast.axis(rawAxis, rank: x.rank, op: "CumSum")
            let split = AxisSplit(x.shape, axis)
            let exclusive = context.attributes.int("exclusive", 0) != 0
            let reverse = context.attributes.int("reverse", 0) != 0
            return outputs(try viaFloat(x) { (t) throws(RuntimeError) in
                try dispatchReduce(t.dtype, op: "CumSum", CumSumVisitor(x: t, split: split, exclusive: exclusive, reverse: reverse))
            })
        },
        "TopK": { inputs, context throws(RuntimeError) in
            let x = try context.tensor(inputs, 0)
            let k: Int64
            if context.opset < 10 {
                k = context.attributes.int("k", -1)
            } else {
                let kTensor = try context.tensor(inputs, 1)
                guard kTensor.count == 1, let value = kTensor.int64s().first else {
                    throw .invalidArgument("TopK: K must hold exactly one value, got shape \(kTensor.shape)")
                }
                k = value
            }
            let axis = try Broadcast.axis(context.attributes.int("axis", -1), rank: x.rank, op: "TopK")
            guard x.rank > 0 else { throw .invalidArgument("TopK: input must have rank >= 1") }
            guard k >= 0, k <= Int64(x.shape[axis]) else {
                throw .invalidArgument("TopK: k = \(k) is out of range for axis \(axis) of size \(x.shape[axis])")
            }
            let split = AxisSplit(x.shape, axis), largest = context.attributes.int("largest", 1) != 0
            let (values, indices) = try viaFloatPair(x) { (t) throws(RuntimeError) in
                try dispatchReduce(t.dtype, op: "TopK", TopKVisitor(x: t, split: split, k: Int(k), largest: largest))
            }
            return outputs(values, indices)
        },
        "Softmax": softmaxKernel(.softmax),
        "LogSoftmax": softmaxKernel(.logSoftmax),
        "Hardmax": softmaxKernel(.hardmax),
    ]

    // MARK: Reduce*

    fileprivate enum ReduceKind { case sum, mean, max, min, prod, l1, l2, logSum, logSumExp, sumSquare }

    /// Axes come from the `axes` attribute before `axesInputSince`, from the optional second input after.
    private static func reduceKernel(_ kind: ReduceKind, axesInputSince: Int) -> Kernel {
        { inputs, context throws(RuntimeError) in
            let op = context.node.opType
            let x = try context.tensor(inputs, 0)
            var axes: [Int64] = []
            var noop = false
            if context.opset >= axesInputSince {
                axes = try context.optionalTensor(inputs, 1)?.int64s() ?? []
                noop = context.attributes.int("noop_with_empty_axes", 0) != 0
            } else {
                axes = context.attributes.ints("axes") ?? []
            }
            let keepdims = context.attributes.int("keepdims", 1) != 0
            if axes.isEmpty && noop {
                if kind == .sumSquare {
                    return outputs(try viaFloat(x) { (t) throws(RuntimeError) in
                        try dispatchReduce(t.dtype, op: op, SquareVisitor(x: t))
                    })
                }
                return outputs(x)
            }
            var reduced = [Bool](repeating: axes.isEmpty, count: x.rank)
            for raw in axes {
                guard raw >= -Int64(x.rank), raw < Int64(max(x.rank, 1)) else {
                    throw .invalidArgument("\(op): axis \(raw) is out of range for rank \(x.rank)")
                }
                let a = raw < 0 ? Int(raw) + x.rank : Int(raw)
                if x.rank == 0 { continue }
                guard !reduced[a] else { throw .invalidArgument("\(op): axis \(raw) is repeated") }
                reduced[a] = true
            }
            let keptShape = x.shape.enumerated().map { reduced[$0.offset] ? 1 : $0.element }
            let outShape = keepdims ? keptShape : x.shape.enumerated().filter { !reduced[$0.offset] }.map(\.element)
            if x.dtype == .bool, kind == .max || kind == .min {
                let bytes = try Tensor(zeros: .uint8, shape: x.shape)
                x.withBytes { src in bytes.withMutableBytes { dst in dst.copyMemory(from: src) } }
                let r = try ReduceVisitor(x: bytes, reduced: reduced, keptShape: keptShape, kind: kind).visit(UInt8.self)
                let out = try Tensor(zeros: .bool, shape: outShape)
                r.withBytes { src in out.withMutableBytes { dst in dst.copyMemory(from: src) } }
                return outputs(out)
            }
            let result = try viaFloat(x) { (t) throws(RuntimeError) in
                try dispatchReduce(t.dtype, op: op, ReduceVisitor(x: t, reduced: reduced, keptShape: keptShape, kind: kind))
            }
            return outputs(try result.reshaped(outShape))
        }
    }

    private struct SquareVisitor: ReduceVisitorProtocol {
        let x: Tensor
        func visit<T: ReduceElement>(_: T.Type) throws(RuntimeError) -> Tensor {
            let out = try Tensor(zeros: x.dtype, shape: x.shape)
            x.withValues(T.self) { src in
                out.withMutableValues(T.self) { dst in
                    for i in 0..<src.count { dst[i] = T.wrappingMul(src[i], src[i]) }
                }
            }
            return out
        }
    }

    private struct ReduceVisitor: ReduceVisitorProtocol {
        let x: Tensor
        let reduced: [Bool]
        let keptShape: [Int]
        let kind: ReduceKind

        func visit<T: ReduceElement>(_: T.Type) throws(RuntimeError) -> Tensor {
            let out = try Tensor(zeros: x.dtype, shape: keptShape)
            let n = out.count
            let reducedCount = zip(x.shape, reduced).reduce(1) { $0 * ($1.1 ? $1.0 : 1) }
            x.withValues(T.self) { src in
                out.withMutableValues(T.self) { acc in
                    switch kind {
                    case .sum, .mean, .logSum:
                        acc.initialize(repeating: T.zero)
                        accumulate(src, acc, identity: T.zero, map: { $0 }, combine: T.wrappingAdd)
                    case .sumSquare, .l2:
                        acc.initialize(repeating: T.zero)
                        accumulate(src, acc, identity: T.zero, map: { T.wrappingMul($0, $0) }, combine: T.wrappingAdd)
                    case .l1:
                        acc.initialize(repeating: T.zero)
                        accumulate(src, acc, identity: T.zero, map: { $0.absolute }, combine: T.wrappingAdd)
                    case .prod:
                        acc.initialize(repeating: 1)
                        accumulate(src, acc, identity: 1, map: { $0 }, combine: T.wrappingMul)
                    case .max, .logSumExp:
                        acc.initialize(repeating: T.lowest)
                        accumulate(src, acc, identity: T.lowest, map: { $0 }) { a, v in v > a || v != v ? v : a }
                    case .min:
                        acc.initialize(repeating: T.highest)
                        accumulate(src, acc, identity: T.highest, map: { $0 }) { a, v in v < a || v != v ? v : a }
                    }
                    switch kind {
                    case .mean:
                        for i in 0..<n { acc[i] = T.from(acc[i].asDouble / Double(reducedCount)) }
                    case .l2:
                        for i in 0..<n { acc[i] = T.from(acc[i].asDouble.squareRoot()) }
                    case .logSum:
                        for i in 0..<n { acc[i] = T.from(log(acc[i].asDouble)) }
                    case .logSumExp:
                        // log Σ exp(x - m) + m with m the finite max, so large inputs do not overflow.
                        var maxima = [Double](repeating: 0, count: n)
                        for i in 0..<n where acc[i].asDouble.isFinite { maxima[i] = acc[i].asDouble }
                        var sums = [Double](repeating: 0, count: n)
                        maxima.withUnsafeBufferPointer { m in
                            sums.withUnsafeMutableBufferPointer { s in
                                walk(src) { o, v in s[o] += T.expDifference(v, m[o]) }
                            }
                        }
                        for i in 0..<n { acc[i] = T.from(log(sums[i]) + maxima[i]) }
                    default: break
                    }
                }
            }
            return out
        }

        /// acc[o] = combine(acc[o], map(x)) over every element, with `o` its position in the kept-dims output.
        /// Rows reduced along the innermost dim use four partial results, so the loop is not one long dependency chain.
        private func accumulate<T: ReduceElement>(
            _ src: UnsafeBufferPointer<T>, _ acc: UnsafeMutableBufferPointer<T>, identity: T,
            map: (T) -> T, combine: (T, T) -> T
        ) {
            let dims = ReduceGeometry(shape: x.shape, reduced: reduced)
            guard src.count > 0, let last = dims.sizes.last else {
                if src.count == 1 { acc[0] = combine(acc[0], map(src[0])) }
                return
            }
            let inner = last, innerReduced = dims.reducedFlags[dims.sizes.count - 1]
            dims.forEachRow { i, o in
                if innerReduced {
                    var p0 = identity, p1 = identity, p2 = identity, p3 = identity
                    var j = 0
                    while j + 4 <= inner {
                        p0 = combine(p0, map(src[i + j]))
                        p1 = combine(p1, map(src[i + j + 1]))
                        p2 = combine(p2, map(src[i + j + 2]))
                        p3 = combine(p3, map(src[i + j + 3]))
                        j += 4
                    }
                    while j < inner {
                        p0 = combine(p0, map(src[i + j]))
                        j += 1
                    }
                    acc[o] = combine(acc[o], combine(combine(p0, p1), combine(p2, p3)))
                } else {
                    for j in 0..<inner { acc[o + j] = combine(acc[o + j], map(src[i + j])) }
                }
            }
        }

        /// Calls f(outputIndex, value) for every input element.
        private func walk<T: ReduceElement>(_ src: UnsafeBufferPointer<T>, _ f: (Int, T) -> Void) {
            let dims = ReduceGeometry(shape: x.shape, reduced: reduced)
            guard src.count > 0, let last = dims.sizes.last else {
                if src.count == 1 { f(0, src[0]) }
                return
            }
            let step = dims.reducedFlags[dims.sizes.count - 1] ? 0 : 1
            dims.forEachRow { i, o in
                for j in 0..<last { f(o + j * step, src[i + j]) }
            }
        }
    }

    /// The input shape with adjacent dims of the same kind (reduced or kept) merged, and the matching
    /// output strides (0 along reduced dims), so the walk over the input has as few levels as possible.
    private struct ReduceGeometry {
        var sizes: [Int] = []
        var reducedFlags: [Bool] = []
        var outStrides: [Int] = []

        init(shape: [Int], reduced: [Bool]) {
            for (d, size) in shape.enumerated() where size != 1 {
                if let lastFlag = reducedFlags.last, lastFlag == reduced[d] {
                    sizes[sizes.count - 1] *= size
                } else {
                    sizes.append(size)
                    reducedFlags.append(reduced[d])
                }
            }
            outStrides = [Int](repeating: 0, count: sizes.count)
            var running = 1
            for d in stride(from: sizes.count - 1, through: 0, by: -1) where !reducedFlags[d] {
                outStrides[d] = running
                running *= sizes[d]
            }
        }

        /// Calls body(inputOffset, outputOffset) at the start of each innermost row.
        func forEachRow(_ body: (Int, Int) -> Void) {
            let rank = sizes.count
            guard rank > 0 else { body(0, 0); return }
            let inner = sizes[rank - 1]
            let total = sizes.reduce(1, *)
            var index = [Int](repeating: 0, count: rank)
            var i = 0, o = 0
            while i < total {
                body(i, o)
                i += inner
                var d = rank - 2
                while d >= 0 {
                    index[d] += 1
                    o += outStrides[d]
                    if index[d] < sizes[d] { break }
                    o -= outStrides[d] * index[d]
                    index[d] = 0
                    d -= 1
                }
            }
        }
    }

    // MARK: ArgMax / ArgMin

    private static func argKernel(max: Bool) -> Kernel {
        { inputs, context throws(RuntimeError) in
            let op = context.node.opType
            let x = try context.tensor(inputs, 0)
            let axis = try Broadcast.axis(context.attributes.int("axis", 0), rank: x.rank, op: op)
            let keepdims = context.attributes.int("keepdims", 1) != 0
            let last = context.attributes.int("select_last_index", 0) != 0
            let split = AxisSplit(x.shape, axis)
            guard split.n > 0 || split.outer * split.inner == 0 else {
                throw .invalidArgument("\(op): cannot take the arg\(max ? "max" : "min") of an empty axis")
            }
            var shape = x.shape
            if x.rank > 0 {
                if keepdims { shape[axis] = 1 } else { shape.remove(at: axis) }
            }
            let input = try widenedToFloat(x) ?? x
            let result = try dispatchReduce(input.dtype, op: op, ArgVisitor(x: input, split: split, max: max, last: last, shape: shape))
            return outputs(result)
        }
    }

    private struct ArgVisitor: ReduceVisitorProtocol {
        let x: Tensor, split: AxisSplit, max: Bool, last: Bool, shape: [Int]
        func visit<T: ReduceElement>(_: T.Type) throws(RuntimeError) -> Tensor {
            let out = try Tensor(zeros: .int64, shape: shape)
            let (outer, n, inner) = (split.outer, split.n, split.inner)
            x.withValues(T.self) { src in
                out.withMutableValues(Int64.self) { dst in
                    for o in 0..<outer {
                        for i in 0..<inner {
                            let base = o * n * inner + i
                            var best = src[base], bestIndex = 0
                            if best == best {  // a NaN wins and stays (as numpy)
                                for j in 1..<Swift.max(n, 1) {
                                    let v = src[base + j * inner]
                                    if v != v { bestIndex = j; break }
                                    let better = max ? (last ? v >= best : v > best) : (last ? v <= best : v < best)
                                    if better { best = v; bestIndex = j }
                                }
                            }
                            dst[o * inner + i] = Int64(bestIndex)
                        }
                    }
                }
            }
            return out
        }
    }

    // MARK: CumSum

    private struct CumSumVisitor: ReduceVisitorProtocol {
        let x: Tensor, split: AxisSplit, exclusive: Bool, reverse: Bool
        func visit<T: ReduceElement>(_: T.Type) throws(RuntimeError) -> Tensor {
            let out = try Tensor(zeros: x.dtype, shape: x.shape)
            let (outer, n, inner) = (split.outer, split.n, split.inner)
            x.withValues(T.self) { src in
                out.withMutableValues(T.self) { dst in
                    for o in 0..<outer {
                        for i in 0..<inner {
                            let base = o * n * inner + i
                            var running = T.zero
                            for step in 0..<n {
                                let j = reverse ? n - 1 - step : step
                                let at = base + j * inner
                                if exclusive {
                                    dst[at] = running
                                    running = T.wrappingAdd(running, src[at])
                                } else {
                                    running = T.wrappingAdd(running, src[at])
                                    dst[at] = running
                                }
                            }
                        }
                    }
                }
            }
            return out
        }
    }

    // MARK: TopK

    private struct TopKVisitor: ReduceVisitorProtocol {
        let x: Tensor, split: AxisSplit, k: Int, largest: Bool

        /// Sorts each slice's indices (partially when k is small) and gathers the first k.
        func visit<T: ReduceElement>(_: T.Type) throws(RuntimeError) -> (Tensor, Tensor) {
            var shape = x.shape
            if !shape.isEmpty { shape[split.axis] = k }
            let values = try Tensor(zeros: x.dtype, shape: shape)
            let indices = try Tensor(zeros: .int64, shape: shape)
            let (outer, n, inner) = (split.outer, split.n, split.inner)
            let largest = largest, k = k
            var order = [Int](repeating: 0, count: n)
            x.withValues(T.self) { src in
                values.withMutableValues(T.self) { dv in
                    indices.withMutableValues(Int64.self) { di in
                        for o in 0..<outer {
                            for i in 0..<inner {
                                let base = o * n * inner + i
                                for j in 0..<n { order[j] = j }
                                // NaN ranks above every number (as numpy's sort puts it last); ties keep the lower index.
                                let before: (Int, Int) -> Bool = { a, b in
                                    let va = src[base + a * inner], vb = src[base + b * inner]
                                    let naA = va != va, naB = vb != vb
                                    if naA != naB { return largest ? naA : naB }
                                    if !naA {
                                        if largest ? va > vb : va < vb { return true }
                                        if largest ? va < vb : va > vb { return false }
                                    }
                                    return a < b
                                }
                                if k < n / 8 {
                                    partialSelect(&order, k, before)
                                } else {
                                    order.sort(by: before)
                                }
                                let outBase = o * k * inner + i
                                for j in 0..<k {
                                    dv[outBase + j * inner] = src[base + order[j] * inner]
                                    di[outBase + j * inner] = Int64(order[j])
                                }
                            }
                        }
                    }
                }
            }
            return (values, indices)
        }

        /// Puts the first `k` items of the order at the front, sorted, keeping a small sorted buffer.
        private func partialSelect(_ order: inout [Int], _ k: Int, _ before: (Int, Int) -> Bool) {
            guard k > 0 else { return }
            var top = Array(order[0..<k])
            top.sort(by: before)
            for j in k..<order.count {
                let c = order[j]
                guard let lastTop = top.last, before(c, lastTop) else { continue }
                var pos = top.count - 1
                while pos > 0 && before(c, top[pos - 1]) { pos -= 1 }
                top.removeLast()
                top.insert(c, at: pos)
            }
            for j in 0..<k { order[j] = top[j] }
        }
    }

    // MARK: Softmax family

    fileprivate enum SoftmaxKind { case softmax, logSoftmax, hardmax }

    /// Before opset 13 the input is flattened to 2-D at `axis` (default 1); from 13 on the op runs along `axis` (default -1).
    private static func softmaxKernel(_ kind: SoftmaxKind) -> Kernel {
        { inputs, context throws(RuntimeError) in
            let op = context.node.opType
            let x = try context.tensor(inputs, 0)
            let split: AxisSplit
            if context.opset < 13 {
                let raw = context.attributes.int("axis", 1)
                guard raw >= -Int64(x.rank), raw <= Int64(x.rank) else {
                    throw .invalidArgument("\(op): axis \(raw) is out of range for rank \(x.rank)")
                }
                let axis = raw < 0 ? Int(raw) + x.rank : Int(raw)
                split = AxisSplit(outer: x.shape[..<axis].reduce(1, *), n: x.shape[axis...].reduce(1, *), inner: 1, axis: axis)
            } else {
                let axis = try Broadcast.axis(context.attributes.int("axis", -1), rank: x.rank, op: op)
                split = AxisSplit(x.shape, axis)
            }
            return outputs(try viaFloat(x) { (t) throws(RuntimeError) in
                try dispatchReal(t.dtype, op: op, SoftmaxVisitor(x: t, split: split, kind: kind))
            })
        }
    }

    private struct SoftmaxVisitor: RealVisitor {
        let x: Tensor, split: AxisSplit, kind: SoftmaxKind
        func visit<T: ExponentialElement>(_: T.Type) throws(RuntimeError) -> Tensor {
            let out = try Tensor(zeros: x.dtype, shape: x.shape)
            let (outer, n, inner) = (split.outer, split.n, split.inner)
            guard n > 0 else { return out }
            x.withValues(T.self) { src in
                out.withMutableValues(T.self) { dst in
                    for o in 0..<outer {
                        for i in 0..<inner {
                            let base = o * n * inner + i
                            var m = src[base], arg = 0
                            for j in 1..<n {
                                let v = src[base + j * inner]
                                if v > m { m = v; arg = j }
                            }
                            switch kind {
                            case .hardmax:
                                dst[base + arg * inner] = 1
                            case .softmax:
                                guard let from = src.baseAddress, let to = dst.baseAddress else { return }
                                softmaxRow(from + base, to + base, count: n, stride: inner, maximum: m)
                            case .logSoftmax:
                                var sum = T.zero
                                for j in 0..<n { sum += (src[base + j * inner] - m).expValue }
                                let shift = m + sum.logValue
                                for j in 0..<n { dst[base + j * inner] = src[base + j * inner] - shift }
                            }
                        }
                    }
                }
            }
            return out
        }
    }
}

/// Softmax along one strided row of `count` elements whose largest element is `maximum`: exp(x − max), then
/// one multiplication by the reciprocal of the sum. `source` and `destination` may be the same row. Shared by
/// Softmax and the attention kernel, so a fused attention normalizes exactly as the Softmax it replaces.
func softmaxRow<T: ExponentialElement>(_ source: UnsafePointer<T>, _ destination: UnsafeMutablePointer<T>, count: Int, stride: Int, maximum: T) {
    if T.self == Float.self, stride == 1, count > 0 {
        // Contiguous float rows (Softmax over the last axis, attention): the vector exp, then one scale.
        let target = UnsafeMutableRawPointer(destination).assumingMemoryBound(to: Float.self)
        if UnsafeRawPointer(source) != UnsafeRawPointer(destination) {
            target.update(from: UnsafeRawPointer(source).assumingMemoryBound(to: Float.self), count: count)
        }
        let scale = 1 / PackedGemm.softmaxExponentials(target, count: count, maximum: unsafeBitCast(maximum, to: Float.self))
        for j in 0..<count { target[j] *= scale }
        return
    }
    var sum = T.zero
    for j in 0..<count {
        let e = (source[j * stride] - maximum).expValue
        destination[j * stride] = e
        sum += e
    }
    let scale = 1 / sum
    for j in 0..<count { destination[j * stride] *= scale }
}

// MARK: - Shared helpers (this file)

/// A tensor viewed as outer × n × inner around one axis.
private struct AxisSplit {
    let outer: Int, n: Int, inner: Int, axis: Int

    init(_ shape: [Int], _ axis: Int) {
        if shape.isEmpty {
            (outer, n, inner, self.axis) = (1, 1, 1, 0)
        } else {
            outer = shape[..<axis].reduce(1, *)
            n = shape[axis]
            inner = shape[(axis + 1)...].reduce(1, *)
            self.axis = axis
        }
    }

    init(outer: Int, n: Int, inner: Int, axis: Int) {
        (self.outer, self.n, self.inner, self.axis) = (outer, n, inner, axis)
    }
}

/// Element types the kernels here accumulate in: integers wrap like numpy, floats follow IEEE.
protocol ReduceElement: ArithmeticElement {
    static var lowest: Self { get }
    static var highest: Self { get }
    static func wrappingAdd(_ a: Self, _ b: Self) -> Self
    static func wrappingMul(_ a: Self, _ b: Self) -> Self
    var absolute: Self { get }
    /// exp(x - m) in Double, for LogSumExp's second pass.
    static func expDifference(_ x: Self, _ m: Double) -> Double
}

/// Float and double with exp and log: what softmax and the log-sum-exp reductions compute in (float16 and bfloat16
/// are widened to float first).
protocol ExponentialElement: ReduceElement, BinaryFloatingPoint {
    var expValue: Self { get }
    var logValue: Self { get }
}

extension Float: ExponentialElement {
    static var lowest: Float { -.infinity }
    static var highest: Float { .infinity }
    static func wrappingAdd(_ a: Float, _ b: Float) -> Float { a + b }
    static func wrappingMul(_ a: Float, _ b: Float) -> Float { a * b }
    var absolute: Float { abs(self) }
    static func expDifference(_ x: Float, _ m: Double) -> Double { exp(Double(x) - m) }
    var expValue: Float { expf(self) }
    var logValue: Float { logf(self) }
}

extension Double: ExponentialElement {
    static var lowest: Double { -.infinity }
    static var highest: Double { .infinity }
    static func wrappingAdd(_ a: Double, _ b: Double) -> Double { a + b }
    static func wrappingMul(_ a: Double, _ b: Double) -> Double { a * b }
    var absolute: Double { abs(self) }
    static func expDifference(_ x: Double, _ m: Double) -> Double { exp(x - m) }
    var expValue: Double { exp(self) }
    var logValue: Double { log(self) }
}

private protocol ReduceInteger: ReduceElement, FixedWidthInteger {}

extension ReduceInteger {
    static var lowest: Self { .min }
    static var highest: Self { .max }
    static func wrappingAdd(_ a: Self, _ b: Self) -> Self { a &+ b }
    static func wrappingMul(_ a: Self, _ b: Self) -> Self { a &* b }
    var absolute: Self { self < 0 ? 0 &- self : self }
    static func expDifference(_ x: Self, _ m: Double) -> Double { exp(Double(x) - m) }
}

extension Int8: ReduceInteger {}
extension Int16: ReduceInteger {}
extension Int32: ReduceInteger {}
extension Int64: ReduceInteger {}
extension UInt8: ReduceInteger {}
extension UInt16: ReduceInteger {}
extension UInt32: ReduceInteger {}
extension UInt64: ReduceInteger {}

private protocol ReduceVisitorProtocol {
    associatedtype Output
    func visit<T: ReduceElement>(_ type: T.Type) throws(RuntimeError) -> Output
}

private protocol RealVisitor {
    associatedtype Output
    func visit<T: ExponentialElement>(_ type: T.Type) throws(RuntimeError) -> Output
}

/// Float16 and bfloat16 never reach these: `viaFloat` widens them first.
private func dispatchReduce<V: ReduceVisitorProtocol>(_ dtype: DType, op: String, _ visitor: V) throws(RuntimeError) -> V.Output {
    switch dtype {
    case .float: return try visitor.visit(Float.self)
    case .double: return try visitor.visit(Double.self)
    case .int8: return try visitor.visit(Int8.self)
    case .int16: return try visitor.visit(Int16.self)
    case .int32: return try visitor.visit(Int32.self)
    case .int64: return try visitor.visit(Int64.self)
    case .uint8: return try visitor.visit(UInt8.self)
    case .uint16: return try visitor.visit(UInt16.self)
    case .uint32: return try visitor.visit(UInt32.self)
    case .uint64: return try visitor.visit(UInt64.self)
    default: throw .unsupportedType(op: op, dtype: dtype.onnxName)
    }
}

private func dispatchReal<V: RealVisitor>(_ dtype: DType, op: String, _ visitor: V) throws(RuntimeError) -> V.Output {
    switch dtype {
    case .float: return try visitor.visit(Float.self)
    case .double: return try visitor.visit(Double.self)
    default: throw .unsupportedType(op: op, dtype: dtype.onnxName)
    }
}




private func viaFloatPair(_ x: Tensor, _ body: (Tensor) throws(RuntimeError) -> (Tensor, Tensor)) throws(RuntimeError) -> (Tensor, Tensor) {
    guard let wide = try widenedToFloat(x) else { return try body(x) }
    let (values, indices) = try body(wide)
    return (try narrowed(values, to: x.dtype), indices)
}
