public import OnnxcCore
public import OnnxcFormat
public import OnnxcIR
import OnnxcLowering
import OnnxcRuntime

/// Why a model cannot be compiled into a program.
public enum EmitError: Error, Sendable, UserFacingError {
    /// Every operator without an opcode, with its nodes (all at once, not the first one found).
    case unsupportedOps([(op: String, nodes: [String])])
    case invalidConstant(tensor: String, reason: String)

    public var what: String {
        switch self {
        case .unsupportedOps(let ops):
            "the model uses operators onnxc cannot compile: "
                + ops.map { "\($0.op) (\($0.nodes.prefix(3).joined(separator: ", "))\($0.nodes.count > 3 ? ", …" : ""))" }.joined(separator: "; ")
        case .invalidConstant(let tensor, let reason): "constant \(tensor) cannot be compiled: \(reason)"
        }
    }

    public var location: String? { nil }

    public var hint: String? {
        switch self {
        case .unsupportedOps: "report these operators, or export the model with standard ONNX ops (`onnxc info` lists them too)"
        case .invalidConstant: "check the model with `onnxc info`; re-export it if the constant is damaged"
        }
    }
}

/// Lowers an optimized, shape-inferred IR model into a `Program`: numbers every value, resolves every node to
/// an opcode, keeps initializers as constants, and plans the memory of every intermediate whose size is known
/// at compile time into one arena (`MemoryPlanner`).
public enum Emitter {
    public struct Report: Sendable {
        /// Bytes of all arena-planned intermediates if each had its own (64-byte aligned) buffer.
        public var intermediateBytes: Int
        public var arenaBytes: Int
        public var constantBytes: Int
        /// Tensors whose size is only known at run time (allocated when computed).
        public var dynamicTensors: Int
        public var ops: Int
        /// Constants stored in a kernel's packed layout (compile-time weight packing).
        public var prepackedWeights: Int
    }

    /// `prepackWeights: false` keeps every constant plain, `winograd: false` every convolution direct (for A/B
    /// measurements and debugging kernels).
    /// `channelWindows: false` gives every Concat operand and Split part a slot of its own (`ChannelWindows`).
    /// `halfPrecisionWeights` stores float32 weights of 1024 elements or more as float16 (`-O fp16`).
    public static func emit(_ model: Model, metadata: ProgramMetadata, prepackWeights: Bool = true, winograd: Bool = true,
                            channelWindows: Bool = true, halfPrecisionWeights: Bool = false) throws(EmitError) -> (Program, Report) {
        var builder = ProgramBuilder(model: model, channelWindows: channelWindows)
        builder.addGraph(model.graph, isMain: true)
        if !builder.unsupported.isEmpty {
            throw .unsupportedOps(builder.unsupportedOrder.map { ($0, builder.unsupported[$0] ?? []) })
        }
        if let failure = builder.failure { throw failure }
        let plan = MemoryPlanner.plan(builder.candidates)
        var tensors = builder.tensors
        for (id, offset) in plan.offsets {
            if case .arena(_, let bytes) = tensors[Int(id)].storage { tensors[Int(id)].storage = .arena(offset: offset, byteCount: bytes) }
        }
        // A view shares its root's slot (same bytes, same offset).
        for (view, root) in builder.aliases {
            if case .arena(let offset, let bytes) = tensors[Int(root)].storage { tensors[Int(view)].storage = .arena(offset: offset, byteCount: bytes) }
        }
        // A window starts at its channel of its root's slot; its rows are the root's.
        for (member, placement) in builder.windows {
            guard case .arena(let offset, _) = tensors[Int(placement.root)].storage, let rowStride = tensors[Int(placement.root)].shape?.fixedDims?.last,
                  let width = tensors[Int(member)].dtype.byteCount(elements: 1) else {
                // Not reached (ChannelWindows roots only planned slots); allocated when computed, still correct.
                tensors[Int(member)].storage = .dynamic
                continue
            }
            tensors[Int(member)].storage = .window(offset: offset + placement.channel * width, rowStride: Int(rowStride))
        }
        var graphs = builder.graphs
        KernelSelection.select(&graphs, tensors: tensors, winograd: winograd)
        let prepacked = prepackWeights ? WeightPacking.prepack(&tensors, graphs: graphs) : 0
        if halfPrecisionWeights { HalfPrecision.narrow(&tensors) }
        let program = Program(metadata: metadata, tensors: tensors, graphs: graphs, arenaBytes: plan.arenaBytes)
        var constantBytes = 0, dynamic = 0, intermediate = 0
        for tensor in tensors {
            switch tensor.storage {
            case .constant(let data, _): constantBytes += data.byteCount
            case .dynamic: dynamic += 1
            case .arena(_, let bytes): intermediate += CheckedSize.alignUp(max(bytes, 1), to: MemoryPlanner.alignment) ?? bytes
            case .window: intermediate += CheckedSize.elementCount(tensor.shape?.fixedDims ?? []).flatMap { tensor.dtype.byteCount(elements: $0) } ?? 0
            case .input: break
            }
        }
        let report = Report(intermediateBytes: intermediate, arenaBytes: plan.arenaBytes, constantBytes: constantBytes,
                            dynamicTensors: dynamic, ops: graphs.reduce(0) { $0 + $1.ops.count }, prepackedWeights: prepacked)
        return (program, report)
    }
}

/// Walks the IR graphs once, assigning tensor ids in definition order.
private struct ProgramBuilder {
    let model: Model
    let opsets: [String: Int64]
    var tensors: [ProgramTensor] = []
    var graphs: [ProgramGraph] = []
    /// Ids by name, per graph scope (inner scopes see outer names).
    var scopes: [[String: TensorID]] = []
    var unsupported: [String: [String]] = [:]
    var unsupportedOrder: [String] = []
    var failure: EmitError?
    /// Main-graph intermediates with a static size, and the op indices that define and last read them.
    var candidates: [MemoryPlanner.Lifetime] = []
    /// Views (outputs of `viewOps`) that share the slot of their root tensor, by id: the runtime reshapes in place,
    /// so the root stays alive as long as its last view is read.
    var aliases: [TensorID: TensorID] = [:]

    /// Ops whose output is their first input's bytes under another shape (the runtime returns a view).
    static let viewOps = ChannelWindows.viewOps
    /// Main-graph tensors inside a wider tensor's slot (`ChannelWindows`), by id: the root's id and the channel
    /// where each starts. Their storage is a `.window` placeholder until the roots' slots are planned.
    var windows: [TensorID: (root: TensorID, channel: Int)] = [:]
    /// Element-wise float32 ops whose kernel (`ck_binary_f32`) reads each element of an operand of the output's
    /// shape before it writes that element, so the output may take that operand's slot when this op is its last
    /// reader (ORT's planner does the same): the result stays in the cache lines the operand already holds.
    static let inPlaceOps: Set<String> = ["Add", "Sub", "Mul", "Div"]

    /// Whether Concat operands and Split parts may share a wider tensor's slot (`ChannelWindows`).
    let channelWindows: Bool

    init(model: Model, channelWindows: Bool) {
        self.model = model
        self.channelWindows = channelWindows
        var opsets: [String: Int64] = [:]
        for opset in model.opsetImports { opsets[canonicalDomain(opset.domain)] = opset.version }
        self.opsets = opsets
    }

    func lookup(_ name: String) -> TensorID? {
        for scope in scopes.reversed() { if let id = scope[name] { return id } }
        return nil
    }

    mutating func define(_ name: String, dtype: DType, shape: Shape?, storage: ProgramStorage) -> TensorID {
        let id = TensorID(tensors.count)
        tensors.append(ProgramTensor(name: name, dtype: dtype, shape: shape, storage: storage))
        scopes[scopes.count - 1][name] = id
        return id
    }

    /// Emits `graph` (and, depth first, its subgraphs); returns its index in `graphs`.
    @discardableResult
    mutating func addGraph(_ graph: Graph, isMain: Bool) -> Int {
        let index = graphs.count
        graphs.append(ProgramGraph(name: graph.name, inputs: [], outputs: [], ops: []))
        scopes.append([:])
        defer { scopes.removeLast() }
        var types: [String: TensorType] = [:]
        for info in graph.inputs + graph.valueInfo + graph.outputs {
            if let t = info.type?.tensorType, types[info.name] == nil { types[info.name] = t }
        }
        let inputNames = Set(graph.inputs.map(\.name))
        var defaults: [String: OnnxcIR.Tensor] = [:]
        for tensor in graph.initializers where inputNames.contains(tensor.name) { defaults[tensor.name] = tensor }
        var inputs: [TensorID] = []
        for (position, info) in graph.inputs.enumerated() {
            let t = info.type?.tensorType
            // An input with an initializer of the same name (IR < 4) may be fed or left at that default: the
            // value is stored as a constant and the executor lets a fed value take its place.
            let storage: ProgramStorage = defaults[info.name].map { .constant($0.data, layout: .plain) } ?? .input(index: position)
            inputs.append(define(info.name, dtype: t?.elementType ?? .undefined, shape: t?.shape, storage: storage))
        }
        for tensor in graph.initializers where !inputNames.contains(tensor.name) {
            _ = define(tensor.name, dtype: tensor.dtype, shape: Shape(tensor.dims.map { .fixed($0) }), storage: .constant(tensor.data, layout: .plain))
        }
        for sparse in graph.sparseInitializers where !inputNames.contains(sparse.name) {
            guard let dense = densified(sparse) else { continue }
            _ = define(sparse.name, dtype: dense.dtype, shape: Shape(dense.dims.map { .fixed($0) }), storage: .constant(dense, layout: .plain))
        }
        let outputNames = Set(graph.outputs.map(\.name))
        var ops: [ProgramOp] = []
        var firstDefinition: [TensorID: Int] = [:]
        var lastUse: [TensorID: Int] = [:]
        // The last op reading each name (subgraph captures included), for in-place outputs: known before the walk,
        // since an operand may be overwritten only where nothing reads it later.
        var finalUse: [String: Int] = [:]
        if isMain {
            for (position, node) in graph.nodes.enumerated() {
                for name in node.inputs where !name.isEmpty { finalUse[name] = position }
                for name in node.subgraphs.flatMap(capturedNames) { finalUse[name] = position }
            }
        }
        /// Every tensor sharing a root's slot (its views and in-place results), by root.
        var sharers: [TensorID: [TensorID]] = [:]
        let placements = isMain && channelWindows ? ChannelWindows.plan(graph, types: types, outputs: outputNames) : [:]
        /// Every name in a window group (roots and members): no in-place result may take such a slot.
        let windowed = Set(placements.keys).union(placements.values.map(\.root))
        for (position, node) in graph.nodes.enumerated() {
            let domain = canonicalDomain(node.domain)
            guard let opcode = Opcode(domain: domain, opType: node.opType) else {
                let key = (domain.isEmpty ? "" : domain + "::") + node.opType
                if unsupported[key] == nil { unsupportedOrder.append(key) }
                unsupported[key, default: []].append(node.name.isEmpty ? node.outputs.first ?? "?" : node.name)
                continue
            }
            var attributes: [ProgramAttribute] = []
            for attribute in node.attributes {
                attributes.append(ProgramAttribute(attribute.name, convert(attribute.value)))
            }
            // Values a subgraph reads from this scope are in use at this op.
            for captured in node.subgraphs.flatMap(capturedNames) {
                if let id = lookup(captured) { lastUse[id] = position }
            }
            let inputIDs: [TensorID] = node.inputs.map { name in
                guard !name.isEmpty, let id = lookup(name) else { return Program.omitted }
                lastUse[id] = position
                return id
            }
            var outputIDs: [TensorID] = []
            for name in node.outputs {
                guard !name.isEmpty else { outputIDs.append(Program.omitted); continue }
                let t = types[name]
                let dtype = t?.elementType ?? .undefined
                let storage: ProgramStorage
                if isMain, placements[name] != nil {
                    storage = .window(offset: 0, rowStride: 0)
                } else if isMain, !outputNames.contains(name), let bytes = Self.staticBytes(t) {
                    storage = .arena(offset: 0, byteCount: bytes)
                } else {
                    storage = .dynamic
                }
                let id = define(name, dtype: dtype, shape: t?.shape, storage: storage)
                firstDefinition[id] = position
                outputIDs.append(id)
            }
            if isMain, domain.isEmpty, Self.viewOps.contains(node.opType), let input = inputIDs.first, input >= 0,
               let output = outputIDs.first, output >= 0, case .arena(_, let outBytes) = tensors[Int(output)].storage {
                if case .arena(_, let inBytes) = tensors[Int(input)].storage {
                    if inBytes == outBytes {
                        let root = aliases[input] ?? input
                        aliases[output] = root
                        sharers[root, default: []].append(output)
                    }
                } else {
                    // A view of an input, a constant or a run-time-sized value needs no slot of its own.
                    tensors[Int(output)].storage = .dynamic
                }
            }
            if isMain, domain.isEmpty, Self.inPlaceOps.contains(node.opType), let output = outputIDs.first, output >= 0,
               !node.inputs.contains(where: windowed.contains), !windowed.contains(node.outputs.first ?? ""),
               let root = inPlaceRoot(output: output, inputs: inputIDs, position: position, finalUse: finalUse, sharers: sharers,
                                      graphOutputs: outputNames) {
                aliases[output] = root
                sharers[root, default: []].append(output)
            }
            ops.append(ProgramOp(name: node.name, opcode: opcode, opset: Int32(clamping: opsets[domain] ?? 1),
                                 inputs: inputIDs, outputs: outputIDs, attributes: attributes))
        }
        let outputs: [TensorID] = graph.outputs.map { lookup($0.name) ?? Program.omitted }
        if isMain {
            // A root lives until its last view is read.
            var viewEnd: [TensorID: Int] = [:]
            for (view, root) in aliases { viewEnd[root] = max(viewEnd[root] ?? 0, lastUse[view] ?? firstDefinition[view] ?? 0) }
            // A window group's root holds its slot from the first member's definition to the last member's read.
            var windowSpan: [TensorID: (first: Int, last: Int)] = [:]
            for (name, placement) in placements {
                guard let member = lookup(name), let root = lookup(placement.root), let start = firstDefinition[member] else { continue }
                windows[member] = (root, placement.channel)
                let last = max(start, lastUse[member] ?? start)
                let span = windowSpan[root] ?? (start, last)
                windowSpan[root] = (min(span.first, start), max(span.last, last))
            }
            for (id, start) in firstDefinition where aliases[id] == nil {
                guard case .arena(_, let bytes) = tensors[Int(id)].storage else { continue }
                // A value nobody reads still needs its slot for the op that writes it.
                let last = max(start, lastUse[id] ?? start, viewEnd[id] ?? start, windowSpan[id]?.last ?? start)
                candidates.append(MemoryPlanner.Lifetime(id: id, first: min(start, windowSpan[id]?.first ?? start), last: last, bytes: bytes))
            }
        }
        graphs[index].inputs = inputs
        graphs[index].outputs = outputs
        graphs[index].ops = ops
        return index
    }

    /// The root slot an element-wise op's output can take over: an operand's (through its views) of the output's
    /// dtype and size whose every sharer is last read by this op, and which no other operand of the op shares (a
    /// broadcast view of it would be read at other elements than the one being written).
    func inPlaceRoot(output: TensorID, inputs: [TensorID], position: Int, finalUse: [String: Int], sharers: [TensorID: [TensorID]],
                     graphOutputs: Set<String>) -> TensorID? {
        let out = tensors[Int(output)]
        guard out.dtype == .float, case .arena(_, let bytes) = out.storage, let outDims = out.shape?.fixedDims else { return nil }
        let roots = inputs.map { $0 >= 0 ? aliases[$0] ?? $0 : Program.omitted }
        for (slot, input) in inputs.enumerated() where input >= 0 {
            let root = roots[slot]
            let operand = tensors[Int(input)]
            guard operand.dtype == .float, operand.shape?.fixedDims == outDims, case .arena(_, let rootBytes) = tensors[Int(root)].storage,
                  rootBytes == bytes, roots.enumerated().allSatisfy({ $0.offset == slot || $0.element != root }) else { continue }
            let group = [root] + (sharers[root] ?? [])
            if group.allSatisfy({ id in
                let name = tensors[Int(id)].name
                return !graphOutputs.contains(name) && (finalUse[name] ?? -1) <= position
            }) {
                return root
            }
        }
        return nil
    }

    /// Bytes of a numeric tensor whose dims are all static, or nil.
    static func staticBytes(_ type: TensorType?) -> Int? {
        guard let type, type.elementType != .string, type.elementType != .undefined, let dims = type.shape?.fixedDims,
              let count = CheckedSize.elementCount(dims) else { return nil }
        return type.elementType.byteCount(elements: count)
    }

    /// Names a subgraph reads from enclosing scopes (transitively).
    func capturedNames(_ graph: Graph) -> [String] {
        Array(graph.capturedValues)
    }

    mutating func convert(_ value: OnnxcIR.AttributeValue) -> ProgramAttributeValue {
        switch value {
        case .float(let v): return .float(v)
        case .int(let v): return .int(v)
        case .string(let v): return .string(String(decoding: v, as: UTF8.self))
        case .tensor(let t): return .tensor(t.data)
        case .graph(let g): return .graph(addGraph(g, isMain: false))
        case .sparseTensor(let s): return densified(s).map { .tensor($0) } ?? .tensors([])
        case .typeProto(let t): return .type(Self.valueType(t))
        case .floats(let v): return .floats(v)
        case .ints(let v): return .ints(v)
        case .strings(let v): return .strings(v.map { String(decoding: $0, as: UTF8.self) })
        case .tensors(let v): return .tensors(v.map(\.data))
        case .graphs(let v): return .graphs(v.map { addGraph($0, isMain: false) })
        case .sparseTensors(let v): return .tensors(v.compactMap { densified($0) })
        case .typeProtos(let v): return .type(v.first.flatMap(Self.valueType))
        }
    }

    /// The element type an Optional/Sequence type names, as the runtime's empty-value marker needs it.
    static func valueType(_ type: ValueType) -> ProgramValueType? {
        switch type.kind {
        case .tensor(let t), .sparseTensor(let t): return .tensor(t.elementType)
        case .sequence(let element): return element?.tensorType.map { .sequence($0.elementType) }
        case .optional(let element): return element.flatMap(valueType)
        case .map, .unspecified: return nil
        }
    }

    /// A sparse constant as the dense tensor the runtime computes with (the runtime has no sparse kernels).
    mutating func densified(_ sparse: SparseTensor) -> TensorData? {
        do {
            if let dense = Lowering.tensorData(try Lowering.densify(sparse)) { return dense }
            if failure == nil { failure = .invalidConstant(tensor: sparse.name, reason: "its dense form does not fit in memory") }
        } catch {
            if failure == nil { failure = .invalidConstant(tensor: sparse.name, reason: error.what) }
        }
        return nil
    }
}
