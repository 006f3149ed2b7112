public import OnnxcCore
public import OnnxcIR
public import OnnxcRuntime

/// How channels are scored.
public enum PruningCriterion: String, Sendable, CaseIterable {
    /// Sum of |w| over every member's slice (Torch-Pruning's MagnitudeImportance p=1).
    case l1
    /// Euclidean norm of every member's slice.
    case l2
    /// |γ| of the BatchNormalization after each layer (network slimming); groups without one fall back to L1.
    case bnScale = "bn-scale"
}

public struct PruningOptions: Sendable {
    /// Fraction of each group's channels to remove, in [0, 1).
    public var ratio: Double
    public var criterion: PruningCriterion = .l1
    /// Layers whose output channels stay (their input channels may still follow a pruned producer).
    public var excludedNodes: Set<String> = []
    /// Every pruned layer keeps at least this many channels (and always at least one).
    public var minimumChannels = 1
    /// Round each group's kept channel count up to a multiple of this (1: no rounding); vector kernels run
    /// whole blocks of 8 or 16 channels, so a 45-channel layer costs what a 48-channel one does.
    public var roundTo = 1

    public init(ratio: Double, criterion: PruningCriterion = .l1, excludedNodes: Set<String> = [], minimumChannels: Int = 1, roundTo: Int = 1) {
        self.ratio = ratio
        self.criterion = criterion
        self.excludedNodes = excludedNodes
        self.minimumChannels = minimumChannels
        self.roundTo = roundTo
    }
}

public enum PruningError: Error, Sendable, UserFacingError {
    case invalidRatio(Double)
    case invalidResult(IRError)
    case unknownNodes([String])

    public var what: String {
        switch self {
        case .invalidRatio(let r): "pruning ratio \(r) is outside [0, 1)"
        case .invalidResult(let e): "pruning produced an invalid graph: \(e.what)"
        case .unknownNodes(let names): "--exclude-nodes names no node: \(names.joined(separator: ", "))"
        }
    }

    public var location: String? {
        if case .invalidResult(let e) = self { return e.location }
        return nil
    }

    public var hint: String? {
        switch self {
        case .invalidRatio: "give the fraction of channels to remove, e.g. --ratio 0.3"
        case .invalidResult: "this is an onnxc bug; rerun with --exclude-nodes on the layers named and report the model"
        case .unknownNodes: "`onnxc dump MODEL -O 1` lists the node names pruning sees"
        }
    }
}

/// One dependency group in the report.
public struct PruningGroup: Sendable {
    /// The layers whose output channels the group removes.
    public var layers: [String]
    /// Every node whose weights or attributes change with the group (layers, consumers, BN, Concat/Split...).
    public var members: [String]
    public var channelsBefore: Int
    public var channelsAfter: Int
    /// Why some channels (or the whole group) stay.
    public var reasons: [String]
    /// Channels of the group's layers per removable unit: 1, or e.g. 48 when a unit is one attention head of
    /// a fused q/k/v projection (3 × 16 channels).
    public var blockSize = 1
    /// Parameters and FLOPs of the member nodes (a layer between two groups counts in both).
    public var parametersBefore = 0
    public var parametersAfter = 0
    public var flopsBefore = 0.0
    public var flopsAfter = 0.0
}

public struct PruningSummary: Sendable {
    public var groups: [PruningGroup] = []
    public var parametersBefore = 0
    public var parametersAfter = 0
    public var flopsBefore = 0.0
    public var flopsAfter = 0.0
    /// Layers left whole, with the reason.
    public var unpruned: [(layer: String, reason: String)] = []
    /// Consumers refitted by least squares on the calibration set.
    public var reconstructed: [String] = []
    /// Per changed layer, the positions removed from its input's channel axis (as the layer reads it: Flatten
    /// into a Gemm gives every pixel of a channel) and from its output channels, in the original numbering.
    public var removedChannels: [(layer: String, inputs: [Int], outputs: [Int])] = []

    public init() {}
}

/// Structured channel pruning of an ONNX graph: dependency groups (`ChannelDependencies`), importance, then
/// one rewrite that cuts every member's weights and the attributes that carry channel counts.
public enum ChannelPruning {
    /// Prunes `model` (canonicalized: constants as initializers, shapes inferred). With `calibration`, every
    /// layer whose input channels were cut is refitted to reproduce its original output (`Reconstruction`).
    public static func prune(_ model: Model, options: PruningOptions, calibration: [[String: Value]] = [],
                             progress: (Int, Int) -> Void = { _, _ in }) throws -> (Model, PruningSummary) {
        guard options.ratio >= 0, options.ratio < 1 else { throw PruningError.invalidRatio(options.ratio) }
        let names = Set(model.graph.nodes.map(\.name))
        let unknown = options.excludedNodes.subtracting(names).sorted()
        guard unknown.isEmpty else { throw PruningError.unknownNodes(unknown) }
        let (inferred, _) = ShapeInference.infer(model)
        var deps = ChannelDependencies.analyze(inferred.graph, excluded: options.excludedNodes)
        let selection = ChannelSelection.choose(&deps, graph: inferred.graph, options: options)
        var summary = PruningSummary()
        summary.groups = selection.groups
        summary.unpruned = deps.notes
        summary.removedChannels = removedPositions(inferred.graph, deps: deps, removed: selection.removed)
        var pruned = inferred
        pruned.graph = PrunedGraphRewrite.apply(inferred.graph, deps: deps, removed: selection.removed,
                                                opset: model.opsetVersion(for: defaultDomain) ?? 21)
        if !calibration.isEmpty, !selection.removed.isEmpty {
            let (refitted, names) = try Reconstruction.refit(original: inferred, pruned: pruned, deps: deps,
                                                             removed: selection.removed, batches: calibration, progress: progress)
            pruned = refitted
            summary.reconstructed = names
        }
        do throws(IRError) {
            try Verifier.verify(pruned)
        } catch {
            throw PruningError.invalidResult(error)
        }
        let (after, _) = ShapeInference.infer(pruned)
        (summary.parametersBefore, summary.flopsBefore) = ModelCost.of(inferred.graph)
        (summary.parametersAfter, summary.flopsAfter) = ModelCost.of(after.graph)
        let costBefore = ModelCost.perNode(inferred.graph), costAfter = ModelCost.perNode(after.graph)
        for g in summary.groups.indices {
            let members = summary.groups[g].members
            summary.groups[g].parametersBefore = members.reduce(0) { $0 + (costBefore[$1]?.parameters ?? 0) }
            summary.groups[g].parametersAfter = members.reduce(0) { $0 + (costAfter[$1]?.parameters ?? 0) }
            summary.groups[g].flopsBefore = members.reduce(0) { $0 + (costBefore[$1]?.flops ?? 0) }
            summary.groups[g].flopsAfter = members.reduce(0) { $0 + (costAfter[$1]?.flops ?? 0) }
        }
        return (pruned, summary)
    }
}

extension ChannelPruning {
    static func removedPositions(_ graph: Graph, deps: ChannelDependencies, removed: Set<Int>) -> [(layer: String, inputs: [Int], outputs: [Int])] {
        guard !removed.isEmpty else { return [] }
        func cut(_ name: String) -> [Int] { deps.positions(of: name, removed: removed)?.cut ?? [] }
        var result: [(layer: String, inputs: [Int], outputs: [Int])] = []
        let weights = Set(graph.initializers.map(\.name))
        for node in graph.nodes where ["Conv", "ConvTranspose", "Gemm", "MatMul"].contains(node.opType)
            && node.inputs.count > 1 && weights.contains(node.inputs[1]) {
            let inputs = cut(node.inputs.first ?? ""), outputs = cut(node.outputs.first ?? "")
            if inputs.isEmpty && outputs.isEmpty { continue }
            result.append((node.name.isEmpty ? node.displayName : node.name, inputs, outputs))
        }
        return result
    }
}

/// Parameters (float initializer elements) and multiply-add FLOPs (×2) of the weighted layers, from shapes;
/// symbolic dims count as 1 (the FLOPs of one sequence position for a transformer with a dynamic length).
enum ModelCost {
    static func of(_ graph: Graph) -> (parameters: Int, flops: Double) {
        let parameters = graph.initializers.filter { $0.dtype.isFloatingPoint }.reduce(0) { $0 + $1.data.elementCount }
        return (parameters, perNode(graph).values.reduce(0) { $0 + $1.flops })
    }

    /// How messages and the report name a node.
    static func name(_ node: Node) -> String { node.name.isEmpty ? node.displayName : node.name }

    /// Per node: the float constants it reads and the FLOPs of the weighted layers.
    static func perNode(_ graph: Graph) -> [String: (parameters: Int, flops: Double)] {
        let view = PruningGraphView(graph)
        var result: [String: (parameters: Int, flops: Double)] = [:]
        for node in graph.nodes {
            let parameters = node.inputs.compactMap { view.constant($0) }.filter { $0.dtype.isFloatingPoint }.reduce(0) { $0 + $1.data.elementCount }
            var flops = 0.0
            if ["Conv", "ConvTranspose", "Gemm", "MatMul"].contains(node.opType), node.inputs.count > 1,
               let w = view.dims(node.inputs[1])?.compactMap(\.fixedValue), !w.isEmpty {
                let weights = Double(w.reduce(1, *))
                switch node.opType {
                case "Conv":
                    if let out = view.dims(node.outputs[0]), out.count > 2, let spatial = ChannelRules.product(out[2...]) {
                        flops = 2 * weights * Double(spatial)
                    }
                case "ConvTranspose":
                    if let input = view.dims(node.inputs[0]), input.count > 2, let spatial = ChannelRules.product(input[2...]) {
                        flops = 2 * weights * Double(spatial)
                    }
                default:
                    if let out = view.dims(node.outputs[0]), !out.isEmpty {
                        let rows = out.dropLast().reduce(1.0) { $0 * Double($1.fixedValue ?? 1) }
                        flops = 2 * weights * rows
                    }
                }
            }
            result[name(node)] = (parameters, flops)
        }
        return result
    }
}
