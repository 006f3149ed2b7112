import OnnxcCore
import OnnxcFormat
import Testing

/// Shared fixtures for the `.oxc` tests: a program that uses every feature, a structural comparison (the
/// program types are not `Equatable`), and a little parser of the header and section table.
enum OXCFixtures {
    static func floats(_ values: [Float]) -> ByteSlice {
        var bytes: [UInt8] = []
        for v in values { withUnsafeBytes(of: v.bitPattern.littleEndian) { bytes.append(contentsOf: $0) } }
        return ByteSlice(copying: bytes)
    }

    static func tensor(_ dtype: DType, _ dims: [Int64], _ bytes: [UInt8]) throws -> TensorData {
        try TensorData(dtype: dtype, dims: dims, payload: .bytes(ByteSlice(copying: bytes)))
    }

    /// Every storage class, dim kind, attribute kind, string and empty tensors, a packed layout, subgraphs.
    static func everything() throws -> Program {
        let w = try TensorData(dtype: .float, dims: [2, 3], payload: .bytes(floats([1, 2, 3, 4, 5, -6.5])))
        let packed = try TensorData(dtype: .float, dims: [16], payload: .bytes(floats((0..<16).map(Float.init))))
        let labels = try TensorData(dtype: .string, dims: [3], payload: .strings([Array("a".utf8), [], Array("ünï".utf8)]))
        let empty = try TensorData(dtype: .float, dims: [0, 4], payload: .bytes(.empty))
        let int4 = try tensor(.int4, [3], [0x21, 0x0F])
        let scalar = try TensorData(int64s: [42], dims: [])
        let emptyStrings = try TensorData(dtype: .string, dims: [0], payload: .strings([]))
        let tensors: [ProgramTensor] = [
            ProgramTensor(name: "x", dtype: .float, shape: Shape([.symbolic("batch"), .fixed(3), .unknown]), storage: .input(index: 0)),
            ProgramTensor(name: "w", dtype: .float, shape: Shape(fixed: [2, 3]), storage: .constant(w, layout: .plain)),
            ProgramTensor(name: "w_packed", dtype: .float, shape: Shape(fixed: [3, 2]),
                          storage: .constant(packed, layout: .packed(code: ConstantLayoutCode.packedGEMMBPanels, parameters: [3, 2, 8]))),
            ProgramTensor(name: "t", dtype: .float, shape: nil, storage: .arena(offset: 64, byteCount: 24)),
            ProgramTensor(name: "y", dtype: .float, shape: Shape([.symbolic("batch"), .fixed(3)]), storage: .dynamic),
            ProgramTensor(name: "labels", dtype: .string, shape: Shape(fixed: [3]), storage: .constant(labels, layout: .plain)),
            ProgramTensor(name: "empty", dtype: .float, shape: Shape(fixed: [0, 4]), storage: .constant(empty, layout: .plain)),
            ProgramTensor(name: "nibbles", dtype: .int4, shape: Shape(fixed: [3]), storage: .constant(int4, layout: .plain)),
            ProgramTensor(name: "answer", dtype: .int64, shape: Shape([]), storage: .constant(scalar, layout: .plain)),
            ProgramTensor(name: "then_out", dtype: .float, shape: Shape([]), storage: .arena(offset: 0, byteCount: 4)),
            ProgramTensor(name: "no_strings", dtype: .string, shape: Shape(fixed: [0]), storage: .constant(emptyStrings, layout: .plain)),
            ProgramTensor(name: "", dtype: .undefined, shape: Shape([.fixed(0)]), storage: .input(index: 1)),
        ]
        let attributes: [ProgramAttribute] = [
            ProgramAttribute("alpha", .float(1.5)),
            ProgramAttribute("nan", .float(Float(bitPattern: 0x7FC0_0001))),
            ProgramAttribute("axis", .int(-7)),
            ProgramAttribute("mode", .string("héllo")),
            ProgramAttribute("value", .tensor(w)),
            ProgramAttribute("then_branch", .graph(1)),
            ProgramAttribute("scales", .floats([1, -2.5, .infinity])),
            ProgramAttribute("pads", .ints([1, 2, Int64.min, Int64.max])),
            ProgramAttribute("names", .strings(["a", "", "b"])),
            ProgramAttribute("values", .tensors([scalar, labels, empty, int4])),
            ProgramAttribute("branches", .graphs([1, 2])),
            ProgramAttribute("no_type", .type(nil)),
            ProgramAttribute("tensor_type", .type(.tensor(.float16))),
            ProgramAttribute("sequence_type", .type(.sequence(.int64))),
            ProgramAttribute("empty_ints", .ints([])),
        ]
        let main = ProgramGraph(name: "main", inputs: [0, 11], outputs: [4], ops: [
            ProgramOp(name: "add", opcode: try #require(Opcode(domain: "", opType: "Add")), opset: 17, inputs: [0, 1], outputs: [3], attributes: []),
            ProgramOp(name: "if", opcode: try #require(Opcode(domain: "", opType: "If")), opset: 21, inputs: [3, Program.omitted],
                      outputs: [4, Program.omitted], attributes: attributes),
            ProgramOp(name: "gemm", opcode: try #require(Opcode(domain: "ai.onnxc", opType: "FusedGemm")), opset: 1,
                      inputs: [3, 2, 6, 7, 8, 5, 10], outputs: [], attributes: [ProgramAttribute("alpha", .float(0))]),
        ])
        let thenBranch = ProgramGraph(name: "then", inputs: [], outputs: [9], ops: [
            ProgramOp(name: "id", opcode: try #require(Opcode(domain: "", opType: "Identity")), opset: 21, inputs: [3], outputs: [9],
                      attributes: [ProgramAttribute("inner", .graph(2))]),
        ])
        let elseBranch = ProgramGraph(name: "else", inputs: [], outputs: [3], ops: [])
        let metadata = ProgramMetadata(compiler: "onnxc 0.1.0", sourceSHA256: (0..<32).map(UInt8.init), sourceName: "model.onnx",
                                       producer: "pytorch 2.15.0", optimization: "-O2",
                                       properties: [StringPair("threads", "4"), StringPair("pin", "batch=1"), StringPair("pin", "seq=8")])
        return Program(metadata: metadata, tensors: tensors, graphs: [main, thenBranch, elseBranch], arenaBytes: 128)
    }

    /// A program with nothing in it but an empty main graph.
    static func minimal() -> Program {
        Program(metadata: ProgramMetadata(compiler: "", sourceSHA256: [], sourceName: "", producer: "", optimization: ""),
                tensors: [], graphs: [ProgramGraph(name: "", inputs: [], outputs: [], ops: [])], arenaBytes: 0)
    }
}

// MARK: - Structural comparison

enum ProgramDiff {
    /// Every difference between two programs, as readable lines; empty when they are the same.
    static func differences(_ a: Program, _ b: Program) -> [String] {
        var out: [String] = []
        if a.metadata != b.metadata { out.append("metadata: \(a.metadata) vs \(b.metadata)") }
        if a.arenaBytes != b.arenaBytes { out.append("arenaBytes: \(a.arenaBytes) vs \(b.arenaBytes)") }
        if a.tensors.count != b.tensors.count { out.append("tensor count: \(a.tensors.count) vs \(b.tensors.count)") }
        for (i, (x, y)) in zip(a.tensors, b.tensors).enumerated() {
            if x.name != y.name || x.dtype != y.dtype || x.shape != y.shape { out.append("tensor \(i): \(x) vs \(y)") }
            if !same(x.storage, y.storage) { out.append("tensor \(i) storage: \(x.storage) vs \(y.storage)") }
        }
        if a.graphs.count != b.graphs.count { out.append("graph count: \(a.graphs.count) vs \(b.graphs.count)") }
        for (g, (x, y)) in zip(a.graphs, b.graphs).enumerated() {
            if x.name != y.name || x.inputs != y.inputs || x.outputs != y.outputs || x.ops.count != y.ops.count {
                out.append("graph \(g): \(x.name) \(x.inputs) \(x.outputs) \(x.ops.count) ops vs \(y.name) \(y.inputs) \(y.outputs) \(y.ops.count) ops")
            }
            for (i, (p, q)) in zip(x.ops, y.ops).enumerated() {
                if p.name != q.name || p.opcode != q.opcode || p.opset != q.opset || p.inputs != q.inputs || p.outputs != q.outputs {
                    out.append("graph \(g) op \(i): \(p) vs \(q)")
                }
                if p.attributes.count != q.attributes.count { out.append("graph \(g) op \(i) attribute count") }
                for (s, t) in zip(p.attributes, q.attributes) where s.name != t.name || !same(s.value, t.value) {
                    out.append("graph \(g) op \(i) attribute \(s.name): \(s.value) vs \(t.name) \(t.value)")
                }
            }
        }
        return out
    }

    static func same(_ a: ProgramStorage, _ b: ProgramStorage) -> Bool {
        switch (a, b) {
        case (.constant(let x, let l), .constant(let y, let m)): x == y && l == m
        case (.arena(let o, let c), .arena(let p, let d)): o == p && c == d
        case (.input(let i), .input(let j)): i == j
        case (.dynamic, .dynamic): true
        default: false
        }
    }

    static func same(_ a: ProgramAttributeValue, _ b: ProgramAttributeValue) -> Bool {
        switch (a, b) {
        case (.float(let x), .float(let y)): x.bitPattern == y.bitPattern
        case (.int(let x), .int(let y)): x == y
        case (.string(let x), .string(let y)): x == y
        case (.tensor(let x), .tensor(let y)): x == y
        case (.graph(let x), .graph(let y)): x == y
        case (.floats(let x), .floats(let y)): x.map(\.bitPattern) == y.map(\.bitPattern)
        case (.ints(let x), .ints(let y)): x == y
        case (.strings(let x), .strings(let y)): x == y
        case (.tensors(let x), .tensors(let y)): x == y
        case (.graphs(let x), .graphs(let y)): x == y
        case (.type(let x), .type(let y)): x == y
        default: false
        }
    }
}

// MARK: - File structure, as the spec describes it

struct OXCLayoutView {
    struct Section {
        let kind: UInt32
        let offset: Int
        let size: Int
        let entryOffset: Int
    }

    let headerBytes: Int
    let tableOffset: Int
    let entryBytes: Int
    let sections: [Section]

    static func u16(_ b: [UInt8], _ at: Int) -> UInt16 { UInt16(b[at]) | UInt16(b[at + 1]) << 8 }
    static func u32(_ b: [UInt8], _ at: Int) -> UInt32 { (0..<4).reduce(0) { $0 | UInt32(b[at + $1]) << (8 * $1) } }
    static func u64(_ b: [UInt8], _ at: Int) -> UInt64 { (0..<8).reduce(0) { $0 | UInt64(b[at + $1]) << (8 * $1) } }

    static func put32(_ b: inout [UInt8], _ at: Int, _ v: UInt32) { for i in 0..<4 { b[at + i] = UInt8(truncatingIfNeeded: v >> (8 * i)) } }
    static func put64(_ b: inout [UInt8], _ at: Int, _ v: UInt64) { for i in 0..<8 { b[at + i] = UInt8(truncatingIfNeeded: v >> (8 * i)) } }

    init(_ b: [UInt8]) {
        headerBytes = Int(Self.u32(b, 12))
        tableOffset = Int(Self.u64(b, 24))
        let count = Int(Self.u32(b, 32))
        entryBytes = Int(Self.u32(b, 36))
        sections = (0..<count).map { i in
            let e = Int(Self.u64(b, 24)) + i * Int(Self.u32(b, 36))
            return Section(kind: Self.u32(b, e), offset: Int(Self.u64(b, e + 8)), size: Int(Self.u64(b, e + 16)), entryOffset: e)
        }
    }

    func section(_ kind: UInt32) -> Section? { sections.first { $0.kind == kind } }

    /// Recomputes every checksum, so that a test can reach the validation behind the CRCs.
    static func restamp(_ b: inout [UInt8]) {
        let view = OXCLayoutView(b)
        for s in view.sections where s.offset + s.size <= b.count {
            put32(&b, s.entryOffset + 24, CRC32C.checksum(b[s.offset..<(s.offset + s.size)]))
        }
        let tableEnd = view.tableOffset + view.sections.count * view.entryBytes
        put32(&b, 40, CRC32C.checksum(b[view.tableOffset..<tableEnd]))
        put32(&b, 44, 0)
        put32(&b, 44, CRC32C.checksum(b[0..<view.headerBytes]))
    }
}

/// Reads `bytes`, expecting a `FormatError` (any other outcome is reported).
func expectFormatError(_ bytes: [UInt8], _ comment: @autoclosure () -> String,
                       sourceLocation: SourceLocation = #_sourceLocation) -> FormatError? {
    do {
        _ = try OXCReader.read(ByteStorage(copying: bytes))
        Issue.record("read succeeded: \(comment())", sourceLocation: sourceLocation)
        return nil
    } catch {
        return error
    }
}
