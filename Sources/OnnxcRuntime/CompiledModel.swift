public import OnnxcCore
internal import CKernels
public import OnnxcFormat
import Synchronization

/// A compiled program ready to run: loaded once, immutable, and shareable across threads. Its plan — kernels
/// chosen, attributes decoded, tensors numbered — is built at load; each run uses an executor of its own (its arena
/// and values), so concurrent runs do not interfere. Constants are used in place (a mapped `.oxc` file's pages),
/// never copied.
public final class CompiledModel: Sendable {
    public let program: Program
    let graph: RuntimeGraph
    let plan: ExecutionPlan
    /// Executors of finished runs, reused by the next `run` so that repeated calls do not allocate and fault in a
    /// new arena each time.
    private let idle = Mutex<[CompiledExecutor]>([])

    public convenience init(program: Program) throws(RuntimeError) {
        let (graph, plan) = try ExecutionPlan.build(program)
        self.init(program: program, graph: graph, plan: plan)
    }

    private init(program: Program, graph: RuntimeGraph, plan: ExecutionPlan) {
        self.program = program
        self.graph = graph
        self.plan = plan
    }

    /// Why a `.oxc` file did not load: the file itself (unreadable, malformed, corrupted), or a program this
    /// runtime cannot run.
    public enum LoadError: Error, Sendable, UserFacingError {
        case file(FormatError)
        case program(RuntimeError)

        private var underlying: any UserFacingError {
            switch self {
            case .file(let error): error
            case .program(let error): error
            }
        }

        public var what: String { underlying.what }
        public var location: String? { underlying.location }
        public var hint: String? { underlying.hint }
    }

    /// Maps and loads a `.oxc` file. The weights' checksum runs on other threads while the plan is built; the
    /// model is returned only once it has passed, and a corrupted file is reported as such even when the plan
    /// failed first on its garbage.
    public convenience init(contentsOf path: String) throws(LoadError) {
        let opened: (program: Program, check: ConstantsCheck)
        do { opened = try OXCReader.open(path: path) } catch { throw .file(error) }
        let built = Result { () throws(RuntimeError) in try ExecutionPlan.build(opened.program) }
        do { try opened.check.verify() } catch { throw .file(error) }
        switch built {
        case .success(let (graph, plan)): self.init(program: opened.program, graph: graph, plan: plan)
        case .failure(let error): throw .program(error)
        }
    }

    /// Prepares for the first run: an executor (arena mapped) for `run` to take, and the kernels' workers started.
    /// The arena's pages are still untouched: a fresh process's first run pays their first writes (see
    /// docs/benchmarks.md, "Where a fresh process's first run goes").
    public func prepare() throws(RuntimeError) {
        let executor = try makeExecutor()
        idle.withLock { $0.append(executor) }
        Parallelism.warmUp()
    }

    /// The main graph's inputs and outputs, as the caller must feed and will receive them.
    public var inputs: [RuntimeValueInfo] { graph.inputs }
    public var outputs: [RuntimeValueInfo] { graph.outputs }

    /// Runs once, on an idle executor of this model or a new one (concurrent calls each get their own).
    public func run(_ inputs: [String: Value]) throws(RuntimeError) -> [String: Value] {
        let executor: CompiledExecutor
        if let reused = idle.withLock({ $0.popLast() }) {
            executor = reused
        } else {
            executor = try makeExecutor()
        }
        defer { idle.withLock { $0.append(executor) } }
        return try executor.run(inputs)
    }

    /// An executor with its own arena, for callers that repeat runs (one thread at a time per executor).
    public func makeExecutor() throws(RuntimeError) -> CompiledExecutor {
        try CompiledExecutor(plan: plan, graph: graph)
    }
}

/// Rebuilds the runtime's graph objects from a program: names from the tensor table, attributes decoded once,
/// constants borrowed from the program's bytes.
struct ProgramLoader {
    let program: Program

    func name(_ id: TensorID) -> String {
        id == Program.omitted || Int(id) >= program.tensors.count ? "" : program.tensors[Int(id)].name
    }

    func info(_ id: TensorID) -> RuntimeValueInfo {
        guard id >= 0, Int(id) < program.tensors.count else { return RuntimeValueInfo(name: "", dtype: nil, shape: nil, shapeText: "?") }
        let tensor = program.tensors[Int(id)]
        let dtype: DType? = tensor.dtype == .undefined ? nil : tensor.dtype
        let shape = tensor.shape.map { $0.dims.map { $0.fixedValue.map { Int($0) } } }
        let text = dtype.map { "\($0.onnxName)\(tensor.shape.map { "\($0)" } ?? "")" } ?? "?"
        return RuntimeValueInfo(name: tensor.name, dtype: dtype, shape: shape, shapeText: text)
    }

    func graph(_ index: Int) throws(RuntimeError) -> RuntimeGraph {
        guard program.graphs.indices.contains(index) else { throw .invalidArgument("the program has no graph \(index)") }
        let source = program.graphs[index]
        var initializers: [String: Tensor] = [:]
        // Every constant is bound in the main graph's scope, which subgraphs see: value names are unique across
        // a model and its subgraphs (ONNX's SSA rule), so no subgraph constant can hide an outer value.
        if index == 0 {
            for tensor in program.tensors {
                guard case .constant(let data, let layout) = tensor.storage else { continue }
                initializers[tensor.name] = try constant(data, layout: layout, name: tensor.name, declared: tensor.shape)
            }
        }
        var nodes: [RuntimeNode] = []
        nodes.reserveCapacity(source.ops.count)
        for op in source.ops {
            var attributes: [String: AttributeValue] = [:]
            for attribute in op.attributes { attributes[attribute.name] = try convert(attribute.value) }
            nodes.append(RuntimeNode(name: op.name, opType: op.opcode.opType, domain: op.opcode.domain, opset: Int(op.opset),
                                     inputs: op.inputs.map(name), outputs: op.outputs.map(name), attributes: Attributes(attributes)))
        }
        return RuntimeGraph(name: source.name, inputs: source.inputs.map(info), outputs: source.outputs.map(info),
                            initializers: initializers, nodes: nodes)
    }

    /// A constant in place; prepacked weights are checked against this runtime's kernel before use.
    func constant(_ data: TensorData, layout: ConstantLayout, name: String, declared: Shape? = nil) throws(RuntimeError) -> Tensor {
        let declaredShape = declared?.fixedDims.map { $0.map { Int(clamping: $0) } }
        switch layout {
        case .plain:
            return try Tensor(borrowing: data)
        case .packed(ConstantLayoutCode.packedConvWeights, let p) where p.count == 5:
            let shape = p.prefix(4).map { Int(clamping: $0) }
            guard p[4] == Int64(PrepackedWeights.panelRows), shape.allSatisfy({ $0 > 0 }),
                  let columns = CheckedSize.elementCount(p[1...3]),
                  PrepackedWeights.packedConvolutionBytes(rows: shape[0], columns: columns) == data.byteCount else {
                throw .invalidArgument("constant \(name) was packed for another kernel (panel rows \(p[4]), this runtime \(PrepackedWeights.panelRows)); recompile the model with this onnxc")
            }
            return try Tensor(packed: data, shape: shape, packing: .gemmA(rows: shape[0], columns: columns))
        case .packed(ConstantLayoutCode.packedNHWCConvWeights, let p) where p.count == 6:
            let dims = p.prefix(4).map { Int(clamping: $0) }, groups = Int(clamping: p[4])
            guard p[5] == Int64(PrepackedWeights.channelsLastPanelWidth),
                  let floats = PrepackedWeights.nhwcPackedFloats(dims: dims, groups: groups, depthwise: false),
                  floats * 4 == data.byteCount else {
                throw .invalidArgument("constant \(name) was packed for another kernel (panel width \(p[5]), this runtime \(PrepackedWeights.channelsLastPanelWidth)); recompile the model with this onnxc")
            }
            return try Tensor(packed: data, shape: dims, packing: .nhwcConvolution(groups: groups))
        case .packed(ConstantLayoutCode.packedNHWCDepthwiseWeights, let p) where p.count == 5:
            let dims = p.prefix(4).map { Int(clamping: $0) }
            guard p[4] == Int64(PrepackedWeights.channelsLastPanelWidth), dims[1] == 1,
                  let floats = PrepackedWeights.nhwcPackedFloats(dims: dims, groups: dims[0], depthwise: true),
                  floats * 4 == data.byteCount else {
                throw .invalidArgument("constant \(name) was packed for another kernel (channel block \(p[4]), this runtime \(PrepackedWeights.channelsLastPanelWidth)); recompile the model with this onnxc")
            }
            return try Tensor(packed: data, shape: dims, packing: .nhwcDepthwise)
        case .packed(ConstantLayoutCode.packedGEMMBPanels, let p) where p.count == 3:
            // Parameters [k, n, nr]; the logical shape comes from the constant's declared dims, which the reader kept.
            let k = Int(clamping: p[0]), n = Int(clamping: p[1])
            guard p[2] == Int64(PrepackedWeights.panelColumns), let bytes = PrepackedWeights.packedGemmBytes(k: k, n: n), bytes == data.byteCount else {
                throw .invalidArgument("constant \(name) was packed for another kernel (panel width \(p[2]), this runtime \(PrepackedWeights.panelColumns)); recompile the model with this onnxc")
            }
            guard let shape = declaredShape, shape.count == 2, shape.reduce(1, *) == k * n else {
                throw .invalidArgument("constant \(name): packed GEMM weights of \(k) × \(n) need a 2-D declared shape; recompile the model")
            }
            return try Tensor(packed: data, shape: shape, packing: .gemmB(k: k, n: n))
        case .packed(ConstantLayoutCode.packedQuantizedNHWCWeights, let p) where p.count == 5,
             .packed(ConstantLayoutCode.packedQuantizedDepthwiseWeights, let p) where p.count == 4:
            let dims = p.prefix(4).map { Int(clamping: $0) }
            let depthwise = p.count == 4
            let groups = depthwise ? dims[0] : Int(clamping: p[4])
            guard let bytes = QuantizedConvolution.packedBytes(dims: dims, groups: groups, depthwise: depthwise), bytes == data.byteCount else {
                throw .invalidArgument("constant \(name) was packed for another integer kernel (\(data.byteCount) bytes for \(dims)); recompile the model with this onnxc")
            }
            return try Tensor(packed: data, shape: dims, packing: depthwise ? .quantizedDepthwise : .quantizedNHWC(groups: groups))
        case .packed(ConstantLayoutCode.halfPrecision, let p) where !p.isEmpty:
            // Widened once at load into memory the model owns; the inner layout then applies as stored.
            guard data.dtype == .float16, case .bytes(let slice) = data.payload, let bytes = CheckedSize.multiply(data.elementCount, 4) else {
                throw .invalidArgument("constant \(name): float16 storage must hold float16 values")
            }
            let wide = ByteStorage(count: bytes) { out in
                guard let target = out.baseAddress?.assumingMemoryBound(to: Float.self) else { return }
                slice.withUnsafeBytes { raw in
                    guard let source = raw.baseAddress?.assumingMemoryBound(to: UInt16.self) else { return }
                    ck_half_to_float(data.elementCount, source, target)
                }
            }
            let widened: TensorData
            do {
                widened = try TensorData(dtype: .float, dims: data.dims, payload: .bytes(ByteSlice(wide)))
            } catch {
                throw .invalidArgument("constant \(name): \(error)")
            }
            let inner: ConstantLayout = p[0] == Int64(ConstantLayoutCode.plain) ? .plain : .packed(code: UInt32(clamping: p[0]), parameters: Array(p.dropFirst()))
            return try constant(widened, layout: inner, name: name, declared: declared)
        case .packed(let code, _):
            throw .invalidArgument("constant \(name) uses packed layout \(code), which this runtime does not read; recompile the model with this onnxc")
        }
    }

    func convert(_ value: ProgramAttributeValue) throws(RuntimeError) -> AttributeValue {
        switch value {
        case .float(let v): return .float(v)
        case .int(let v): return .int(v)
        case .string(let v): return .string(v)
        case .tensor(let t): return .tensor(try Tensor(borrowing: t))
        case .graph(let g): return .graph(try graph(g))
        case .floats(let v): return .floats(v)
        case .ints(let v): return .ints(v)
        case .strings(let v): return .strings(v)
        case .tensors(let v):
            var out: [Tensor] = []
            for t in v { out.append(try Tensor(borrowing: t)) }
            return .tensors(out)
        case .graphs(let v):
            var out: [RuntimeGraph] = []
            for g in v { out.append(try graph(g)) }
            return .graphs(out)
        case .type(let t):
            switch t {
            case .tensor(let d)?: return .type(.tensor(d))
            case .sequence(let d)?: return .type(.sequence(d))
            case nil: return .type(nil)
            }
        }
    }
}
