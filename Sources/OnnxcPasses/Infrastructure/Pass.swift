public import OnnxcCore
public import OnnxcIR

/// Why a pass could not run (not why it found nothing to do: that is an empty patch).
public enum PassError: Error, Sendable, UserFacingError {
    case invalidResult(pass: String, IRError)
    case unknownPass(String)

    public var what: String {
        switch self {
        case .invalidResult(let pass, let error): "pass \(pass) produced an invalid graph: \(error.what)"
        case .unknownPass(let id): "there is no pass named \(id)"
        }
    }

    public var location: String? {
        if case .invalidResult(_, let error) = self { return error.location }
        return nil
    }

    public var hint: String? {
        switch self {
        case .invalidResult(let pass, _): "this is an onnxc bug; rerun with --disable-pass \(pass) and report the model"
        case .unknownPass: "run `onnxc passes` to list them"
        }
    }
}

/// Who consumes the optimized graph: that decides which ops a pass may create.
public enum OptimizationTarget: String, Sendable, CaseIterable {
    /// Standard ONNX at the model's opsets (`onnxc optimize`): ONNX Runtime and every other tool must load it.
    case onnx
    /// onnxc's own runtime (the compile path): fusions may also create `ai.onnxc` ops (`RuntimeOps`).
    case runtime
}

/// Settings every pass may read.
public struct PassOptions: Sendable {
    /// The largest tensor constant folding will create. Folding trades model size for run time, and a fold
    /// such as Tile or ConstantOfShape over a large shape can turn a few bytes of graph into gigabytes of
    /// weights; 1 MiB keeps every shape computation and small table foldable while bounding the growth of
    /// the file (tract's CONST_FOLD_MEM_BUDGET plays the same role).
    public var constantFoldingByteLimit = 1 << 20
    public var target: OptimizationTarget

    public init(constantFoldingByteLimit: Int = 1 << 20, target: OptimizationTarget = .onnx) {
        self.constantFoldingByteLimit = constantFoldingByteLimit
        self.target = target
    }
}

/// What a pass sees: the graph level it works on, what the enclosing graphs define, and the model's opsets.
public struct PassContext: Sendable {
    public let options: PassOptions
    public let opsets: [String: Int64]
    /// Values defined by enclosing graphs (non-empty inside If/Loop/Scan bodies).
    public let outerScope: Set<String>

    public func opset(for domain: String) -> Int64 { opsets[canonicalDomain(domain)] ?? 1 }

    /// Whether a fusion may create `ai.onnxc` runtime ops.
    public var allowsRuntimeOps: Bool { options.target == .runtime }
}

/// A graph transformation. It reads the graph and proposes a patch; it never mutates the graph itself — the
/// driver applies the patch, re-sorts, verifies and counts. Returning nil means "nothing to do here".
public protocol Pass: Sendable {
    /// Stable identifier used by `--disable-pass`, `dump --after` and the statistics.
    var id: String { get }
    /// One line for `onnxc passes`.
    var summary: String { get }
    func run(on graph: Graph, context: PassContext) -> GraphPatch?
}
