import OnnxcCore
import OnnxcIR

/// The layers with weights: Conv, ConvTranspose, Gemm, MatMul. They end one group (their weight's input
/// slice is the consumer side) and start another (their output channels are fresh atoms). Depthwise Conv is the
/// exception: one filter per channel ties its output channels to its input channels, so it only passes atoms on.
enum LayerRules {
    static func propagate(node: Node, index n: Int, tracked: [(Int, ChannelMap)], view: PruningGraphView, excluded: Set<String>,
                          _ r: RuleContext) {
        let block = r.block, emit = r.emit
        let weightSlot = 1
        if node.opType == "MatMul", node.inputs.count > 1, view.constant(node.inputs[1]) == nil {
            return batched(node, tracked, view, r)
        }
        if tracked.contains(where: { $0.0 != 0 }) { return block("its weights or bias are computed from pruned channels") }
        guard node.inputs.count > weightSlot, let weight = view.constant(node.inputs[weightSlot]),
              FusionSupport.floatTypes.contains(weight.dtype) else {
            return block("its weights are not a float constant")
        }
        let input = tracked.first?.1
        let isExcluded = excluded.contains(node.name)
        switch node.opType {
        case "Conv", "ConvTranspose":
            guard weight.dims.count >= 3 else { return block("invalid weight shape") }
            let transposed = node.opType == "ConvTranspose"
            let group = Int(FusionSupport.int(node, "group") ?? 1)
            if node.inputs.count > 2, !node.inputs[2].isEmpty, view.constant(node.inputs[2]) == nil {
                return block("its bias is not constant")
            }
            let outChannels = transposed ? Int(weight.dims[1]) * group : Int(weight.dims[0])
            let (inAxis, outAxis) = transposed ? (0, 1) : (1, 0)
            if let input {
                guard input.axis == 1 else { return block("channels are not on axis 1") }
                if group == 1 {
                    addSource(&r.deps, n, weight, axis: inAxis, atoms: input.atoms)
                    r.deps.touched.insert(n)
                } else if !transposed, group == input.atoms.count, weight.dims[1] == 1, outChannels % group == 0 {
                    // Depthwise: output channel j filters input channel j / multiplier.
                    let output = ChannelRules.repeated(input.atoms, outer: 1, inner: outChannels / group)
                    addSource(&r.deps, n, weight, axis: 0, atoms: output)
                    r.deps.touched.insert(n)
                    emit(0, ChannelMap(axis: 1, atoms: output))
                    return
                } else {
                    return block("grouped convolution (group \(group)) couples channels in blocks, which pruning does not follow")
                }
            }
            guard group == 1 else { return }
            if isExcluded { return r.deps.notes.append((node.name, "excluded by --exclude-nodes")) }
            let map = r.deps.addRoot(node: n, node, channels: outChannels)
            addSource(&r.deps, n, weight, axis: outAxis, atoms: map.atoms)
            emit(0, map)
        case "Gemm":
            guard weight.dims.count == 2 else { return block("invalid weight shape") }
            let transA = (FusionSupport.int(node, "transA") ?? 0) != 0, transB = (FusionSupport.int(node, "transB") ?? 0) != 0
            let (kAxis, nAxis) = transB ? (1, 0) : (0, 1)
            if let input {
                guard input.axis == (transA ? 0 : 1) else { return block("channels are not on its reduction axis") }
                addSource(&r.deps, n, weight, axis: kAxis, atoms: input.atoms)
                r.deps.touched.insert(n)
            }
            if node.inputs.count > 2, !node.inputs[2].isEmpty, view.constant(node.inputs[2]) == nil { return }
            if isExcluded { return r.deps.notes.append((node.name, "excluded by --exclude-nodes")) }
            var map = r.deps.addRoot(node: n, node, channels: Int(weight.dims[nAxis]))
            map.axis = 1
            addSource(&r.deps, n, weight, axis: nAxis, atoms: map.atoms)
            emit(0, map)
        default: // MatMul
            guard weight.dims.count == 2, let rank = view.rank(node.inputs[0]), rank >= 2 else {
                return block("only a 2-D constant right operand is supported")
            }
            if let input {
                guard input.axis == rank - 1 else { return block("channels are not on its reduction axis") }
                addSource(&r.deps, n, weight, axis: 0, atoms: input.atoms)
                r.deps.touched.insert(n)
            }
            if isExcluded { return r.deps.notes.append((node.name, "excluded by --exclude-nodes")) }
            var map = r.deps.addRoot(node: n, node, channels: Int(weight.dims[1]))
            map.axis = view.rank(node.outputs[0]).map { $0 - 1 } ?? rank - 1
            addSource(&r.deps, n, weight, axis: 1, atoms: map.atoms)
            emit(0, map)
        }
    }

    /// A product of two computed tensors (attention's Q·Kᵀ and P·V): channels on a batch axis (the heads) pass
    /// through, tied across both operands; channels on the multiplied axes cannot be removed from one side.
    static func batched(_ node: Node, _ tracked: [(Int, ChannelMap)], _ view: PruningGraphView, _ r: RuleContext) {
        guard !tracked.isEmpty else { return }
        guard let ra = view.rank(node.inputs[0]), let rb = view.rank(node.inputs[1]), ra >= 2, rb >= 2 else { return r.block("unknown rank") }
        let ranks = [ra, rb], outRank = max(ra, rb)
        let (slot0, map0) = tracked[0]
        let axis = map0.axis + outRank - ranks[slot0]
        for (slot, map) in tracked {
            guard map.axis < ranks[slot] - 2 else { return r.block("it multiplies along the channels") }
            guard map.axis + outRank - ranks[slot] == axis, map.atoms.count == map0.atoms.count else {
                return r.block("its operands carry channels on different axes")
            }
        }
        if tracked.count == 1 {
            let other = 1 - slot0, local = axis - (outRank - ranks[other])
            if local >= 0, view.fixedDim(node.inputs[other], local) != 1 { return r.block("its other operand has the channel axis") }
        } else {
            r.deps.unite(map0.atoms, tracked[1].1.atoms)
        }
        r.emit(0, ChannelMap(axis: axis, atoms: map0.atoms))
    }

    static func addSource(_ deps: inout ChannelDependencies, _ n: Int, _ weight: Tensor, axis: Int, atoms: [Int]) {
        guard let (l1, l2) = WeightNorms.along(weight, axis: axis), l1.count == atoms.count else { return }
        deps.sources.append(ImportanceSource(node: n, atoms: atoms, l1: l1, l2: l2, isBatchNormScale: false))
    }
}

/// Norms of a weight tensor's slices along one axis.
enum WeightNorms {
    static func along(_ tensor: Tensor, axis: Int) -> (l1: [Double], l2: [Double])? {
        guard let values = FusionSupport.doubles(tensor), axis < tensor.dims.count else { return nil }
        let dims = tensor.dims.map(Int.init)
        let count = dims[axis]
        let inner = dims[(axis + 1)...].reduce(1, *)
        var l1 = [Double](repeating: 0, count: count), l2 = l1
        for (i, v) in values.enumerated() {
            let c = (i / inner) % count
            l1[c] += abs(v)
            l2[c] += v * v
        }
        return (l1, l2.map { $0.squareRoot() })
    }
}
