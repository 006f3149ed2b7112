import OnnxcCore
import OnnxcFormat

/// Runs a compiled model's plan, one run at a time: it owns the run's arena and value array, so each thread that
/// runs a model concurrently needs its own (`CompiledModel.run` keeps a pool of them).
///
/// `@unchecked Sendable`: an executor may move between threads (the model's pool hands an idle one to the next
/// caller) but is never used by two at once — the pool gives each executor to one caller at a time.
public final class CompiledExecutor: ModelRunner, @unchecked Sendable {
    let plan: ExecutionPlan
    let frame: Frame
    /// Slots for the tensors sized at run time, per set of input shapes seen.
    var shapePlans: ShapePlans
    public let graph: RuntimeGraph
    public var profile: [String: OpProfile]?
    /// Profile by node (its name and op type) instead of by op type.
    public var profilesNodes = false

    /// Outputs that ran in their planned arena slot, and outputs copied out of a slot not theirs (a view or a
    /// kernel's temporary), over this executor's runs.
    public var arenaStatistics: (inPlace: Int, copied: Int) { frame.arenaStatistics }

    /// The bytes of this executor's arena: the compiled plan's, grown for run-time sizes planned since.
    public var arenaBytes: Int { frame.arena?.storage.count ?? 0 }

    init(plan: ExecutionPlan, graph: RuntimeGraph) throws(RuntimeError) {
        self.plan = plan
        self.graph = graph
        shapePlans = plan.shapePlans
        let arena = plan.arenaBytes > 0 ? Arena(byteCount: plan.arenaBytes) : nil
        if plan.arenaBytes > 0 && arena == nil {
            throw .invalidShape("the model's arena of \(plan.arenaBytes) bytes is more than this machine's memory")
        }
        let scratch = plan.scratchBytes > 0 ? Arena(byteCount: plan.scratchBytes) : nil
        if plan.scratchBytes > 0 && scratch == nil {
            throw .invalidShape("the model's kernel workspace of \(plan.scratchBytes) bytes is more than this machine's memory")
        }
        frame = Frame(values: plan.initialValues, arena: arena, scratch: scratch, subgraphs: Executor(checked: graph, arena: nil))
    }

    public func run(_ inputs: [String: Value]) throws(RuntimeError) -> [String: Value] {
        defer {
            frame.values = plan.initialValues
            if plan.hasWindows { frame.windows = [TensorWindow?](repeating: nil, count: frame.windows.count) }
        }
        for (info, id) in plan.inputs {
            if let value = inputs[info.name] {
                try Self.check(value, against: info)
                frame.values[Int(id)] = value
            } else if frame.values[Int(id)] == nil {
                throw .missingInput("model input \(info.name) was not given")
            }
        }
        // Tensors sized at run time: slots planned for these input shapes, or a run that records their sizes.
        var recording: ShapePlans.Recording?
        var shapes: [[Int]] = []
        if shapePlans.isNeeded {
            shapes = plan.inputs.map { input in
                if case .tensor(let t)? = frame.values[Int(input.id)] { return t.shape }
                return []
            }
            if let planned = shapePlans.plan(for: shapes) {
                try install(planned)
            } else {
                frame.dynamicSlots = []
                recording = ShapePlans.Recording()
            }
        }
        for (index, step) in plan.steps.enumerated() {
            if profile == nil {
                try step.run(frame)
            } else {
                let start = ContinuousClock.now
                try step.run(frame)
                let elapsed = ContinuousClock.now - start
                let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) * 1e-18
                let key = profilesNodes ? "\(step.node.opType) \(step.node.displayName)" : step.node.opType
                profile?[key, default: OpProfile()].calls += 1
                profile?[key, default: OpProfile()].seconds += seconds
            }
            if recording != nil {
                recording?.wrote(plan.stepOutputs[index], reading: plan.stepInputs[index], at: index, frame.values,
                                 planned: shapePlans.planned)
                recording?.released(plan.release[index], at: index)
            }
            for id in plan.release[index] {
                frame.values[Int(id)] = nil
                frame.windows[Int(id)] = nil
            }
        }
        if let recording {
            shapePlans.insert(recording.plan(tensors: plan.initialValues.count, staticBytes: shapePlans.staticBytes), for: shapes)
        }
        var results: [String: Value] = [:]
        for (info, id) in plan.outputs {
            guard let value = frame.values[Int(id)] ?? frame.materialized(id) else { throw .missingInput("graph output \(info.name) was never computed") }
            results[info.name] = detached(value)
        }
        return results
    }

    /// Uses `planned`'s slots from now on, the arena grown to hold them.
    private func install(_ planned: ShapePlans.Plan) throws(RuntimeError) {
        if planned.arenaBytes > (frame.arena?.storage.count ?? 0) {
            guard let grown = Arena(byteCount: planned.arenaBytes) else {
                throw .invalidShape("an arena of \(planned.arenaBytes) bytes for these input shapes is more than this machine's memory")
            }
            frame.arena = grown
        }
        frame.dynamicSlots = planned.slots
    }

    /// Outputs outlive the run, and the next run reuses the arena: an output in it is copied out.
    private func detached(_ value: Value) -> Value {
        guard let arena = frame.arena else { return value }
        func copy(_ t: Tensor) -> Tensor {
            guard let base = t.unsafeBaseAddress, arena.contains(base) else { return t }
            return t.copiedToHeap()
        }
        switch value {
        case .tensor(let t): return .tensor(copy(t))
        case .sequence(let type, let tensors): return .sequence(elementType: type, tensors.map(copy))
        case .none: return value
        }
    }

    /// A given input against the compiled signature: the same element type, rank and fixed dims (steps planned for
    /// those sizes rely on them).
    static func check(_ value: Value, against info: RuntimeValueInfo) throws(RuntimeError) {
        guard case .tensor(let tensor) = value else { return }
        if let dtype = info.dtype, tensor.dtype != dtype {
            throw .invalidArgument("input \(info.name) is \(tensor.dtype.onnxName), but the model was compiled for \(info.shapeText)")
        }
        guard let shape = info.shape else { return }
        let matches = shape.count == tensor.rank && zip(shape, tensor.shape).allSatisfy { $0 == nil || $0 == $1 }
        if !matches {
            throw .invalidShape("input \(info.name) has shape \(tensor.shape), but the model was compiled for \(info.shapeText) — pass inputs of that shape, or recompile with --input-shape")
        }
    }
}

/// Time spent per op type when profiling (subgraph nodes included, and counted inside their parent too).
public struct OpProfile: Sendable {
    public var calls = 0
    public var seconds = 0.0
    public init() {}
}

/// What runs a model for the commands: the interpreter (`Executor`) or a compiled plan (`CompiledExecutor`).
public protocol ModelRunner: AnyObject {
    /// The graph whose signature the caller feeds (inputs, outputs, initializer defaults).
    var graph: RuntimeGraph { get }
    /// Set to an empty dictionary to collect a profile on the next runs; nil (the default) costs nothing.
    var profile: [String: OpProfile]? { get set }
    func run(_ inputs: [String: Value]) throws(RuntimeError) -> [String: Value]
}
