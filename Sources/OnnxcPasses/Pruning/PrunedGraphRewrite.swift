import OnnxcCore
import OnnxcIR

/// Cuts the removed channels out of every weight and every attribute or constant that counts them: a layer's
/// output slice and bias, its consumers' input slices, BN parameters, per-channel constants of element-wise
/// ops, depthwise `group`, Split sizes, Slice bounds, Reshape targets and Resize sizes. Changed constants get
/// fresh names (a weight may be shared with a node that keeps its channels); the old ones go when unused.
enum PrunedGraphRewrite {
    static func apply(_ graph: Graph, deps: ChannelDependencies, removed: Set<Int>, opset: Int64) -> Graph {
        guard !removed.isEmpty else { return graph }
        var result = graph
        let view = PruningGraphView(graph)
        var taken = FusionSupport.takenNames(graph)
        var keptCache: [String: [Int]] = [:]
        func kept(_ name: String) -> [Int]? {
            if let k = keptCache[name] { return k }
            guard let k = deps.positions(of: name, removed: removed)?.kept else { return nil }
            keptCache[name] = k
            return k
        }
        func changed(_ name: String) -> [Int]? {
            guard let k = kept(name), let map = deps.maps[name], k.count != map.atoms.count else { return nil }
            return k
        }
        func replace(_ n: Int, _ slot: Int, _ tensor: Tensor) {
            let name = FusionSupport.freshName(result.nodes[n].inputs[slot] + "_pruned", &taken)
            var t = tensor
            t.name = name
            result.initializers.append(t)
            result.nodes[n].inputs[slot] = name
        }
        func take(_ n: Int, _ slot: Int, axis: Int, _ keep: [Int]) {
            let node = result.nodes[n]
            guard slot < node.inputs.count, let tensor = result.initializer(named: node.inputs[slot]) ?? view.constant(node.inputs[slot]),
                  let cut = TensorSlicing.take(tensor, axis: axis, keep) else { return }
            replace(n, slot, cut)
        }
        func integers(_ n: Int, _ slot: Int, _ values: [Int64]) {
            guard let old = view.constant(result.nodes[n].inputs[slot]) else { return }
            guard let tensor = TensorSlicing.integers(values, like: old) else { return }
            replace(n, slot, tensor)
        }

        for n in result.nodes.indices {
            let node = result.nodes[n]
            let input = node.inputs.first ?? "", output = node.outputs.first ?? ""
            let inKeep = changed(input), outKeep = changed(output)
            guard deps.touched.contains(n) || inKeep != nil || outKeep != nil else { continue }
            switch node.opType {
            case "Conv", "ConvTranspose":
                let transposed = node.opType == "ConvTranspose"
                let group = FusionSupport.int(node, "group") ?? 1
                if group == 1 {
                    if let inKeep { take(n, 1, axis: transposed ? 0 : 1, inKeep) }
                    if let outKeep { take(n, 1, axis: transposed ? 1 : 0, outKeep) }
                } else if let outKeep, let inKeep {
                    take(n, 1, axis: 0, outKeep)
                    result.nodes[n] = FusionSupport.setting("group", .int(Int64(inKeep.count)), on: result.nodes[n])
                }
                if let outKeep, node.inputs.count > 2, !node.inputs[2].isEmpty { take(n, 2, axis: 0, outKeep) }
            case "Gemm":
                let transB = (FusionSupport.int(node, "transB") ?? 0) != 0
                if let inKeep { take(n, 1, axis: transB ? 1 : 0, inKeep) }
                if let outKeep {
                    take(n, 1, axis: transB ? 0 : 1, outKeep)
                    if node.inputs.count > 2, let bias = view.dims(node.inputs[2]), let count = deps.maps[output]?.atoms.count {
                        if bias.count == 1, bias[0] == .fixed(Int64(count)) { take(n, 2, axis: 0, outKeep) }
                        if bias.count == 2, bias[1] == .fixed(Int64(count)) { take(n, 2, axis: 1, outKeep) }
                    }
                }
            case "MatMul":
                if let inKeep { take(n, 1, axis: 0, inKeep) }
                if let outKeep { take(n, 1, axis: 1, outKeep) }
            case "BatchNormalization", "InstanceNormalization":
                guard let inKeep else { continue }
                for slot in 1...(node.opType == "BatchNormalization" ? 4 : 2) { take(n, slot, axis: 0, inKeep) }
            case "Reshape":
                guard let outKeep, let map = deps.maps[output], let target = view.integers(node.inputs[1]),
                      map.axis < target.count, target[map.axis] > 0 else { continue }
                var values = target
                values[map.axis] = Int64(outKeep.count)
                integers(n, 1, values)
            case "Resize":
                guard let outKeep, let map = deps.maps[output], node.inputs.count > 3, let sizes = view.integers(node.inputs[3]),
                      map.axis < sizes.count else { continue }
                var values = sizes
                values[map.axis] = Int64(outKeep.count)
                integers(n, 3, values)
            case "Split":
                guard let map = deps.maps[input], node.outputs.allSatisfy({ deps.maps[$0]?.axis == map.axis }),
                      let rank = view.rank(input), ChannelRules.normalize(FusionSupport.int(node, "axis") ?? 0, rank) == map.axis else { continue }
                let sizes = node.outputs.map { Int64(kept($0)?.count ?? 0) }
                guard inKeep != nil else { continue }
                if node.inputs.count > 1, !node.inputs[1].isEmpty {
                    integers(n, 1, sizes)
                } else if opset < 13 {
                    result.nodes[n] = FusionSupport.setting("split", .ints(sizes), on: node)
                } else {
                    var updated = node
                    updated.attributes.removeAll { $0.name == "num_outputs" }
                    let name = FusionSupport.freshName(node.displayName + "_split_pruned", &taken)
                    guard let data = try? TensorData(int64s: sizes, dims: [Int64(sizes.count)]) else { continue }
                    result.initializers.append(Tensor(name: name, data: data))
                    while updated.inputs.count < 2 { updated.inputs.append("") }
                    updated.inputs[1] = name
                    result.nodes[n] = updated
                }
            case "Slice":
                guard let inKeep, let map = deps.maps[input], let rank = view.rank(input),
                      case .some(let range?) = ChannelRules.sliceRange(node, length: map.atoms.count, axis: map.axis, rank: rank, view),
                      let starts = view.integers(node.inputs[1]), let ends = view.integers(node.inputs[2]) else { continue }
                var axes = Array(0..<Int64(starts.count))
                if node.inputs.count > 3, !node.inputs[3].isEmpty, let given = view.integers(node.inputs[3]) { axes = given }
                guard let i = axes.firstIndex(where: { ChannelRules.normalize($0, rank) == map.axis }) else { continue }
                let newStart = inKeep.filter { $0 < range.0 }.count
                let newEnd = newStart + inKeep.filter { $0 >= range.0 && $0 < range.1 }.count
                var s = starts, e = ends
                s[i] = Int64(newStart)
                e[i] = Int64(newEnd)
                integers(n, 1, s)
                integers(n, 2, e)
            default:
                guard ChannelRules.elementwise.contains(node.opType), let outKeep, let map = deps.maps[output],
                      let outRank = view.rank(output) else { continue }
                for (slot, name) in node.inputs.enumerated() where !name.isEmpty && deps.maps[name] == nil {
                    guard let rank = view.rank(name) else { continue }
                    let local = map.axis - (outRank - rank)
                    if local >= 0, view.fixedDim(name, local) == map.atoms.count, map.atoms.count > 1 { take(n, slot, axis: local, outKeep) }
                }
            }
        }
        // Shapes of cut tensors are stale; shape inference recomputes them.
        result.valueInfo.removeAll { deps.maps[$0.name] != nil }
        result.dropUnusedInitializers()
        return result
    }
}

/// Element selection along one axis of a constant, for any fixed-width element type.
enum TensorSlicing {
    static func take(_ tensor: Tensor, axis: Int, _ keep: [Int]) -> Tensor? {
        guard axis < tensor.dims.count, let width = tensor.dtype.byteCount(elements: 1), width > 0,
              let bytes = tensor.data.bytes else { return nil }
        let dims = tensor.dims.map(Int.init)
        let count = dims[axis]
        guard keep.allSatisfy({ $0 >= 0 && $0 < count }) else { return nil }
        let outer = dims[..<axis].reduce(1, *), inner = dims[(axis + 1)...].reduce(1, *) * width
        var out = [UInt8]()
        out.reserveCapacity(outer * keep.count * inner)
        bytes.withUnsafeBytes { raw in
            for o in 0..<outer {
                for k in keep {
                    let start = (o * count + k) * inner
                    out.append(contentsOf: raw[start..<(start + inner)])
                }
            }
        }
        var newDims = tensor.dims
        newDims[axis] = Int64(keep.count)
        guard let data = try? TensorData(dtype: tensor.dtype, dims: newDims, payload: .bytes(ByteSlice(copying: out))) else { return nil }
        return Tensor(name: tensor.name, data: data)
    }

    /// `values` as a tensor of `like`'s integer type and shape.
    static func integers(_ values: [Int64], like: Tensor) -> Tensor? {
        var bytes: [UInt8] = []
        switch like.dtype {
        case .int64: for v in values { withUnsafeBytes(of: v.littleEndian) { bytes.append(contentsOf: $0) } }
        case .int32: for v in values { withUnsafeBytes(of: Int32(clamping: v).littleEndian) { bytes.append(contentsOf: $0) } }
        default: return nil
        }
        guard let data = try? TensorData(dtype: like.dtype, dims: like.dims, payload: .bytes(ByteSlice(copying: bytes))) else { return nil }
        return Tensor(name: like.name, data: data)
    }
}
