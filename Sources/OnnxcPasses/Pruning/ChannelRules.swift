import OnnxcCore
import OnnxcIR

/// How each operator carries channel atoms from its inputs to its outputs, by op family. An op the rules do
/// not know, or a case they cannot handle exactly, fixes the channels it reads (never a guess): the report then
/// says which node stopped the group and why.
enum ChannelRules {
    /// Ops whose output has the input's shape and treats channels independently.
    static let unary: Set<String> = [
        "Relu", "LeakyRelu", "Elu", "Selu", "Celu", "Sigmoid", "HardSigmoid", "HardSwish", "Tanh", "Softplus",
        "Softsign", "Gelu", "Erf", "Exp", "Log", "Neg", "Abs", "Sqrt", "Reciprocal", "Floor", "Ceil", "Round",
        "Sign", "Sin", "Cos", "Identity", "Cast", "Dropout", "Clip", "Mish", "ThresholdedRelu", "Not", "IsNaN",
        "IsInf", "Shrink", "Softmax", "LogSoftmax", "Hardmax", "CastLike",
    ]
    /// Broadcasting element-wise ops: tracked operands are tied position by position.
    static let elementwise: Set<String> = [
        "Add", "Sub", "Mul", "Div", "Pow", "Max", "Min", "Sum", "Mean", "PRelu", "Where", "Equal", "Less",
        "Greater", "LessOrEqual", "GreaterOrEqual", "And", "Or", "Xor", "Mod", "BitShift",
    ]
    static let pools: Set<String> = [
        "MaxPool", "AveragePool", "LpPool", "GlobalAveragePool", "GlobalMaxPool", "GlobalLpPool",
    ]
    /// Ops that read only a tensor's shape.
    static let shapeReaders: Set<String> = ["Shape", "Size"]

    /// Applies the rule of `r.node` (graph index `n`) to its tracked inputs `r.tracked`.
    static func propagate(index n: Int, excluded: Set<String>, _ r: RuleContext) {
        let node = r.node, tracked = r.tracked, view = r.view
        let block = r.block, emit = r.emit
        guard canonicalDomain(node.domain) == defaultDomain else {
            if !tracked.isEmpty { block("operator of domain \(node.domain) is not supported by channel pruning") }
            return
        }
        let op = node.opType
        switch op {
        case "Conv", "ConvTranspose", "Gemm", "MatMul":
            LayerRules.propagate(node: node, index: n, tracked: tracked, view: view, excluded: excluded, r)
            return
        default:
            break
        }
        guard let first = tracked.first else { return }
        let (slot, map) = first
        if shapeReaders.contains(op) { return }
        if unary.contains(op) {
            guard slot == 0 else { return block("its channels arrive on an attribute-like input") }
            if ["Softmax", "LogSoftmax", "Hardmax"].contains(op) {
                guard let rank = view.rank(node.inputs[0]) else { return block("unknown rank") }
                let axis = normalize(FusionSupport.int(node, "axis") ?? -1, rank)
                guard axis != map.axis else { return block("it normalizes across the channels") }
            }
            emit(0, map)
            return
        }
        if elementwise.contains(op) { return broadcast(node, n, tracked, view, r) }
        if pools.contains(op) {
            guard slot == 0, map.axis == 1 else { return block("channels are not on axis 1") }
            if node.outputs.count > 1, !node.outputs[1].isEmpty, !view.index.isUnused(node.outputs[1]) {
                return block("its indices output counts positions across channels")
            }
            emit(0, map)
            return
        }
        switch op {
        case "BatchNormalization", "InstanceNormalization":
            guard slot == 0, map.axis == 1 else { return block("channels are not on axis 1") }
            let parameters = op == "BatchNormalization" ? 1...4 : 1...2
            guard parameters.allSatisfy({ $0 < node.inputs.count && view.constant(node.inputs[$0]) != nil }) else {
                return block("its parameters are not constant")
            }
            if op == "BatchNormalization", let scale = view.constant(node.inputs[1]), let values = FusionSupport.doubles(scale) {
                r.deps.sources.append(ImportanceSource(node: n, atoms: map.atoms, l1: values.map(abs), l2: values.map(abs), isBatchNormScale: true))
            }
            r.deps.touched.insert(n)
            emit(0, map)
        case "LayerNormalization":
            guard slot == 0, let rank = view.rank(node.inputs[0]) else { return block("unknown rank") }
            let axis = normalize(FusionSupport.int(node, "axis") ?? -1, rank)
            guard map.axis < axis else { return block("it normalizes across the channels") }
            emit(0, map)
        case "MeanVarianceNormalization", "ReduceMean", "ReduceSum", "ReduceMax", "ReduceMin", "ReduceProd",
             "ReduceL1", "ReduceL2", "ReduceLogSum", "ReduceLogSumExp", "ReduceSumSquare":
            reduction(node, map, view, r)
        case "Transpose":
            guard let rank = view.rank(node.inputs[0]) else { return block("unknown rank") }
            let perm = FusionSupport.ints(node, "perm")?.map(Int.init) ?? Array((0..<rank).reversed())
            guard let axis = perm.firstIndex(of: map.axis) else { return block("invalid perm") }
            emit(0, ChannelMap(axis: axis, atoms: map.atoms))
        case "Squeeze", "Unsqueeze":
            squeeze(node, map, view, r)
        case "Flatten":
            flatten(node, map, view, r)
        case "Reshape":
            guard slot == 0 else { return block("its shape input carries channels") }
            reshape(node, n, map, view, r)
        case "Concat":
            concat(node, tracked, view, r)
        case "Split":
            guard slot == 0 else { return block("its split input carries channels") }
            split(node, n, map, view, r)
        case "Slice":
            guard slot == 0 else { return block("its starts/ends carry channels") }
            slice(node, n, map, view, r)
        case "Resize", "Upsample":
            guard slot == 0 else { return block("its scales carry channels") }
            resize(node, n, map, view, r)
        case "Pad":
            guard slot == 0 else { return block("its pads carry channels") }
            pad(node, map, view, r)
        case "Gather":
            guard slot == 0, let rank = view.rank(node.inputs[0]), let indexRank = view.rank(node.inputs[1]) else {
                return block("unknown rank")
            }
            let axis = normalize(FusionSupport.int(node, "axis") ?? 0, rank)
            guard axis != map.axis else { return block("it gathers along the channels") }
            emit(0, ChannelMap(axis: map.axis < axis ? map.axis : map.axis + indexRank - 1, atoms: map.atoms))
        default:
            block("\(op) is not supported by channel pruning")
        }
    }

    static func normalize(_ axis: Int64, _ rank: Int) -> Int { axis < 0 ? Int(axis) + rank : Int(axis) }

    // MARK: - Element-wise

    /// Tracked operands must meet on one output axis with equal length (their atoms are tied there); others
    /// broadcast over it (dim 1) or are constants cut along with the channels.
    static func broadcast(_ node: Node, _ n: Int, _ tracked: [(Int, ChannelMap)], _ view: PruningGraphView, _ r: RuleContext) {
        let ranks = node.inputs.map { $0.isEmpty ? nil : view.rank($0) }
        guard let outRank = view.rank(node.outputs[0]) ?? ranks.compactMap({ $0 }).max(),
              node.inputs.indices.allSatisfy({ node.inputs[$0].isEmpty || ranks[$0] != nil }) else { return r.block("unknown rank") }
        let (slot0, map0) = tracked[0]
        let axis = map0.axis + outRank - (ranks[slot0] ?? outRank)
        let count = map0.atoms.count
        for (slot, map) in tracked.dropFirst() {
            guard map.axis + outRank - (ranks[slot] ?? outRank) == axis, map.atoms.count == count else {
                return r.block("its operands carry channels on different axes")
            }
        }
        var slicesConstant = false
        for (i, name) in node.inputs.enumerated() where !name.isEmpty && !tracked.contains(where: { $0.0 == i }) {
            let local = axis - (outRank - (ranks[i] ?? outRank))
            if local < 0 { continue }
            let dim = view.fixedDim(name, local)
            if dim == 1 { continue }
            guard dim == count, view.constant(name) != nil else {
                return r.block("operand \(name) has the channel axis but is not a constant")
            }
            slicesConstant = true
        }
        for (_, map) in tracked.dropFirst() { r.deps.unite(map0.atoms, map.atoms) }
        if slicesConstant { r.deps.touched.insert(n) }
        r.emit(0, ChannelMap(axis: axis, atoms: map0.atoms))
    }

    static func reduction(_ node: Node, _ map: ChannelMap, _ view: PruningGraphView, _ r: RuleContext) {
        guard let rank = view.rank(node.inputs[0]) else { return r.block("unknown rank") }
        var axes: [Int]
        if let attr = FusionSupport.ints(node, "axes") {
            axes = attr.map { normalize($0, rank) }
        } else if node.inputs.count > 1, !node.inputs[1].isEmpty {
            guard let values = view.integers(node.inputs[1]) else { return r.block("its axes are not constant") }
            axes = values.map { normalize($0, rank) }
        } else if node.opType == "MeanVarianceNormalization" {
            axes = [0, 2, 3]
        } else {
            axes = (FusionSupport.int(node, "noop_with_empty_axes") ?? 0) != 0 ? [] : Array(0..<rank)
        }
        guard !axes.contains(map.axis) else { return r.block("it reduces across the channels") }
        let keep = node.opType == "MeanVarianceNormalization" || (FusionSupport.int(node, "keepdims") ?? 1) != 0
        r.emit(0, ChannelMap(axis: keep ? map.axis : map.axis - axes.filter { $0 < map.axis }.count, atoms: map.atoms))
    }

    // MARK: - Data movement

    static func squeeze(_ node: Node, _ map: ChannelMap, _ view: PruningGraphView, _ r: RuleContext) {
        guard let rank = view.rank(node.inputs[0]), let outRank = view.rank(node.outputs[0]) else { return r.block("unknown rank") }
        var axes: [Int64]?
        if let attr = FusionSupport.ints(node, "axes") { axes = attr }
        else if node.inputs.count > 1, !node.inputs[1].isEmpty {
            guard let values = view.integers(node.inputs[1]) else { return r.block("its axes are not constant") }
            axes = values
        }
        if node.opType == "Squeeze" {
            let removed: [Int]
            if let axes { removed = axes.map { normalize($0, rank) } }
            else {
                guard let dims = view.dims(node.inputs[0]) else { return r.block("unknown shape") }
                removed = dims.indices.filter { dims[$0] == .fixed(1) }
            }
            guard !removed.contains(map.axis) else { return r.block("it squeezes the channel axis") }
            r.emit(0, ChannelMap(axis: map.axis - removed.filter { $0 < map.axis }.count, atoms: map.atoms))
        } else {
            guard let axes else { return r.block("its axes are unknown") }
            let inserted = Set(axes.map { normalize($0, outRank) })
            var position = -1, seen = -1
            for out in 0..<outRank where !inserted.contains(out) {
                seen += 1
                if seen == map.axis { position = out; break }
            }
            guard position >= 0 else { return r.block("invalid axes") }
            r.emit(0, ChannelMap(axis: position, atoms: map.atoms))
        }
    }

    /// Each channel repeated `inner` times, the pattern repeated `outer` times: the layout of an axis that
    /// merges the channel axis with its neighbours.
    static func repeated(_ atoms: [Int], outer: Int, inner: Int) -> [Int] {
        var result: [Int] = []
        result.reserveCapacity(outer * atoms.count * inner)
        for _ in 0..<outer { for a in atoms { for _ in 0..<inner { result.append(a) } } }
        return result
    }

    static func product(_ dims: ArraySlice<Dim>) -> Int? {
        var p = 1
        for d in dims {
            guard let v = d.fixedValue else { return nil }
            let (r, overflow) = p.multipliedReportingOverflow(by: Int(v))
            guard !overflow else { return nil }
            p = r
        }
        return p
    }

    static func flatten(_ node: Node, _ map: ChannelMap, _ view: PruningGraphView, _ r: RuleContext) {
        guard let dims = view.dims(node.inputs[0]) else { return r.block("unknown shape") }
        let a = normalize(FusionSupport.int(node, "axis") ?? 1, dims.count)
        let c = map.axis
        let (lo, hi) = c >= a ? (a, dims.count) : (0, a)
        guard let outer = product(dims[lo..<c]), let inner = product(dims[(c + 1)..<hi]),
              outer * inner * map.atoms.count <= 1 << 26 else {
            return r.block("the dims merged with the channels are not static")
        }
        r.emit(0, ChannelMap(axis: c >= a ? 1 : 0, atoms: repeated(map.atoms, outer: outer, inner: inner)))
    }

    /// The output axis of a Reshape where input axis `c` begins: the dims before it must keep their product
    /// (identical dims, symbolic ones included, or fixed ones multiplying to the same value).
    static func channelStart(_ input: [Dim], _ output: [Dim], _ c: Int) -> Int? {
        var i = 0
        while i < c, i < output.count, input[i] == output[i] { i += 1 }
        var k = i
        if i < c {
            guard let before = product(input[i..<c]) else { return nil }
            var p = 1
            while p < before, k < output.count, let v = output[k].fixedValue { p *= Int(v); k += 1 }
            guard p == before else { return nil }
        }
        return k
    }

    /// Where a Reshape puts the channel axis `c`: output axis `k` holding the channels times the `inner` dims
    /// merged after them, when the dims before the channels keep their product. Splitting the channels (into
    /// heads × head size, say) is not representable by one axis and returns nil.
    static func reshapeTarget(_ input: [Dim], _ output: [Dim], _ c: Int) -> (k: Int, inner: Int)? {
        guard let k = channelStart(input, output, c) else { return nil }
        guard k < output.count, let target = output[k].fixedValue, let channels = input[c].fixedValue else { return nil }
        var inner = 1, j = c + 1
        while Int64(inner) * channels < target, j < input.count, let v = input[j].fixedValue { inner *= Int(v); j += 1 }
        guard Int64(inner) * channels == target else { return nil }
        return (k, inner)
    }

    /// A Reshape that splits the channel axis into several (heads × head size, or q/k/v × heads × head size):
    /// the output axis `k` where the factors start, their sizes, and which one carries the atoms — the last
    /// factor that is not the innermost, i.e. the heads, whose positions stay whole blocks of channels.
    static func reshapeSplit(_ input: [Dim], _ output: [Dim], _ c: Int) -> (k: Int, factors: [Int], chosen: Int)? {
        guard let k = channelStart(input, output, c) else { return nil }
        guard let channels = input[c].fixedValue else { return nil }
        var factors: [Int] = [], p = 1
        var j = k
        while Int64(p) < channels, j < output.count, let v = output[j].fixedValue, v > 0 { factors.append(Int(v)); p *= Int(v); j += 1 }
        guard Int64(p) == channels, factors.count >= 2 else { return nil }
        return (k, factors, factors.count - 2)
    }

    static func reshape(_ node: Node, _ n: Int, _ map: ChannelMap, _ view: PruningGraphView, _ r: RuleContext) {
        guard let input = view.dims(node.inputs[0]), let output = view.dims(node.outputs[0]) else { return r.block("unknown shape") }
        guard node.inputs.count > 1, let target = view.integers(node.inputs[1]) else { return r.block("its target shape is not constant") }
        if let (k, inner) = reshapeTarget(input, output, map.axis), k < target.count {
            if target[k] == 0, !(k == map.axis && inner == 1) { return r.block("a 0 (copy) entry would copy a different axis") }
            if target[k] > 0 { r.deps.touched.insert(n) }
            return r.emit(0, ChannelMap(axis: k, atoms: repeated(map.atoms, outer: 1, inner: inner)))
        }
        guard let (k, factors, chosen) = reshapeSplit(input, output, map.axis), k + chosen < target.count, target[k + chosen] != 0 else {
            return r.block("it splits the channel axis in a way pruning does not follow")
        }
        // Every channel whose index along the chosen factor is h belongs to block h: they go together.
        let stride = factors[(chosen + 1)...].reduce(1, *), count = factors[chosen]
        var blocks = [Int](repeating: -1, count: count)
        for (p, atom) in map.atoms.enumerated() {
            let h = (p / stride) % count
            if blocks[h] < 0 { blocks[h] = atom } else { r.deps.sets.union(blocks[h], atom) }
        }
        if target[k + chosen] > 0 { r.deps.touched.insert(n) }
        r.emit(0, ChannelMap(axis: k + chosen, atoms: blocks))
    }

    static func concat(_ node: Node, _ tracked: [(Int, ChannelMap)], _ view: PruningGraphView, _ r: RuleContext) {
        guard let rank = view.rank(node.outputs[0]) ?? view.rank(node.inputs[0]) else { return r.block("unknown rank") }
        let axis = normalize(FusionSupport.int(node, "axis") ?? 0, rank)
        let channelAxis = tracked[0].1.axis
        guard tracked.allSatisfy({ $0.1.axis == channelAxis }) else { return r.block("its inputs carry channels on different axes") }
        if channelAxis == axis {
            // Along the channels: the output's positions are the inputs' in order; an untracked input's channels
            // are fixed atoms of their own.
            var atoms: [Int] = []
            for (i, name) in node.inputs.enumerated() where !name.isEmpty {
                if let map = tracked.first(where: { $0.0 == i })?.1 { atoms += map.atoms; continue }
                guard let d = view.fixedDim(name, axis) else { return r.block("input \(name) has an unknown channel count") }
                atoms += r.deps.fixedAtoms(d, "\(node.displayName) (Concat): input \(name) comes from a layer that cannot be pruned")
            }
            r.emit(0, ChannelMap(axis: axis, atoms: atoms))
        } else {
            let count = tracked[0].1.atoms.count
            guard tracked.allSatisfy({ $0.1.atoms.count == count }) else { return r.block("inputs disagree on the channel count") }
            for (i, name) in node.inputs.enumerated() where !name.isEmpty && !tracked.contains(where: { $0.0 == i }) {
                guard view.fixedDim(name, channelAxis) == count else { return r.block("input \(name) has an unknown channel count") }
                r.deps.unite(tracked[0].1.atoms, r.deps.fixedAtoms(count, "\(node.displayName) (Concat): input \(name) comes from a layer that cannot be pruned"))
            }
            for (_, map) in tracked.dropFirst() { r.deps.unite(tracked[0].1.atoms, map.atoms) }
            r.emit(0, tracked[0].1)
        }
    }

    /// The part sizes of a Split along its axis, from the `split` input or attribute, or equal parts.
    static func splitSizes(_ node: Node, length: Int, _ view: PruningGraphView) -> [Int]? {
        let outputs = node.outputs.count
        if node.inputs.count > 1, !node.inputs[1].isEmpty {
            return view.integers(node.inputs[1]).map { $0.map(Int.init) }
        }
        if let attr = FusionSupport.ints(node, "split") { return attr.map(Int.init) }
        let parts = Int(FusionSupport.int(node, "num_outputs") ?? Int64(outputs))
        guard parts > 0 else { return nil }
        let size = (length + parts - 1) / parts
        return (0..<parts).map { max(0, min(size, length - $0 * size)) }
    }

    static func split(_ node: Node, _ n: Int, _ map: ChannelMap, _ view: PruningGraphView, _ r: RuleContext) {
        guard let rank = view.rank(node.inputs[0]) else { return r.block("unknown rank") }
        let axis = normalize(FusionSupport.int(node, "axis") ?? 0, rank)
        guard axis == map.axis else {
            for o in node.outputs.indices { r.emit(o, map) }
            return
        }
        guard let sizes = splitSizes(node, length: map.atoms.count, view), sizes.count == node.outputs.count,
              sizes.reduce(0, +) == map.atoms.count, sizes.allSatisfy({ $0 >= 0 }) else {
            return r.block("its split sizes are not constant")
        }
        var start = 0
        for (o, size) in sizes.enumerated() {
            r.emit(o, ChannelMap(axis: axis, atoms: Array(map.atoms[start..<(start + size)])))
            start += size
        }
        r.deps.touched.insert(n)
    }

    /// A Slice's (start, end) on the channel axis when it is a plain step-1 range; nil when it does not slice
    /// that axis; `.some(nil)` when it slices it some other way.
    static func sliceRange(_ node: Node, length: Int, axis: Int, rank: Int, _ view: PruningGraphView) -> (Int, Int)?? {
        guard node.inputs.count >= 3, let starts = view.integers(node.inputs[1]), let ends = view.integers(node.inputs[2]) else {
            return .some(nil)
        }
        var axes = Array(0..<Int64(starts.count))
        if node.inputs.count > 3, !node.inputs[3].isEmpty {
            guard let given = view.integers(node.inputs[3]) else { return .some(nil) }
            axes = given
        }
        var steps = [Int64](repeating: 1, count: starts.count)
        if node.inputs.count > 4, !node.inputs[4].isEmpty {
            guard let given = view.integers(node.inputs[4]) else { return .some(nil) }
            steps = given
        }
        guard axes.count == starts.count, ends.count == starts.count, steps.count == starts.count else { return .some(nil) }
        guard let i = axes.firstIndex(where: { normalize($0, rank) == axis }) else { return .none }
        guard steps[i] == 1 else { return .some(nil) }
        func clamp(_ v: Int64) -> Int {
            let c = Int64(length)
            let x = v < 0 ? v + c : v
            return Int(max(0, min(c, x)))
        }
        let s = clamp(starts[i]), e = clamp(ends[i])
        return .some((s, max(s, e)))
    }

    static func slice(_ node: Node, _ n: Int, _ map: ChannelMap, _ view: PruningGraphView, _ r: RuleContext) {
        guard let rank = view.rank(node.inputs[0]) else { return r.block("unknown rank") }
        switch sliceRange(node, length: map.atoms.count, axis: map.axis, rank: rank, view) {
        case .none:
            r.emit(0, map)
        case .some(nil):
            r.block("it slices the channels with a step or non-constant bounds")
        case .some(let range?):
            guard range.1 > range.0 else { return r.block("it selects no channel") }
            r.deps.touched.insert(n)
            r.emit(0, ChannelMap(axis: map.axis, atoms: Array(map.atoms[range.0..<range.1])))
        }
    }

    static func resize(_ node: Node, _ n: Int, _ map: ChannelMap, _ view: PruningGraphView, _ r: RuleContext) {
        let scalesSlot = node.opType == "Upsample" ? 1 : 2
        if node.inputs.count > 3, !node.inputs[3].isEmpty {
            guard let sizes = view.integers(node.inputs[3]), map.axis < sizes.count, sizes[map.axis] == Int64(map.atoms.count) else {
                return r.block("its sizes are not constant")
            }
            r.deps.touched.insert(n)
        } else if node.inputs.count > scalesSlot, !node.inputs[scalesSlot].isEmpty {
            guard let scales = view.constant(node.inputs[scalesSlot]).flatMap(FusionSupport.doubles), map.axis < scales.count,
                  scales[map.axis] == 1 else {
                return r.block("it scales the channel axis or its scales are not constant")
            }
        }
        r.emit(0, map)
    }

    static func pad(_ node: Node, _ map: ChannelMap, _ view: PruningGraphView, _ r: RuleContext) {
        guard let rank = view.rank(node.inputs[0]) else { return r.block("unknown rank") }
        var pads: [Int64]
        if let attr = FusionSupport.ints(node, "pads") { pads = attr }
        else {
            guard node.inputs.count > 1, let given = view.integers(node.inputs[1]) else { return r.block("its pads are not constant") }
            pads = given
        }
        var axes = Array(0..<rank)
        if node.inputs.count > 3, !node.inputs[3].isEmpty {
            guard let given = view.integers(node.inputs[3]) else { return r.block("its axes are not constant") }
            axes = given.map { normalize($0, rank) }
        }
        guard pads.count == 2 * axes.count else { return r.block("invalid pads") }
        if let i = axes.firstIndex(of: map.axis), pads[i] != 0 || pads[i + axes.count] != 0 {
            return r.block("it pads the channel axis")
        }
        r.emit(0, map)
    }
}

/// What a rule works with: the analysis so far, and the node at hand with its tracked inputs (a reference, so
/// `block` and `emit` can be handed around while the analysis changes, and one instance serves the whole graph).
final class RuleContext {
    let view: PruningGraphView
    var deps = ChannelDependencies()
    /// The node being analyzed and its inputs that carry channels (input slot, map).
    var node = Node(opType: "", inputs: [], outputs: [])
    var tracked: [(Int, ChannelMap)] = []

    init(view: PruningGraphView) { self.view = view }

    /// The channels this node reads stay whole, for `why`.
    func block(_ why: String) {
        for (_, map) in tracked { deps.fixAll(map, "\(node.displayName) (\(node.opType)): \(why)") }
    }

    func emit(_ output: Int, _ map: ChannelMap) {
        guard output < node.outputs.count, !node.outputs[output].isEmpty else { return }
        let name = node.outputs[output]
        // A map must cover the whole axis: a mismatch means a rule misread the shapes, so nothing is cut.
        if let d = view.fixedDim(name, map.axis), d != map.atoms.count {
            deps.fixAll(map, "\(node.displayName) (\(node.opType)): inferred shape disagrees with the channel count")
            return
        }
        deps.maps[name] = map
    }
}
