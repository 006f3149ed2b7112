import OnnxcCore
import OnnxcIR

/// Which channels go: groups are the connected layers, a channel's importance is the mean over the group's
/// members of its normalized norm (each member's scores divided by their mean, so a wide consumer does not
/// outvote the layer that produces the channel: Torch-Pruning's group_reduction="mean", normalizer="mean"),
/// and each group loses the same fraction of its channels, least important first, never below a layer's minimum.
enum ChannelSelection {
    struct Result {
        /// Removed atom classes (union-find representatives).
        var removed: Set<Int>
        var groups: [PruningGroup]
    }

    static func choose(_ deps: inout ChannelDependencies, graph: Graph, options: PruningOptions) -> Result {
        // Groups: roots that share a class.
        var rootParent = Array(deps.roots.indices)
        func findRoot(_ r: Int) -> Int {
            var x = r
            while rootParent[x] != x { x = rootParent[x] }
            return x
        }
        var classOwner: [Int: Int] = [:]
        for (r, root) in deps.roots.enumerated() {
            for atom in root.firstAtom..<(root.firstAtom + root.channels) {
                let c = deps.sets.find(atom)
                if let owner = classOwner[c] { rootParent[findRoot(r)] = findRoot(owner) } else { classOwner[c] = r }
            }
        }
        // Importance per class.
        var score: [Int: Double] = [:], votes: [Int: Int] = [:]
        let bnOnly = options.criterion == .bnScale
        func group(of source: ImportanceSource) -> Int? {
            for atom in source.atoms { if let r = deps.root(of: atom) { return findRoot(r) } }
            return nil
        }
        let groupsWithBN = Set(deps.sources.filter(\.isBatchNormScale).compactMap { group(of: $0) })
        for source in deps.sources {
            let group = group(of: source)
            if bnOnly, let group, groupsWithBN.contains(group), !source.isBatchNormScale { continue }
            let values = options.criterion == .l2 ? source.l2 : source.l1
            var perClass: [Int: Double] = [:]
            for (atom, v) in zip(source.atoms, values) { perClass[deps.sets.find(atom), default: 0] += v }
            let mean = perClass.values.reduce(0, +) / Double(max(1, perClass.count))
            for (c, v) in perClass {
                score[c, default: 0] += mean > 0 ? v / mean : 0
                votes[c, default: 0] += 1
            }
        }
        // Every tracked tensor keeps at least one channel, a layer's output at least the minimum.
        var constraintOf: [Int: [Int]] = [:]
        var remaining: [Int] = [], minimum: [Int] = []
        var seen: [[Int]: Int] = [:]
        let rootOutputs = Set(deps.roots.map(\.output))
        for (name, map) in deps.maps.sorted(by: { $0.key < $1.key }) {
            let classes = Array(Set(map.atoms.map { deps.sets.find($0) })).sorted()
            let floor = rootOutputs.contains(name) ? max(1, options.minimumChannels) : 1
            if let k = seen[classes] {
                minimum[k] = max(minimum[k], floor)
                continue
            }
            let k = remaining.count
            seen[classes] = k
            remaining.append(classes.count)
            minimum.append(min(floor, classes.count))
            for c in classes { constraintOf[c, default: []].append(k) }
        }
        // Per group: remove ratio × width classes, least important first.
        var members: [Int: [Int]] = [:]
        for r in deps.roots.indices { members[findRoot(r), default: []].append(r) }
        var removed = Set<Int>()
        var groups: [PruningGroup] = []
        for (_, roots) in members.sorted(by: { $0.key < $1.key }) {
            var classes: [Int] = []
            var classSet = Set<Int>()
            var reasons: [String] = []
            for r in roots {
                let root = deps.roots[r]
                for atom in root.firstAtom..<(root.firstAtom + root.channels) {
                    let c = deps.sets.find(atom)
                    if classSet.insert(c).inserted { classes.append(c) }
                    if let why = deps.sets.fixedReason(atom), !reasons.contains(why) { reasons.append(why) }
                }
            }
            let width = classes.count
            var target = Int((Double(width) * options.ratio).rounded(.down))
            if options.roundTo > 1 {
                let kept = width - target
                let rounded = min(width, (kept + options.roundTo - 1) / options.roundTo * options.roundTo)
                target = width - rounded
            }
            let candidates = classes.filter { deps.sets.fixedReason($0) == nil }
                .sorted { a, b in
                    let sa = (score[a] ?? 0) / Double(max(1, votes[a] ?? 0)), sb = (score[b] ?? 0) / Double(max(1, votes[b] ?? 0))
                    return sa != sb ? sa < sb : a < b
                }
            var cut = 0
            for c in candidates where cut < target {
                let limits = constraintOf[c] ?? []
                guard limits.allSatisfy({ remaining[$0] - 1 >= minimum[$0] }) else { continue }
                for k in limits { remaining[k] -= 1 }
                removed.insert(c)
                cut += 1
            }
            var memberNodes = Set<Int>()
            for s in deps.sources where s.atoms.contains(where: { classSet.contains(deps.sets.find($0)) }) { memberNodes.insert(s.node) }
            for r in roots { memberNodes.insert(deps.roots[r].node) }
            var group = PruningGroup(layers: roots.map { deps.roots[$0].name }, members: memberNodes.sorted().map { ModelCost.name(graph.nodes[$0]) },
                                     channelsBefore: width, channelsAfter: width - cut,
                                     reasons: cut == 0 && target > 0 && reasons.isEmpty ? ["the layer minimum leaves nothing to remove"] : reasons)
            let atoms = roots.reduce(0) { $0 + deps.roots[$1].channels }
            if width > 0, atoms % width == 0, roots.count == 1 { group.blockSize = atoms / width }
            groups.append(group)
        }
        return Result(removed: removed, groups: groups)
    }
}
