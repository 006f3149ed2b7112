import OnnxcCore
public import OnnxcIR

/// Moves a zero constant Pad into the explicit pads of the Conv or AveragePool reading it.
///
/// Matches: Pad in constant mode with a zero pad value, non-negative constant pads that leave the batch and
/// channel axes alone (the `pads`/`paddings` attribute before opset 11, the constant `pads` input since; an
/// `axes` input is not handled), whose only reader is the data input of a Conv, or of an AveragePool with
/// `count_include_pad = 1` and `ceil_mode = 0` (the zeros are counted either way; with ceil_mode the last
/// window could start inside a real pad but not inside an implicit one). Produces: the conv/pool reading the
/// Pad's input with the spatial pads added to its own. Preconditions: the consumer's `auto_pad` is NOTSET;
/// the Pad output has no other reader and is not a graph output. Numerics: identical (padding zeros is what
/// the pads do). Tested by: PadIntoConvPoolTests.
public struct PadIntoConvPool: Pass {
    public let id = "fuse-pad-conv"
    public let summary = "move zero constant Pad into the pads of the following Conv/AveragePool"

    public init() {}

    public func run(on graph: Graph, context: PassContext) -> GraphPatch? {
        let index = GraphIndex(graph)
        var patch = GraphPatch()
        for (n, pad) in graph.nodes.enumerated() where pad.domain.isEmpty && pad.opType == "Pad" {
            guard let data = pad.inputs.first, !data.isEmpty, pad.outputs.count == 1, let output = pad.outputs.first,
                  let (c, slot) = FusionSupport.soleConsumer(of: output, index), slot == 0,
                  patch.replacements[n] == nil, patch.replacements[c] == nil,
                  let pads = Self.zeroConstantPads(pad, graph: graph) else { continue }
            let consumer = graph.nodes[c]
            guard consumer.domain.isEmpty, Self.accepts(consumer), pads.count % 2 == 0 else { continue }
            let rank = pads.count / 2
            guard rank >= 3, pads[0] == 0, pads[1] == 0, pads[rank] == 0, pads[rank + 1] == 0, pads.allSatisfy({ $0 >= 0 }) else { continue }
            if let declared = graph.declaredType(of: data)?.tensorType?.shape, declared.rank != rank { continue }
            let spatial = rank - 2
            let own = FusionSupport.ints(consumer, "pads") ?? [Int64](repeating: 0, count: 2 * spatial)
            guard own.count == 2 * spatial else { continue }
            var merged = own
            var overflow = false
            for i in 0..<spatial {
                let begin = merged[i].addingReportingOverflow(pads[2 + i]), end = merged[spatial + i].addingReportingOverflow(pads[rank + 2 + i])
                merged[i] = begin.partialValue
                merged[spatial + i] = end.partialValue
                overflow = overflow || begin.overflow || end.overflow
            }
            if overflow { continue }
            var fused = FusionSupport.setting("pads", .ints(merged), on: consumer)
            fused.inputs[0] = data
            patch.replace(c, with: [fused])
            patch.remove(n)
        }
        return patch.isEmpty ? nil : patch
    }

    private static func accepts(_ node: Node) -> Bool {
        if let autoPad = FusionSupport.string(node, "auto_pad"), autoPad != "NOTSET" { return false }
        switch node.opType {
        case "Conv": return true
        case "AveragePool": return FusionSupport.int(node, "count_include_pad") == 1 && (FusionSupport.int(node, "ceil_mode") ?? 0) == 0
        default: return false
        }
    }

    /// The Pad's pads when it pads with zeros in constant mode; nil otherwise.
    private static func zeroConstantPads(_ pad: Node, graph: Graph) -> [Int64]? {
        if let mode = FusionSupport.string(pad, "mode"), mode != "constant" { return nil }
        if let pads = FusionSupport.ints(pad, "pads") ?? FusionSupport.ints(pad, "paddings") {
            if case .float(let value)? = pad.attribute("value"), value != 0 { return nil }
            return pads
        }
        guard pad.inputs.count >= 2, pad.inputs.count <= 3, let tensor = FusionSupport.constant(pad.inputs[1], in: graph),
              tensor.dtype == .int64 else { return nil }
        if pad.inputs.count == 3, !pad.inputs[2].isEmpty {
            guard let value = FusionSupport.constant(pad.inputs[2], in: graph), value.data.elementCount == 1,
                  value.data.numericValue(at: 0) == 0 else { return nil }
        }
        return tensor.data.integers()
    }
}
