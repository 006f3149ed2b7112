import OnnxcCore

/// Writes a `Program` as a `.oxc` file (schemas/oxc-format.md).
///
/// Layout: header, section table, the small sections (strings, metadata, tensors, graphs, ops, attributes,
/// memory plan), then the constants section last, each payload at a multiple of 64 bytes from the start of the
/// file. Every CRC is computed before the first byte is written, so the file is written front to back in one
/// pass and constants go straight from their `ByteSlice`s to the file, never gathered into one buffer.
public enum OXCWriter {
    /// The whole file in memory.
    public static func serialize(_ program: Program) throws(FormatError) -> [UInt8] {
        try serialize(program, extensions: WriterExtensions())
    }

    /// Writes the file atomically (temporary sibling, fsync, rename): a failure never leaves a partial file at
    /// `path`.
    public static func write(_ program: Program, to path: String) throws(FormatError) {
        let image = try FileImage(plan: Plan(program, extensions: WriterExtensions()))
        let writer: AtomicFileWriter
        do { writer = try AtomicFileWriter(path: path) } catch { throw .file(error) }
        var sink = FileSink(writer: writer)
        try image.emit(into: &sink)
        try sink.finish()
        do { try writer.commit() } catch { throw .file(error) }
    }

    static func serialize(_ program: Program, extensions: WriterExtensions) throws(FormatError) -> [UInt8] {
        let image = try FileImage(plan: Plan(program, extensions: extensions))
        var sink = ArraySink()
        sink.bytes.reserveCapacity(image.fileBytes)
        try image.emit(into: &sink)
        return sink.bytes
    }
}

/// What a newer writer might add, so tests can check that this reader tolerates it. Not part of the public
/// API: real files are always written as the current version.
struct WriterExtensions {
    var majorVersion = OXCFormat.majorVersion
    var minorVersion = OXCFormat.minorVersion
    /// Appended to the header (a field added by a newer minor).
    var extraHeaderBytes: [UInt8] = []
    /// Appended to every section table entry.
    var extraSectionEntryBytes: [UInt8] = []
    /// Appended to every record of every table section.
    var extraRecordBytes: [UInt8] = []
    /// Sections of kinds this version does not define, written after the memory plan.
    var extraSections: [(kind: UInt32, flags: UInt32, bytes: [UInt8])] = []
}

// MARK: - Encoding

/// Little-endian byte building with records that carry their own size.
struct ByteBuilder {
    var bytes: [UInt8] = []

    mutating func u8(_ v: UInt8) { bytes.append(v) }
    mutating func u16(_ v: UInt16) { withUnsafeBytes(of: v.littleEndian) { bytes.append(contentsOf: $0) } }
    mutating func u32(_ v: UInt32) { withUnsafeBytes(of: v.littleEndian) { bytes.append(contentsOf: $0) } }
    mutating func i32(_ v: Int32) { withUnsafeBytes(of: v.littleEndian) { bytes.append(contentsOf: $0) } }
    mutating func u64(_ v: UInt64) { withUnsafeBytes(of: v.littleEndian) { bytes.append(contentsOf: $0) } }
    mutating func i64(_ v: Int64) { withUnsafeBytes(of: v.littleEndian) { bytes.append(contentsOf: $0) } }

    /// A count or index as u32.
    mutating func count(_ n: Int, _ what: @autoclosure () -> String) throws(FormatError) {
        guard let v = UInt32(exactly: n) else { throw .unwritable(reason: "\(what()) (\(n)) does not fit in 32 bits") }
        u32(v)
    }

    /// A non-negative size or offset as u64.
    mutating func size(_ n: Int, _ what: @autoclosure () -> String) throws(FormatError) {
        guard let v = UInt64(exactly: n) else { throw .unwritable(reason: "\(what()) is negative (\(n))") }
        u64(v)
    }

    /// Starts a record; `endRecord` fills in its size.
    mutating func beginRecord() -> Int {
        let start = bytes.count
        u32(0)
        return start
    }

    mutating func endRecord(_ start: Int, extra: [UInt8]) throws(FormatError) {
        bytes.append(contentsOf: extra)
        guard let size = UInt32(exactly: bytes.count - start) else {
            throw .unwritable(reason: "a record of \(bytes.count - start) bytes exceeds 4 GiB")
        }
        withUnsafeBytes(of: size.littleEndian) { raw in
            for i in 0..<4 { bytes[start + i] = raw[i] }
        }
    }

    mutating func patchU64(at offset: Int, _ v: UInt64) {
        withUnsafeBytes(of: v.littleEndian) { raw in
            for i in 0..<8 { bytes[offset + i] = raw[i] }
        }
    }
}

/// Interned strings, by first use; index 0 is always "".
struct StringTable {
    var strings: [String] = [""]
    var index: [String: UInt32] = ["": 0]

    mutating func id(_ s: String) throws(FormatError) -> UInt32 {
        if let known = index[s] { return known }
        guard let next = UInt32(exactly: strings.count) else { throw .unwritable(reason: "more than 2^32 strings") }
        strings.append(s)
        index[s] = next
        return next
    }

    func encoded() throws(FormatError) -> [UInt8] {
        var b = ByteBuilder()
        try b.count(strings.count, "the string count")
        for s in strings {
            let utf8 = Array(s.utf8)
            try b.count(utf8.count, "a string's length")
            b.bytes.append(contentsOf: utf8)
        }
        return b.bytes
    }
}

/// The encoded sections of a program, and its constant payloads with their offsets in the constants section.
struct Plan {
    var extensions: WriterExtensions
    var sections: [(kind: UInt32, flags: UInt32, bytes: [UInt8])] = []
    var constants: [(offset: Int, slice: ByteSlice)] = []
    var constantsBytes = 0

    private var strings = StringTable()

    init(_ program: Program, extensions: WriterExtensions) throws(FormatError) {
        self.extensions = extensions
        let extra = extensions.extraRecordBytes
        let tensorCount = program.tensors.count
        guard tensorCount <= Int(Int32.max) else { throw .unwritable(reason: "more than 2^31 - 1 tensors") }
        guard program.arenaBytes >= 0 else { throw .unwritable(reason: "negative arena size \(program.arenaBytes)") }

        var metadata = ByteBuilder()
        let m = program.metadata
        let start = metadata.beginRecord()
        metadata.u32(try strings.id(m.compiler))
        metadata.u32(try strings.id(m.sourceName))
        metadata.u32(try strings.id(m.producer))
        metadata.u32(try strings.id(m.optimization))
        try metadata.count(m.sourceSHA256.count, "the source hash length")
        metadata.bytes.append(contentsOf: m.sourceSHA256)
        try metadata.count(m.properties.count, "the metadata property count")
        for pair in m.properties {
            metadata.u32(try strings.id(pair.key))
            metadata.u32(try strings.id(pair.value))
        }
        try metadata.endRecord(start, extra: extra)

        var tensors = ByteBuilder()
        try tensors.count(tensorCount, "the tensor count")
        for (id, tensor) in program.tensors.enumerated() {
            try encodeTensor(tensor, id: id, into: &tensors, extra: extra)
        }

        var graphs = ByteBuilder()
        var ops = ByteBuilder()
        var attributes = ByteBuilder()
        try graphs.count(program.graphs.count, "the graph count")
        try ops.count(program.graphs.reduce(0) { $0 + $1.ops.count }, "the op count")
        var firstOp = 0
        for (g, graph) in program.graphs.enumerated() {
            let record = graphs.beginRecord()
            graphs.u32(try strings.id(graph.name))
            try graphs.count(firstOp, "an op index")
            try graphs.count(graph.ops.count, "an op count")
            try Self.ids(graph.inputs, of: "graph \(g) inputs", tensorCount: tensorCount, optional: false, into: &graphs)
            try Self.ids(graph.outputs, of: "graph \(g) outputs", tensorCount: tensorCount, optional: false, into: &graphs)
            try graphs.endRecord(record, extra: extra)
            for op in graph.ops {
                let record = ops.beginRecord()
                ops.u32(op.opcode.rawValue)
                ops.i32(op.opset)
                ops.u32(try strings.id(op.name))
                let listStart = attributes.bytes.count
                try encodeAttributes(op.attributes, graphCount: program.graphs.count, into: &attributes)
                try ops.size(listStart, "an attribute offset")
                try ops.size(attributes.bytes.count - listStart, "an attribute list size")
                try Self.ids(op.inputs, of: "op '\(op.name)' inputs", tensorCount: tensorCount, optional: true, into: &ops)
                try Self.ids(op.outputs, of: "op '\(op.name)' outputs", tensorCount: tensorCount, optional: true, into: &ops)
                try ops.endRecord(record, extra: extra)
            }
            firstOp += graph.ops.count
        }

        var memoryPlan = ByteBuilder()
        let planRecord = memoryPlan.beginRecord()
        try memoryPlan.size(program.arenaBytes, "the arena size")
        try memoryPlan.endRecord(planRecord, extra: extra)

        sections = [
            (SectionKind.strings.rawValue, 0, try strings.encoded()),
            (SectionKind.metadata.rawValue, 0, metadata.bytes),
            (SectionKind.tensors.rawValue, 0, tensors.bytes),
            (SectionKind.graphs.rawValue, 0, graphs.bytes),
            (SectionKind.ops.rawValue, 0, ops.bytes),
            (SectionKind.attributes.rawValue, 0, attributes.bytes),
            (SectionKind.memoryPlan.rawValue, 0, memoryPlan.bytes),
        ] + extensions.extraSections
    }

    private static func ids(_ ids: [TensorID], of what: String, tensorCount: Int, optional: Bool,
                            into b: inout ByteBuilder) throws(FormatError) {
        try b.count(ids.count, "the number of \(what)")
        for id in ids {
            guard (id >= 0 && Int(id) < tensorCount) || (optional && id == Program.omitted) else {
                throw .unwritable(reason: "\(what) name tensor \(id), but there are \(tensorCount) tensors")
            }
            b.i32(id)
        }
    }

    private mutating func encodeTensor(_ tensor: ProgramTensor, id: Int, into b: inout ByteBuilder,
                                       extra: [UInt8]) throws(FormatError) {
        let record = b.beginRecord()
        b.u32(try strings.id(tensor.name))
        b.u32(UInt32(bitPattern: tensor.dtype.rawValue))
        let code: StorageCode
        switch tensor.storage {
        case .dynamic: code = .dynamic
        case .constant: code = .constant
        case .arena: code = .arena
        case .input: code = .input
        case .window: code = .window
        }
        b.u32(code.rawValue)
        if let shape = tensor.shape {
            guard let rank = Int32(exactly: shape.rank) else { throw .unwritable(reason: "tensor \(id) has rank \(shape.rank)") }
            b.i32(rank)
            for dim in shape.dims {
                switch dim {
                case .fixed(let v):
                    guard v >= 0 else { throw .unwritable(reason: "tensor '\(tensor.name)' has a negative dim \(v)") }
                    b.u32(DimCode.fixed.rawValue)
                    b.i64(v)
                case .symbolic(let name):
                    b.u32(DimCode.symbolic.rawValue)
                    b.i64(Int64(try strings.id(name)))
                case .unknown:
                    b.u32(DimCode.unknown.rawValue)
                    b.i64(0)
                }
            }
        } else {
            b.i32(-1)
        }
        var data: TensorData?
        var layout = ConstantLayout.plain
        switch tensor.storage {
        case .dynamic:
            b.u64(0)
            b.u64(0)
        case .input(let index):
            try b.size(index, "tensor '\(tensor.name)' input index")
            b.u64(0)
        case .arena(let offset, let byteCount):
            try b.size(offset, "tensor '\(tensor.name)' arena offset")
            try b.size(byteCount, "tensor '\(tensor.name)' arena size")
        case .window(let offset, let rowStride):
            try b.size(offset, "tensor '\(tensor.name)' window offset")
            try b.size(rowStride, "tensor '\(tensor.name)' window row stride")
        case .constant(let value, let constantLayout):
            let payload = try Self.payload(of: value)
            let offset = try alignedConstantOffset()
            constants.append((offset, payload))
            constantsBytes = offset + payload.count
            try b.size(offset, "a constant offset")
            try b.size(payload.count, "a constant size")
            data = value
            layout = constantLayout
        }
        b.u32(UInt32(bitPattern: data?.dtype.rawValue ?? 0))
        try b.count(data?.dims.count ?? 0, "a constant's rank")
        for dim in data?.dims ?? [] { b.i64(dim) }
        switch layout {
        case .plain:
            b.u32(ConstantLayoutCode.plain)
            b.u32(0)
        case .packed(let code, let parameters):
            guard code != ConstantLayoutCode.plain else {
                throw .unwritable(reason: "tensor '\(tensor.name)' has a packed layout with the plain code 0")
            }
            b.u32(code)
            try b.count(parameters.count, "a layout's parameter count")
            for p in parameters { b.i64(p) }
        }
        try b.endRecord(record, extra: extra)
    }

    private func alignedConstantOffset() throws(FormatError) -> Int {
        guard let offset = CheckedSize.alignUp(constantsBytes, to: OXCFormat.constantAlignment) else {
            throw .unwritable(reason: "constants exceed the address space")
        }
        return offset
    }

    /// A tensor's payload as stored: its bytes, or for string tensors n u64 lengths then the bytes.
    static func payload(of value: TensorData) throws(FormatError) -> ByteSlice {
        switch value.payload {
        case .bytes(let slice): return slice
        case .strings(let strings): return ByteSlice(copying: encodeStrings(strings))
        }
    }

    static func encodeStrings(_ strings: [[UInt8]]) -> [UInt8] {
        var b = ByteBuilder()
        b.bytes.reserveCapacity(strings.count * 8 + strings.reduce(0) { $0 + $1.count })
        for s in strings { b.u64(UInt64(s.count)) }
        for s in strings { b.bytes.append(contentsOf: s) }
        return b.bytes
    }

    private mutating func encodeAttributes(_ attributes: [ProgramAttribute], graphCount: Int,
                                           into b: inout ByteBuilder) throws(FormatError) {
        try b.count(attributes.count, "an attribute count")
        for attribute in attributes {
            b.u32(try strings.id(attribute.name))
            let tag: AttributeTag
            switch attribute.value {
            case .float: tag = .float
            case .int: tag = .int
            case .string: tag = .string
            case .tensor: tag = .tensor
            case .graph: tag = .graph
            case .floats: tag = .floats
            case .ints: tag = .ints
            case .strings: tag = .strings
            case .tensors: tag = .tensors
            case .graphs: tag = .graphs
            case .type: tag = .type
            }
            b.u32(tag.rawValue)
            let lengthAt = b.bytes.count
            b.u64(0)
            let valueStart = b.bytes.count
            switch attribute.value {
            case .float(let v): b.u32(v.bitPattern)
            case .int(let v): b.i64(v)
            case .string(let s): b.u32(try strings.id(s))
            case .tensor(let t): try Self.encodeTensorValue(t, into: &b)
            case .graph(let g): try Self.graphIndex(g, graphCount: graphCount, attribute: attribute.name, into: &b)
            case .floats(let vs):
                try b.count(vs.count, "a float list's length")
                for v in vs { b.u32(v.bitPattern) }
            case .ints(let vs):
                try b.count(vs.count, "an int list's length")
                for v in vs { b.i64(v) }
            case .strings(let ss):
                try b.count(ss.count, "a string list's length")
                for s in ss { b.u32(try strings.id(s)) }
            case .tensors(let ts):
                try b.count(ts.count, "a tensor list's length")
                for t in ts { try Self.encodeTensorValue(t, into: &b) }
            case .graphs(let gs):
                try b.count(gs.count, "a graph list's length")
                for g in gs { try Self.graphIndex(g, graphCount: graphCount, attribute: attribute.name, into: &b) }
            case .type(let type):
                switch type {
                case nil:
                    b.u32(ValueTypeCode.absent.rawValue)
                    b.u32(0)
                case .tensor(let dtype)?:
                    b.u32(ValueTypeCode.tensor.rawValue)
                    b.u32(UInt32(bitPattern: dtype.rawValue))
                case .sequence(let dtype)?:
                    b.u32(ValueTypeCode.sequence.rawValue)
                    b.u32(UInt32(bitPattern: dtype.rawValue))
                }
            }
            b.patchU64(at: lengthAt, UInt64(b.bytes.count - valueStart))
        }
    }

    private static func graphIndex(_ g: Int, graphCount: Int, attribute: String,
                                   into b: inout ByteBuilder) throws(FormatError) {
        guard g >= 0, g < graphCount else {
            throw .unwritable(reason: "attribute '\(attribute)' names graph \(g), but there are \(graphCount) graphs")
        }
        b.u32(UInt32(g))
    }

    private static func encodeTensorValue(_ t: TensorData, into b: inout ByteBuilder) throws(FormatError) {
        b.u32(UInt32(bitPattern: t.dtype.rawValue))
        try b.count(t.dims.count, "a tensor attribute's rank")
        for d in t.dims { b.i64(d) }
        let payload = try payload(of: t)
        try b.size(payload.count, "a tensor attribute's size")
        payload.withUnsafeBytes { b.bytes.append(contentsOf: $0) }
    }
}

// MARK: - Emission

protocol ByteSink {
    mutating func write(_ bytes: UnsafeRawBufferPointer) throws(FormatError)
}

struct ArraySink: ByteSink {
    var bytes: [UInt8] = []
    mutating func write(_ bytes: UnsafeRawBufferPointer) throws(FormatError) { self.bytes.append(contentsOf: bytes) }
}

/// Writes the file in whole chunks of `chunkBytes` at multiples of `chunkBytes` (the last one shorter).
///
/// Linux sizes page-cache folios by the writes that create them (ext4 and XFS, which have large folios), and a
/// mapping of a file cached in 2 MiB folios is mapped one page-table entry per 2 MiB instead of one per 4 KiB.
/// So a just-compiled model loads without ~1,600 page faults: checking resnet50's 103 MB on one core from a
/// fresh mapping takes ~3.3 ms instead of ~7.9 ms written 64 KiB at a time. Costs one copy of what is not
/// already chunk-aligned.
struct FileSink: ByteSink {
    static let chunkBytes = 2 << 20
    let writer: AtomicFileWriter
    /// The current chunk; its first `filled` bytes are not written yet.
    private var chunk: [UInt8] = []
    private var filled = 0

    init(writer: AtomicFileWriter) {
        self.writer = writer
    }

    mutating func write(_ bytes: UnsafeRawBufferPointer) throws(FormatError) {
        var rest = bytes[...]
        while !rest.isEmpty {
            if filled == 0 && rest.count >= Self.chunkBytes {
                // At a chunk boundary: whole chunks go straight from the caller's bytes.
                let whole = rest.count - rest.count % Self.chunkBytes
                try flush(UnsafeRawBufferPointer(rebasing: rest.prefix(whole)))
                rest = rest.dropFirst(whole)
                continue
            }
            if chunk.isEmpty { chunk = [UInt8](repeating: 0, count: Self.chunkBytes) }
            let n = min(rest.count, Self.chunkBytes - filled)
            let at = filled
            chunk.withUnsafeMutableBytes { UnsafeMutableRawBufferPointer(rebasing: $0[at..<(at + n)]).copyMemory(from: UnsafeRawBufferPointer(rebasing: rest.prefix(n))) }
            filled += n
            rest = rest.dropFirst(n)
            if filled == Self.chunkBytes { try finish() }
        }
    }

    /// Writes what is pending (at the end, the file's last and shorter chunk).
    mutating func finish() throws(FormatError) {
        let count = filled
        try withBytes(chunk) { (raw) throws(FormatError) in try flush(UnsafeRawBufferPointer(rebasing: raw.prefix(count))) }
        filled = 0
    }

    private func flush(_ bytes: UnsafeRawBufferPointer) throws(FormatError) {
        guard !bytes.isEmpty else { return }
        do { try writer.write(bytes) } catch { throw .file(error) }
    }
}

/// A planned file: every offset and checksum decided, ready to be written front to back.
struct FileImage {
    let plan: Plan
    /// Header, section table, and the small sections with their padding: everything before the constants.
    let prefix: [UInt8]
    let constantsOffset: Int
    let fileBytes: Int

    init(plan: Plan) throws(FormatError) {
        self.plan = plan
        let ext = plan.extensions
        let headerBytes = OXCFormat.headerBytes + ext.extraHeaderBytes.count
        let entryBytes = OXCFormat.sectionEntryBytes + ext.extraSectionEntryBytes.count
        let sectionCount = plan.sections.count + 1
        let tableOffset = Self.align(headerBytes, OXCFormat.sectionAlignment)
        var cursor = tableOffset + sectionCount * entryBytes
        var offsets: [Int] = []
        for section in plan.sections {
            cursor = Self.align(cursor, OXCFormat.sectionAlignment)
            offsets.append(cursor)
            cursor += section.bytes.count
        }
        constantsOffset = Self.align(cursor, OXCFormat.constantAlignment)
        guard let end = CheckedSize.add(constantsOffset, plan.constantsBytes) else {
            throw .unwritable(reason: "the file would exceed the address space")
        }
        fileBytes = end

        var constantsCRC = CRC32C()
        var position = 0
        for (offset, slice) in plan.constants {
            constantsCRC.updateZeros(offset - position)
            slice.withUnsafeBytes { constantsCRC.update($0) }
            position = offset + slice.count
        }

        var table = ByteBuilder()
        var entries: [(kind: UInt32, flags: UInt32, offset: Int, size: Int, crc: UInt32)] = []
        for (i, section) in plan.sections.enumerated() {
            entries.append((section.kind, section.flags, offsets[i], section.bytes.count, CRC32C.checksum(section.bytes)))
        }
        entries.append((SectionKind.constants.rawValue, 0, constantsOffset, plan.constantsBytes, constantsCRC.value))
        for entry in entries {
            table.u32(entry.kind)
            table.u32(entry.flags)
            table.u64(UInt64(entry.offset))
            table.u64(UInt64(entry.size))
            table.u32(entry.crc)
            table.u32(0)
            table.bytes.append(contentsOf: ext.extraSectionEntryBytes)
        }

        var header = ByteBuilder()
        header.bytes.append(contentsOf: OXCFormat.magic)
        header.u16(ext.majorVersion)
        header.u16(ext.minorVersion)
        header.u32(UInt32(headerBytes))
        header.u64(UInt64(fileBytes))
        header.u64(UInt64(tableOffset))
        header.u32(UInt32(sectionCount))
        header.u32(UInt32(entryBytes))
        header.u32(CRC32C.checksum(table.bytes))
        header.u32(0)
        header.bytes.append(contentsOf: ext.extraHeaderBytes)
        let headerCRC = CRC32C.checksum(header.bytes)
        withUnsafeBytes(of: headerCRC.littleEndian) { raw in
            for i in 0..<4 { header.bytes[OXCFormat.headerCRCOffset + i] = raw[i] }
        }

        var prefix = header.bytes
        prefix.reserveCapacity(constantsOffset)
        prefix.append(contentsOf: [UInt8](repeating: 0, count: tableOffset - prefix.count))
        prefix.append(contentsOf: table.bytes)
        for (i, section) in plan.sections.enumerated() {
            prefix.append(contentsOf: [UInt8](repeating: 0, count: offsets[i] - prefix.count))
            prefix.append(contentsOf: section.bytes)
        }
        prefix.append(contentsOf: [UInt8](repeating: 0, count: constantsOffset - prefix.count))
        self.prefix = prefix
    }

    private static func align(_ value: Int, _ alignment: Int) -> Int { (value + alignment - 1) & ~(alignment - 1) }

    func emit<S: ByteSink>(into sink: inout S) throws(FormatError) {
        try withBytes(prefix) { (raw) throws(FormatError) in try sink.write(raw) }
        var position = 0
        let zeros = [UInt8](repeating: 0, count: OXCFormat.constantAlignment)
        for (offset, slice) in plan.constants {
            if offset > position {
                try withBytes(zeros) { (raw) throws(FormatError) in
                    try sink.write(UnsafeRawBufferPointer(rebasing: raw[0..<(offset - position)]))
                }
            }
            try slice.withUnsafeBytes { (raw) throws(FormatError) in try sink.write(raw) }
            position = offset + slice.count
        }
    }
}

/// `Array.withUnsafeBytes` with a typed-throwing body (the standard one only rethrows `any Error`).
func withBytes<R>(_ array: [UInt8], _ body: (UnsafeRawBufferPointer) throws(FormatError) -> R) throws(FormatError) -> R {
    let result = array.withUnsafeBytes { raw in Result { () throws(FormatError) -> R in try body(raw) } }
    return try result.get()
}
