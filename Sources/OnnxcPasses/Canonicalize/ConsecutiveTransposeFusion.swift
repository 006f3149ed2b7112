public import OnnxcIR

/// Merges a Transpose of a Transpose into one Transpose, or none when they cancel.
///
/// Matches: Transpose(Transpose(x, p1), p2) with valid permutations of one rank (absent perms reverse the
/// dims; two absent perms cancel at any rank). Produces: Transpose(x, q) with q[i] = p1[p2[i]], or uses of the
/// output read x when q is the identity; the inner Transpose goes when nothing else reads it. Preconditions:
/// the output is not a graph output when it is dropped (an identity result that is one stays a Transpose).
/// Numerics: unchanged (data movement only). Tested by: NoOpEliminationTests.
public struct ConsecutiveTransposeFusion: Pass {
    public let id = "fuse-transposes"
    public let summary = "merge consecutive Transposes into one (or none)"

    public init() {}

    public func run(on graph: Graph, context: PassContext) -> GraphPatch? {
        let index = GraphIndex(graph)
        var ranks: [String: Int] = [:]
        for info in graph.valueInfo + graph.outputs + graph.inputs {
            if let rank = info.type?.tensorType?.shape?.rank { ranks[info.name] = rank }
        }
        var patch = GraphPatch()
        var touched = Set<Int>()
        for (n, outer) in graph.nodes.enumerated() where outer.opType == "Transpose" && outer.domain.isEmpty && !touched.contains(n) {
            guard let middle = outer.inputs.first, !middle.isEmpty, let output = outer.outputs.first, !output.isEmpty,
                  let i = index.producer(of: middle)?.node, !touched.contains(i) else { continue }
            let inner = graph.nodes[i]
            guard inner.opType == "Transpose", inner.domain.isEmpty, let x = inner.inputs.first, !x.isEmpty else { continue }
            let p1 = Self.perm(inner), p2 = Self.perm(outer)
            var combined: [Int64]?
            if p1 == nil && p2 == nil {
                combined = nil  // reverse of reverse
            } else {
                guard let rank = p1?.count ?? p2?.count ?? ranks[x] else { continue }
                let reversed = (0..<Int64(rank)).reversed().map { $0 }
                let a = p1 ?? reversed, b = p2 ?? reversed
                guard Self.isPermutation(a), Self.isPermutation(b), a.count == b.count else { continue }
                combined = b.map { a[Int($0)] }
            }
            let isIdentity = combined.map { $0 == (0..<Int64($0.count)).map { $0 } } ?? true
            if isIdentity, !index.isGraphOutput(output) {
                patch.redirects[output] = x
                patch.remove(n)
            } else {
                // Two reversals that stay as a graph output need the identity spelled out, which needs the rank.
                if combined == nil {
                    guard let rank = ranks[x] else { continue }
                    combined = (0..<Int64(rank)).map { $0 }
                }
                var replacement = outer
                replacement.inputs = [x]
                replacement.attributes.removeAll { $0.name == "perm" }
                if let combined { replacement.attributes.append(Attribute("perm", .ints(combined))) }
                patch.replace(n, with: [replacement])
            }
            touched.insert(n)
            if index.consumers(of: middle).count == 1, !index.isGraphOutput(middle) {
                patch.remove(i)
                touched.insert(i)
            }
        }
        return patch.isEmpty ? nil : patch
    }

    private static func perm(_ node: Node) -> [Int64]? {
        if case .ints(let p)? = node.attribute("perm") { return p }
        return nil
    }

    private static func isPermutation(_ p: [Int64]) -> Bool {
        Set(p).count == p.count && p.allSatisfy { $0 >= 0 && $0 < Int64(p.count) }
    }
}
