/// Puts nodes in an order where every value is produced before it is read, keeping the file's order
/// wherever it is already valid. ONNX requires sorted nodes, but exporters do not all comply and ONNX
/// Runtime accepts unsorted graphs, so the importer sorts rather than rejects.
public enum TopologicalSort {
    /// Sorts `graph` and all its subgraphs; throws `.cycle` naming the nodes that can never run.
    public static func sorted(_ graph: Graph, path: String = "main") throws(IRError) -> Graph {
        var result = graph
        for n in result.nodes.indices {
            for a in result.nodes[n].attributes.indices {
                let node = result.nodes[n]
                let base = "\(path)/\(node.displayName).\(node.attributes[a].name)"
                switch node.attributes[a].value {
                case .graph(let g):
                    result.nodes[n].attributes[a].value = .graph(try sorted(g, path: base))
                case .graphs(let gs):
                    var out: [Graph] = []
                    for (i, g) in gs.enumerated() { out.append(try sorted(g, path: "\(base)[\(i)]")) }
                    result.nodes[n].attributes[a].value = .graphs(out)
                default: break
                }
            }
        }
        result.nodes = try order(result.nodes, path: path)
        return result
    }

    private static func order(_ nodes: [Node], path: String) throws(IRError) -> [Node] {
        var producer: [String: Int] = [:]
        for (i, node) in nodes.enumerated() {
            for output in node.outputs where !output.isEmpty { producer[output] = i }
        }
        // Dependencies: producers of inputs and of values that subgraphs read from this scope.
        var dependents = [[Int]](repeating: [], count: nodes.count)
        var pending = [Int](repeating: 0, count: nodes.count)
        var alreadySorted = true
        for (i, node) in nodes.enumerated() {
            var reads = Set(node.inputs.filter { !$0.isEmpty })
            for subgraph in node.subgraphs { reads.formUnion(subgraph.capturedValues) }
            for name in reads {
                guard let p = producer[name] else { continue }
                if p >= i { alreadySorted = false }
                dependents[p].append(i)
                pending[i] += 1
            }
        }
        if alreadySorted { return nodes }

        // Kahn's algorithm with a min-heap on the original index: stable, O(n log n).
        var heap = MinHeap()
        for i in nodes.indices where pending[i] == 0 { heap.push(i) }
        var ordered: [Node] = []
        ordered.reserveCapacity(nodes.count)
        while let i = heap.pop() {
            ordered.append(nodes[i])
            for d in dependents[i] {
                pending[d] -= 1
                if pending[d] == 0 { heap.push(d) }
            }
        }
        if ordered.count != nodes.count {
            throw .cycle(graphPath: path, nodes: cycleMembers(pending: pending, dependents: dependents).map { nodes[$0].displayName })
        }
        return ordered
    }
}

/// Of the nodes Kahn's algorithm could not order, those on a cycle: nodes that merely wait on a cycle are
/// pruned from the sink side until every remaining node feeds another remaining one.
private func cycleMembers(pending: [Int], dependents: [[Int]]) -> [Int] {
    var remaining = Set(pending.indices.filter { pending[$0] > 0 })
    var changed = true
    while changed {
        changed = false
        for node in remaining where !dependents[node].contains(where: remaining.contains) {
            remaining.remove(node)
            changed = true
        }
    }
    return remaining.sorted()
}

/// A binary min-heap of node indices.
private struct MinHeap {
    private var items: [Int] = []

    mutating func push(_ value: Int) {
        items.append(value)
        var child = items.count - 1
        while child > 0 {
            let parent = (child - 1) / 2
            if items[parent] <= items[child] { break }
            items.swapAt(parent, child)
            child = parent
        }
    }

    mutating func pop() -> Int? {
        guard let top = items.first else { return nil }
        let last = items.removeLast()
        if !items.isEmpty {
            items[0] = last
            var parent = 0
            while true {
                let left = 2 * parent + 1, right = left + 1
                var smallest = parent
                if left < items.count && items[left] < items[smallest] { smallest = left }
                if right < items.count && items[right] < items[smallest] { smallest = right }
                if smallest == parent { break }
                items.swapAt(parent, smallest)
                parent = smallest
            }
        }
        return top
    }
}
