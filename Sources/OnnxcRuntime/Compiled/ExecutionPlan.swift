import OnnxcCore
import OnnxcFormat

/// A compiled program's main graph as the executor runs it: one step per op with its kernel chosen (a
/// specialized step where one exists, the registered kernel otherwise), every tensor an index into the run's
/// value array, constants bound once, and after each step the values that no later step reads. Built once per
/// loaded model and shared by all its executors.
struct ExecutionPlan: Sendable {
    let steps: [any Step]
    /// After step i, these values are dropped (their last reader has run; arena memory is reused by the plan).
    let release: [[TensorID]]
    let inputs: [(info: RuntimeValueInfo, id: TensorID)]
    let outputs: [(info: RuntimeValueInfo, id: TensorID)]
    /// The value array a run starts from: constants bound, everything else empty.
    let initialValues: [Value?]
    let arenaBytes: Int
    /// The largest workspace a step needs (each executor allocates one, shared by its steps in turn).
    let scratchBytes: Int
    /// Each step's input and output ids (for planning the tensors sized at run time).
    let stepInputs: [[TensorID]]
    let stepOutputs: [[TensorID]]
    /// The tensors sized at run time, empty of plans; each executor keeps its own copy.
    let shapePlans: ShapePlans
    /// Whether any tensor is a window of another's slot (a run then clears the frame's windows at its end).
    let hasWindows: Bool

    init(program: Program, graph: RuntimeGraph) throws(RuntimeError) {
        let main = program.graphs[0]
        guard main.ops.count == graph.nodes.count else { throw .invalidArgument("internal: the program and its runtime graph disagree") }
        try Self.checkKernels(graph)
        var ids: [String: TensorID] = [:]
        for (i, tensor) in program.tensors.enumerated() where !tensor.name.isEmpty { ids[tensor.name] = TensorID(i) }
        var initial = [Value?](repeating: nil, count: program.tensors.count)
        for (i, tensor) in program.tensors.enumerated() {
            if case .constant = tensor.storage, let value = graph.initializers[tensor.name] { initial[i] = .tensor(value) }
        }
        func slot(_ id: TensorID) -> ArenaSlot? {
            guard id >= 0, case .arena(let offset, let bytes) = program.tensors[Int(id)].storage else { return nil }
            return ArenaSlot(offset: offset, byteCount: bytes)
        }
        func window(_ id: TensorID) -> WindowSlot? {
            guard id >= 0, case .window(let offset, let rowStride) = program.tensors[Int(id)].storage,
                  let dims = program.tensors[Int(id)].shape?.fixedDims else { return nil }
            return WindowSlot(offset: offset, rowStride: rowStride, shape: dims.map { Int($0) })
        }
        var steps: [any Step] = []
        // Per tensor id (the reader checked every id against the table), arrays rather than a dictionary and a set:
        // each new Hashable key type costs a fresh process a scan of every conformance record.
        var lastUse = [Int](repeating: -1, count: program.tensors.count)
        for (index, (op, node)) in zip(main.ops, graph.nodes).enumerated() {
            var captures: [(name: String, id: TensorID)] = []
            for name in Set(node.attributes.values.values.flatMap(Self.subgraphReads)) {
                if let id = ids[name] { captures.append((name, id)) }
            }
            for id in op.inputs where id >= 0 { lastUse[Int(id)] = index }
            for capture in captures { lastUse[Int(capture.id)] = index }
            let setup = StepSetup(node: node, inputs: op.inputs, outputs: op.outputs, program: program, initial: initial, slot: slot, window: window)
            if captures.isEmpty, let step = try StepFactories.make(setup) {
                steps.append(step)
                continue
            }
            guard let kernel = KernelRegistry.kernel(domain: node.domain, opType: node.opType) else {
                throw .unsupportedOps([RuntimeError.UnsupportedOp(domain: node.domain, opType: node.opType, opset: node.opset, nodes: [node.displayName])])
            }
            steps.append(GenericStep(node: node, kernel: kernel, inputs: op.inputs, outputs: op.outputs,
                                     slots: op.outputs.map(slot), captures: captures))
        }
        var kept = [Bool](repeating: false, count: program.tensors.count)
        for id in main.outputs where id >= 0 { kept[Int(id)] = true }
        var release = [[TensorID]](repeating: [], count: steps.count)
        for (index, op) in main.ops.enumerated() {
            for id in op.outputs where id >= 0 && lastUse[Int(id)] < 0 && !kept[Int(id)] { release[index].append(id) }
        }
        for (id, index) in lastUse.enumerated() where index >= 0 && initial[id] == nil && !kept[id] {
            release[index].append(TensorID(id))
        }
        self.steps = steps
        self.release = release
        let loader = ProgramLoader(program: program)
        inputs = main.inputs.map { (loader.info($0), $0) }
        outputs = main.outputs.map { (loader.info($0), $0) }
        initialValues = initial
        arenaBytes = program.arenaBytes
        scratchBytes = steps.reduce(0) { max($0, $1.scratchBytes) }
        stepInputs = main.ops.map(\.inputs)
        stepOutputs = main.ops.map(\.outputs)
        shapePlans = ShapePlans(program: program, outputs: main.outputs)
        hasWindows = program.tensors.contains { if case .window = $0.storage { true } else { false } }
    }

    /// Every name a subgraph attribute (and its nested subgraphs) reads; a superset of its outer-scope captures.
    static func subgraphReads(_ value: AttributeValue) -> [String] {
        switch value {
        case .graph(let g): return Executor.capturedNames(g)
        case .graphs(let gs): return gs.flatMap(Executor.capturedNames)
        default: return []
        }
    }
}

/// What a step factory sees: the node, its tensor ids, the program's static types, the constants and the slots.
struct StepSetup {
    let node: RuntimeNode
    let inputs: [TensorID]
    let outputs: [TensorID]
    let program: Program
    let initial: [Value?]
    let slot: (TensorID) -> ArenaSlot?
    let window: (TensorID) -> WindowSlot?

    /// The constant bound to input `i`, if that input is a constant.
    func constant(_ i: Int) -> Tensor? {
        guard i < inputs.count, inputs[i] >= 0, case .tensor(let t)? = initial[Int(inputs[i])] else { return nil }
        return t
    }

    func input(_ i: Int) -> TensorID { i < inputs.count ? inputs[i] : Program.omitted }
    func output(_ i: Int) -> TensorID { i < outputs.count ? outputs[i] : Program.omitted }

    /// The compile-time shape of a tensor when every dim is a number.
    func staticShape(_ id: TensorID) -> [Int]? {
        guard id >= 0, let shape = program.tensors[Int(id)].shape, let dims = shape.fixedDims else { return nil }
        return dims.map { Int($0) }
    }

    func dtype(_ id: TensorID) -> DType? { id >= 0 ? program.tensors[Int(id)].dtype : nil }

    /// Whether any input or output of the op is a window (`TensorWindow`): the steps that exist only to read or
    /// write windows (Concat, Split, the elementwise ops) leave every other node to the registered kernel.
    var touchesWindows: Bool { (inputs + outputs).contains { window($0) != nil } }
}

/// Specialized steps by (domain, op type). A factory returns nil when its fast path does not apply to this node
/// (another dtype, a non-constant weight), and the generic step runs instead.
extension ExecutionPlan {
    /// The runtime graph and plan of a program's main graph (the plan first checks the kernels: all missing ones in
    /// one error).
    static func build(_ program: Program) throws(RuntimeError) -> (RuntimeGraph, ExecutionPlan) {
        let graph = try ProgramLoader(program: program).graph(0)
        return (graph, try ExecutionPlan(program: program, graph: graph))
    }

    /// Every op has a kernel, in the main graph and every subgraph, or one error lists all missing ones. An op with
    /// a step factory needs no registry look-up (every such op also has a registered kernel to fall back on), so a
    /// model whose ops all have steps never builds the kernel registry: ~0.2 ms of a fresh process's load.
    static func checkKernels(_ graph: RuntimeGraph) throws(RuntimeError) {
        let needsRegistry = graph.nodes.contains { node in
            StepFactories.table[KernelRegistry.key(node.domain, node.opType)] == nil
                || node.attributes.values.values.contains { if case .graph = $0 { true } else if case .graphs = $0 { true } else { false } }
        }
        if needsRegistry { try Executor.checkSupported(graph) }
    }
}

enum StepFactories {
    typealias Factory = @Sendable (StepSetup) throws(RuntimeError) -> (any Step)?

    static let table: [String: Factory] = {
        var table: [String: Factory] = [:]
        for family in [ChannelsLastSteps.factories, LayoutSteps.factories, LinearSteps.factories, NormalizationSteps.factories, QuantizedSteps.factories,
                       RecurrentSteps.factories, WindowSteps.factories] {
            table.merge(family) { first, _ in first }
        }
        return table
    }()

    static func make(_ setup: StepSetup) throws(RuntimeError) -> (any Step)? {
        guard let factory = table[KernelRegistry.key(setup.node.domain, setup.node.opType)] else { return nil }
        return try factory(setup)
    }
}
