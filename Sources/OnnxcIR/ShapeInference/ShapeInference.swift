public import OnnxcCore

/// Static shape and type inference: the element type and shape of every value of the main graph and of
/// every subgraph, with symbolic dims propagated (`batch`, `batch*3`, `(h+1)/2`).
///
/// Each op's rule lives in a table keyed by op type, one table per op family (see `ShapeInferenceRules`),
/// so adding an op is one entry. Ops without a rule, and ops of other domains, leave their outputs as declared
/// (or unknown): that is not an error. A contradiction (Add of [2,3] and [4,3]) becomes a `Diagnostic` that
/// names the node and op; inference carries on with the outputs of that node unknown.
///
/// Results go into `graph.valueInfo` (node outputs) and refine the graph outputs' declared types. A declared
/// type is never overwritten by a less precise inferred one, and graph inputs are never changed.
public enum ShapeInference {
    public static func infer(_ model: Model) -> (Model, [Diagnostic]) {
        let engine = InferenceEngine(opset: model.opsetVersion(for: defaultDomain) ?? 21)
        if !model.functions.isEmpty, let inlined = try? FunctionInliner.inline(model) {
            // Calls to model-local functions: infer a copy with the calls inlined (the inliner keeps the calls'
            // output names), and use what it found for those outputs. Its diagnostics are not repeated.
            let helper = InferenceEngine(opset: inlined.opsetVersion(for: defaultDomain) ?? 21)
            var copy = inlined
            helper.collectTypes = true
            helper.inferGraph(&copy.graph, path: "main", parent: nil)
            engine.hints = helper.allTypes
        }
        var result = model
        let path = model.graph.name.isEmpty ? "main" : model.graph.name
        engine.inferGraph(&result.graph, path: path, parent: nil)
        return (result, engine.diagnostics)
    }

    /// The default-domain ops that have a rule, sorted.
    public static var supportedOps: [String] { ShapeInferenceRules.all.keys.filter { !$0.contains("::") }.sorted() }
}

/// A rule: the output types of one node (nil where unknown), in output order. Throwing an
/// `InferenceError` reports a contradiction.
public typealias InferenceRule = @Sendable (InferenceContext) throws -> [ValueType?]

/// A contradiction found by a rule; the engine adds the node and op to make a `Diagnostic`.
public struct InferenceError: Error, Sendable, CustomStringConvertible {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// Every op family's table, merged. A later family wins on a duplicate key (there should be none).
enum ShapeInferenceRules {
    static let all: [String: InferenceRule] = {
        var table: [String: InferenceRule] = [:]
        for family in [ElementwiseRules.table, ReductionRules.table, LinearAlgebraRules.table, ConvolutionRules.table,
                       ShapeRules.table, IndexingRules.table, RecurrentRules.table, ControlFlowRules.table,
                       QuantizationRules.table, NormalizationRules.table, SequenceAndMiscRules.table,
                       RuntimeOpRules.table] {
            table.merge(family) { _, new in new }
        }
        return table
    }()
}

/// Types and known values visible in one graph, chained to the enclosing graphs' scopes.
final class InferenceScope {
    let parent: InferenceScope?
    var types: [String: ValueType] = [:]
    var known: [String: KnownValue] = [:]

    init(parent: InferenceScope?) { self.parent = parent }

    func type(of name: String) -> ValueType? { types[name] ?? parent?.type(of: name) }
    func knownValue(of name: String) -> KnownValue? { known[name] ?? parent?.knownValue(of: name) }
}

/// What a rule sees of its node: input types and known values, attributes, the opset, and a way to infer
/// the node's subgraphs.
public final class InferenceContext {
    public let node: Node
    public let opset: Int64
    let scope: InferenceScope
    let engine: InferenceEngine
    let path: String
    /// Known values of outputs, by output index, set by rules that can compute them.
    var outputKnown: [Int: KnownValue] = [:]
    /// Subgraph attributes re-inferred by the rule, to be written back into the node.
    var inferredSubgraphs: [String: Graph] = [:]

    init(node: Node, opset: Int64, scope: InferenceScope, engine: InferenceEngine, path: String) {
        self.node = node
        self.opset = opset
        self.scope = scope
        self.engine = engine
        self.path = path
    }

    // MARK: Inputs

    public var inputCount: Int { node.inputs.count }
    public var outputCount: Int { node.outputs.count }

    /// True when input `i` is given (optional inputs may be omitted or "").
    public func hasInput(_ i: Int) -> Bool { i < node.inputs.count && !node.inputs[i].isEmpty }
    public func hasOutput(_ i: Int) -> Bool { i < node.outputs.count && !node.outputs[i].isEmpty }

    public func type(_ i: Int) -> ValueType? { hasInput(i) ? scope.type(of: node.inputs[i]) : nil }
    public func tensor(_ i: Int) -> TensorType? { type(i)?.tensorType }
    /// The input's element type; `.undefined` counts as unknown.
    public func dtype(_ i: Int) -> DType? { tensor(i).flatMap { $0.elementType == .undefined ? nil : $0.elementType } }
    public func shape(_ i: Int) -> Shape? { tensor(i)?.shape }
    public func rank(_ i: Int) -> Int? { shape(i)?.rank }
    public func known(_ i: Int) -> KnownValue? { hasInput(i) ? scope.knownValue(of: node.inputs[i]) : nil }

    /// The input's shape, or an error naming it when its rank must be at least `minimumRank`.
    public func requireRank(_ i: Int, atLeast minimumRank: Int) throws -> Shape? {
        guard let s = shape(i) else { return nil }
        if s.rank < minimumRank {
            throw InferenceError("input \(i) (\(node.inputs[i])) has rank \(s.rank), but \(node.opType) needs at least \(minimumRank)")
        }
        return s
    }

    // MARK: Attributes

    public func int(_ name: String) -> Int64? {
        if case .int(let v)? = node.attribute(name) { return v }
        return nil
    }
    public func int(_ name: String, default value: Int64) -> Int64 { int(name) ?? value }
    public func ints(_ name: String) -> [Int64]? {
        if case .ints(let v)? = node.attribute(name) { return v }
        return nil
    }
    public func float(_ name: String) -> Float? {
        if case .float(let v)? = node.attribute(name) { return v }
        return nil
    }
    public func floats(_ name: String) -> [Float]? {
        if case .floats(let v)? = node.attribute(name) { return v }
        return nil
    }
    public func string(_ name: String) -> String? {
        if case .string(let v)? = node.attribute(name) { return String(decoding: v, as: UTF8.self) }
        return nil
    }
    public func graph(_ name: String) -> Graph? {
        if case .graph(let g)? = node.attribute(name) { return g }
        return nil
    }

    /// An axis attribute or value normalized into `0..<rank`, or an error.
    public func axis(_ value: Int64, rank: Int, what: String = "axis") throws -> Int {
        let r = Int64(rank)
        guard value >= -r, value < r, let normalized = Int(exactly: value < 0 ? value + r : value) else {
            throw InferenceError("\(what) \(value) is out of range for rank \(rank)")
        }
        return normalized
    }

    // MARK: Outputs

    public func setKnown(_ output: Int, _ value: KnownValue) {
        guard value.count <= KnownValue.maximumElements else { return }
        outputKnown[output] = value
    }

    /// A fresh symbol for a data-dependent dim (NonZero's count, a Loop's trip count), unique in the model.
    public func newSymbol(_ hint: String) -> Dim { engine.newSymbol(hint) }

    /// Infers subgraph attribute `name` with its inputs typed `inputTypes` (merged with what the body declares),
    /// records the result in the node, and returns the body's output types.
    public func inferSubgraph(_ name: String, inputTypes: [ValueType?]) -> [ValueType?]? {
        guard var body = graph(name) else { return nil }
        return inferSubgraph(&body, attribute: name, inputTypes: inputTypes)
    }

    func inferSubgraph(_ body: inout Graph, attribute name: String, inputTypes: [ValueType?]) -> [ValueType?] {
        var provided: [String: ValueType] = [:]
        for (info, type) in zip(body.inputs, inputTypes) {
            if let type { provided[info.name] = type }
        }
        let subPath = "\(path)/\(node.displayName).\(name)"
        let outputs = engine.inferGraph(&body, path: subPath, parent: scope, providedInputs: provided)
        inferredSubgraphs[name] = body
        return outputs
    }
}

/// Walks graphs in node order, runs rules, merges with declared types and records the results.
final class InferenceEngine {
    let opset: Int64
    var diagnostics: [Diagnostic] = []
    private var symbolCounts: [String: Int] = [:]
    /// Types for outputs of nodes without a rule (function calls), found on an inlined copy of the model.
    var hints: [String: ValueType] = [:]
    /// When set, every inferred value's type is also kept in `allTypes`.
    var collectTypes = false
    var allTypes: [String: ValueType] = [:]

    init(opset: Int64) { self.opset = opset }

    func newSymbol(_ hint: String) -> Dim {
        let count = (symbolCounts[hint] ?? 0) + 1
        symbolCounts[hint] = count
        return .symbolic("\(hint)_\(count)")
    }

    /// Infers `graph` in place and returns the types of its outputs. `providedInputs` are types the enclosing
    /// node knows for the body's inputs; they refine, never contradict, what the body declares.
    @discardableResult
    func inferGraph(_ graph: inout Graph, path: String, parent: InferenceScope?,
                    providedInputs: [String: ValueType] = [:]) -> [ValueType?] {
        let scope = InferenceScope(parent: parent)
        let initializers = Dictionary(graph.initializers.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
        for tensor in graph.initializers {
            scope.types[tensor.name] = ValueType(.tensor(tensor.type))
            // Heuristic: an initializer is treated as a constant even when it is also listed as an input
            // (IR < 4 models list every weight as an input); onnx's own inference does the same.
            if let value = KnownValue(tensor: tensor.data) { scope.known[tensor.name] = value }
        }
        for sparse in graph.sparseInitializers {
            // A sparse initializer is used as the dense tensor it describes.
            scope.types[sparse.name] = .tensor(sparse.values.dtype, Shape(fixed: sparse.dims))
        }
        for input in graph.inputs {
            let declared = input.type
            let provided = providedInputs[input.name]
            var type = declared ?? provided
            if let declared, let provided {
                // A body's declared input type wins over what the caller provides; the caller only fills gaps.
                type = TypeMerge.refine(declared: declared, inferred: provided).type
            }
            if initializers[input.name] != nil, declared == nil { continue }
            if let type { scope.types[input.name] = type }
        }
        var declared: [String: ValueType] = [:]
        for info in graph.valueInfo { if let t = info.type { declared[info.name] = t } }
        for info in graph.outputs { if let t = info.type { declared[info.name] = t } }

        var inferredOutputs: [String: ValueType] = [:]
        for index in graph.nodes.indices {
            let node = graph.nodes[index]
            let context = InferenceContext(node: node, opset: opset, scope: scope, engine: self, path: path)
            var results: [ValueType?] = []
            let domain = canonicalDomain(node.domain)
            let key = domain == defaultDomain ? node.opType : domain + "::" + node.opType
            if domain == defaultDomain || domain == RuntimeOps.domain, let rule = ShapeInferenceRules.all[key] {
                do {
                    results = try rule(context)
                } catch let error as InferenceError {
                    report(path: path, node: node, message: error.message)
                    results = []
                    context.outputKnown = [:]
                } catch {
                    report(path: path, node: node, message: "\(error)")
                    results = []
                    context.outputKnown = [:]
                }
            }
            // Subgraphs the rule did not visit are still inferred, so their values get types too.
            var updated = node
            for (a, attribute) in node.attributes.enumerated() where attribute.referencedAttribute == nil {
                switch attribute.value {
                case .graph(var body):
                    if let done = context.inferredSubgraphs[attribute.name] {
                        body = done
                    } else {
                        inferGraph(&body, path: "\(path)/\(node.displayName).\(attribute.name)", parent: scope)
                    }
                    updated.attributes[a].value = .graph(body)
                case .graphs(var bodies):
                    for i in bodies.indices {
                        inferGraph(&bodies[i], path: "\(path)/\(node.displayName).\(attribute.name)[\(i)]", parent: scope)
                    }
                    updated.attributes[a].value = .graphs(bodies)
                default: break
                }
            }
            graph.nodes[index] = updated

            for (o, name) in node.outputs.enumerated() where !name.isEmpty {
                let inferred = o < results.count ? results[o] : hints[name]
                let merge = TypeMerge.refine(declared: declared[name], inferred: inferred)
                if let conflict = merge.conflict {
                    report(path: path, node: node, value: name, message: conflict)
                }
                if let type = merge.type {
                    scope.types[name] = type
                    inferredOutputs[name] = type
                    if collectTypes { allTypes[name] = type }
                }
                if let value = context.outputKnown[o] { scope.known[name] = value }
            }
        }
        record(inferredOutputs, in: &graph)
        return graph.outputs.map { scope.type(of: $0.name) ?? $0.type }
    }

    /// Writes node output types: graph outputs get their declared type refined, the others go to value_info.
    private func record(_ types: [String: ValueType], in graph: inout Graph) {
        var recorded = Set<String>()
        for i in graph.outputs.indices {
            if let type = types[graph.outputs[i].name] {
                graph.outputs[i].type = type
                recorded.insert(graph.outputs[i].name)
            }
        }
        for i in graph.valueInfo.indices {
            let name = graph.valueInfo[i].name
            if let type = types[name], !recorded.contains(name) {
                graph.valueInfo[i].type = type
                recorded.insert(name)
            }
        }
        for node in graph.nodes {
            for name in node.outputs where !name.isEmpty && !recorded.contains(name) {
                if let type = types[name] {
                    graph.valueInfo.append(ValueInfo(name: name, type: type))
                    recorded.insert(name)
                }
            }
        }
    }

    private func report(path: String, node: Node, value: String? = nil, message: String) {
        diagnostics.append(Diagnostic(graphPath: path, node: node.displayName, opType: node.qualifiedOpType,
                                      value: value, message: message))
    }
}

/// Combining a declared and an inferred type: the more precise wins per dim, and a disagreement between two
/// known facts is a conflict (the declared type is kept and the conflict reported).
enum TypeMerge {
    static func refine(declared: ValueType?, inferred: ValueType?) -> (type: ValueType?, conflict: String?) {
        guard let declared else { return (inferred, nil) }
        guard let inferred else { return (declared, nil) }
        guard case .tensor(let d) = declared.kind else {
            if case .unspecified = declared.kind { return (inferred, nil) }
            return (declared, nil)
        }
        guard case .tensor(let i) = inferred.kind else { return (declared, nil) }
        var result = d
        if d.elementType == .undefined {
            result.elementType = i.elementType
        } else if i.elementType != .undefined, i.elementType != d.elementType {
            return (declared, "declared element type \(d.elementType.onnxName) contradicts inferred \(i.elementType.onnxName)")
        }
        guard let ds = d.shape else {
            result.shape = i.shape
            return (ValueType(.tensor(result), denotation: declared.denotation), nil)
        }
        guard let ishape = i.shape else { return (ValueType(.tensor(result), denotation: declared.denotation), nil) }
        guard ds.rank == ishape.rank else {
            return (declared, "declared shape \(ds) contradicts inferred shape \(ishape) (rank)")
        }
        var dims = ds.dims
        for k in dims.indices {
            switch (ds.dims[k], ishape.dims[k]) {
            case (.fixed(let a), .fixed(let b)) where a != b:
                return (declared, "declared shape \(ds) contradicts inferred shape \(ishape)")
            case (.symbolic, .fixed(let b)): dims[k] = .fixed(b)
            case (.unknown, let other): dims[k] = other
            default: break
            }
        }
        result.shape = Shape(dims)
        return (ValueType(.tensor(result), denotation: declared.denotation), nil)
    }
}

/// Helpers the op families share.
enum InferenceSupport {
    /// Multidirectional (numpy) broadcasting. Heuristic for symbols: a symbolic dim against a fixed dim
    /// other than 1 takes the fixed size (the model is assumed valid); two different symbols give unknown,
    /// since either may be 1 at run time.
    static func broadcast(_ shapes: [Shape]) throws -> Shape {
        let rank = shapes.map(\.rank).max() ?? 0
        var dims = [Dim](repeating: .fixed(1), count: rank)
        for shape in shapes {
            let offset = rank - shape.rank
            for (k, dim) in shape.dims.enumerated() {
                dims[offset + k] = try broadcast(dims[offset + k], dim)
            }
        }
        return Shape(dims)
    }

    static func broadcast(_ a: Dim, _ b: Dim) throws -> Dim {
        switch (a, b) {
        case (.fixed(1), _): return b
        case (_, .fixed(1)): return a
        case (.fixed(let x), .fixed(let y)):
            if x != y { throw InferenceError("cannot broadcast dims \(x) and \(y)") }
            return a
        case (.fixed, _): return a
        case (_, .fixed): return b
        case (.symbolic(let x), .symbolic(let y)): return x == y ? a : .unknown
        default: return .unknown
        }
    }

    /// Broadcasts the shapes of inputs `indices`; nil when any rank is unknown.
    static func broadcastInputs(_ ctx: InferenceContext, _ indices: some Sequence<Int>) throws -> Shape? {
        var shapes: [Shape] = []
        for i in indices where ctx.hasInput(i) {
            guard let s = ctx.shape(i) else { return nil }
            shapes.append(s)
        }
        do {
            return try broadcast(shapes)
        } catch let error as InferenceError {
            throw InferenceError("\(error.message): shapes \(shapes.map(\.description).joined(separator: " and ")) are not broadcastable")
        }
    }

    /// Two dims that must be equal: a fixed one wins over a symbol, a symbol over unknown; two different fixed
    /// sizes are a contradiction. Two different symbols keep the first (they are equal at run time).
    static func unify(_ a: Dim, _ b: Dim, _ what: @autoclosure () -> String) throws -> Dim {
        switch (a, b) {
        case (.fixed(let x), .fixed(let y)):
            if x != y { throw InferenceError("\(what()): \(x) vs \(y)") }
            return a
        case (.fixed, _): return a
        case (_, .fixed): return b
        case (.unknown, _): return b
        default: return a
        }
    }

    static func tensor(_ dtype: DType?, _ shape: Shape?) -> ValueType? {
        if dtype == nil && shape == nil { return nil }
        return .tensor(dtype ?? .undefined, shape)
    }

    /// Normalizes a list of axes against `rank`, rejecting out-of-range and repeated ones.
    static func axes(_ values: [Int64], rank: Int, _ ctx: InferenceContext) throws -> [Int] {
        var result: [Int] = []
        for v in values {
            let a = try ctx.axis(v, rank: rank, what: "axis")
            if result.contains(a) { throw InferenceError("axis \(v) is repeated") }
            result.append(a)
        }
        return result
    }
}
