public import OnnxcCore
internal import CChecksum

/// Reads a `.oxc` file (schemas/oxc-format.md) into a `Program`.
///
/// The file is untrusted: every offset, size, count, index and code is checked before use, every section's
/// CRC32C is verified before it is decoded, and nothing in the file can make the reader trap, allocate
/// without bound or recurse. Constant payloads are `ByteSlice`s of the given storage (no copy): map the file
/// with `MappedFile.map` and the weights are read in place, page by page, as kernels touch them.
public enum OXCReader {
    public struct Options: Sendable {
        /// Check the constants section's CRC32C too: reads every weight page once, mapping it (which the first
        /// run would do anyway); ~3 ms per 100 MB of page-cached file on two cores with AVX-512, ~7 ms on one
        /// core with SSE4.2 only, ~30 ms without either.
        public var verifyConstantsChecksum: Bool

        public init(verifyConstantsChecksum: Bool = true) {
            self.verifyConstantsChecksum = verifyConstantsChecksum
        }
    }

    /// Maps the file at `path` and reads it; the program's constants keep the mapping alive.
    public static func read(path: String, options: Options = Options()) throws(FormatError) -> Program {
        let storage: ByteStorage
        do { storage = try MappedFile.map(path: path) } catch { throw .file(error) }
        return try read(storage, options: options)
    }

    /// Reads a program from `storage`. When the storage does not start at a 64-byte boundary (mapped files
    /// and `ByteStorage(copying:)` always do), it is copied once so that constants stay aligned in memory.
    public static func read(_ storage: ByteStorage, options: Options = Options()) throws(FormatError) -> Program {
        try decode(storage, options: options, deferringConstantsCheck: false).program
    }

    /// `read`, except that the constants section's CRC32C runs on other threads while the caller goes on (a loader
    /// builds its plan meanwhile, ~1 ms of resnet50's 5 ms load): nothing may run the program before
    /// `check.verify()` has returned, and a caller whose own work failed should still ask `verify()` first, so that
    /// a corrupted file is reported as such rather than by whatever its garbage made fail.
    public static func open(path: String) throws(FormatError) -> (program: Program, check: ConstantsCheck) {
        let storage: ByteStorage
        do { storage = try MappedFile.map(path: path) } catch { throw .file(error) }
        return try open(storage)
    }

    public static func open(_ storage: ByteStorage) throws(FormatError) -> (program: Program, check: ConstantsCheck) {
        let (program, check) = try decode(storage, options: Options(), deferringConstantsCheck: true)
        return (program, check ?? ConstantsCheck())
    }

    private static func decode(_ storage: ByteStorage, options: Options,
                               deferringConstantsCheck: Bool) throws(FormatError) -> (program: Program, check: ConstantsCheck?) {
        var storage = storage
        if let base = storage.baseAddress, Int(bitPattern: base) % OXCFormat.constantAlignment != 0 {
            storage = storage.withUnsafeBytes { ByteStorage(copying: $0) }
        }
        let file = storage
        return try file.withUnsafeBytes { (raw) throws(FormatError) -> (program: Program, check: ConstantsCheck?) in
            var decoder = try Decoder(storage: file, raw: raw, options: options)
            decoder.deferConstantsCheck = deferringConstantsCheck
            do throws(FormatError) {
                return (try decoder.decode(), decoder.constantsCheck)
            } catch {
                try decoder.constantsCheck?.verify()
                throw error
            }
        }
    }
}

/// The constants section's CRC32C while it is computed on other threads (`OXCReader.open`). Holds the file's
/// bytes until the check has finished, so dropping a program early cannot unmap what the check reads.
public final class ConstantsCheck {
    /// Smaller sections are checked at once: starting a thread costs more than the overlap saves.
    static let minimumBytes = 1 << 20

    private var job: OpaquePointer?
    private var failure: FormatError?
    private let storage: ByteStorage?
    private let expected: UInt32
    private let location: FormatLocation

    /// A check with nothing left to do.
    init() {
        storage = nil
        expected = 0
        location = FormatLocation(section: "constants", byteOffset: 0)
    }

    init(storage: ByteStorage, bytes: UnsafeRawBufferPointer, expected: UInt32, location: FormatLocation) {
        self.storage = storage
        self.expected = expected
        self.location = location
        job = bytes.baseAddress.flatMap { cc_crc32c_start($0, bytes.count, 0) }
        if job == nil { failure = Self.mismatch(expected: expected, computed: CRC32C.checksum(bytes, maxThreads: nil), location) }
    }

    /// Waits for the checksum; throws `checksumMismatch` when the constants are not the bytes that were written.
    public func verify() throws(FormatError) {
        if let job {
            self.job = nil
            failure = Self.mismatch(expected: expected, computed: cc_crc32c_finish(job), location)
        }
        if let failure { throw failure }
    }

    private static func mismatch(expected: UInt32, computed: UInt32, _ location: FormatLocation) -> FormatError? {
        computed == expected ? nil : .checksumMismatch(location, stored: expected, computed: computed)
    }

    deinit {
        if let job { _ = cc_crc32c_finish(job) }
    }
}

// MARK: - Cursor

/// A bounded little-endian reader over part of the file; `position` and `end` are absolute file offsets.
struct Cursor {
    let base: UnsafeRawPointer
    var position: Int
    let end: Int
    let section: String
    var record: Int?

    var remaining: Int { end - position }

    func location(_ at: Int? = nil) -> FormatLocation {
        FormatLocation(section: section, record: record, byteOffset: at ?? position)
    }

    func malformed(_ reason: String, at: Int? = nil) -> FormatError { .malformed(location(at), reason: reason) }
    func unsupported(_ reason: String, at: Int? = nil) -> FormatError { .unsupported(location(at), reason: reason) }

    mutating func need(_ n: Int, _ what: String) throws(FormatError) {
        guard n >= 0, n <= remaining else {
            let container = record == nil ? "the \(section) section" : "the record"
            throw malformed("\(container) ends before \(what) (\(n) bytes needed, \(remaining) left)")
        }
    }

    mutating func load<T: FixedWidthInteger>(_ type: T.Type, _ what: String) throws(FormatError) -> T {
        try need(MemoryLayout<T>.size, what)
        let v = T(littleEndian: (base + position).loadUnaligned(as: T.self))
        position += MemoryLayout<T>.size
        return v
    }

    mutating func u32(_ what: String) throws(FormatError) -> UInt32 { try load(UInt32.self, what) }
    mutating func i32(_ what: String) throws(FormatError) -> Int32 { try load(Int32.self, what) }
    mutating func i64(_ what: String) throws(FormatError) -> Int64 { try load(Int64.self, what) }

    /// A u64 size or offset that must fit in `Int`.
    mutating func size(_ what: String) throws(FormatError) -> Int {
        let at = position
        let v = try load(UInt64.self, what)
        guard let n = Int(exactly: v) else { throw malformed("\(what) \(v) is too large", at: at) }
        return n
    }

    /// A u32 element count, checked against the bytes left so that no array is sized from a hostile count.
    mutating func count(_ what: String, elementBytes: Int) throws(FormatError) -> Int {
        let at = position
        let n = Int(try u32(what))
        guard n <= remaining / max(elementBytes, 1) else {
            throw malformed("\(what) \(n) needs more bytes than the \(record == nil ? "section" : "record") has", at: at)
        }
        return n
    }

    mutating func bytes(_ n: Int, _ what: String) throws(FormatError) -> UnsafeRawBufferPointer {
        try need(n, what)
        let buffer = UnsafeRawBufferPointer(start: base + position, count: n)
        position += n
        return buffer
    }

    /// The next record of a table section: its size is checked, and the returned cursor ends where the record
    /// ends, so fields a newer writer appended are skipped and a short record cannot read its neighbour.
    mutating func record(_ index: Int) throws(FormatError) -> Cursor {
        let start = position
        let size = Int(try u32("the size of record \(index)"))
        guard size >= 4, size <= end - start else {
            throw FormatError.malformed(FormatLocation(section: section, record: index, byteOffset: start),
                                        reason: "record size \(size) does not fit in the \(end - start) bytes left")
        }
        position = start + size
        return Cursor(base: base, position: start + 4, end: start + size, section: section, record: index)
    }
}

// MARK: - Decoder

private struct SectionEntry {
    let kind: UInt32
    let offset: Int
    let size: Int
    let crc: UInt32
    let entryOffset: Int
}

/// One optional entry per known section kind, indexed by its code.
private struct SectionTable {
    private var entries = [SectionEntry?](repeating: nil, count: Int(SectionKind.allCases.map(\.rawValue).max() ?? 0))

    subscript(kind: SectionKind) -> SectionEntry? {
        get { entries[Int(kind.rawValue) - 1] }
        set { entries[Int(kind.rawValue) - 1] = newValue }
    }
}

/// A graph record before its ops are attached.
private struct GraphRecord {
    let name: String
    let firstOp: Int
    let opCount: Int
    let inputs: [TensorID]
    let outputs: [TensorID]
}

struct Decoder {
    let storage: ByteStorage
    let base: UnsafeRawPointer
    let fileBytes: Int
    let options: OXCReader.Options
    /// Known sections by kind. Not a dictionary: its first use in a process instantiates the generic type and
    /// looks up `SectionKind: Hashable` by scanning every conformance record, ~50 µs of a 2 ms load.
    private var sections = SectionTable()
    private var strings: [String] = []
    private var arenaBytes = 0
    private var tensorCount = 0
    /// Start the constants' check on other threads instead of waiting for it (`OXCReader.open`).
    var deferConstantsCheck = false
    private(set) var constantsCheck: ConstantsCheck?

    init(storage: ByteStorage, raw: UnsafeRawBufferPointer, options: OXCReader.Options) throws(FormatError) {
        guard raw.count >= OXCFormat.magic.count, let base = raw.baseAddress,
              OXCFormat.magic.elementsEqual(UnsafeRawBufferPointer(start: base, count: OXCFormat.magic.count))
        else { throw .notAnOXCFile(byteCount: raw.count) }
        self.storage = storage
        self.base = base
        self.fileBytes = raw.count
        self.options = options
    }

    private func cursor(_ section: String, from start: Int, to end: Int) -> Cursor {
        Cursor(base: base, position: start, end: end, section: section)
    }

    private func cursor(_ kind: SectionKind) -> Cursor {
        let entry = sections[kind]
        let start = entry?.offset ?? 0
        return Cursor(base: base, position: start, end: start + (entry?.size ?? 0), section: kind.name)
    }

    mutating func decode() throws(FormatError) -> Program {
        try readHeaderAndSections()
        try readStrings()
        arenaBytes = try readMemoryPlan()
        let metadata = try readMetadata()
        let tensors = try readTensors()
        tensorCount = tensors.count
        let graphs = try readGraphsAndOps()
        return Program(metadata: metadata, tensors: tensors, graphs: graphs, arenaBytes: arenaBytes)
    }

    // MARK: Header and section table

    private mutating func readHeaderAndSections() throws(FormatError) {
        var h = cursor("header", from: OXCFormat.magic.count, to: fileBytes)
        guard fileBytes >= 12 else {
            throw .truncated(h.location(), needed: OXCFormat.headerBytes, available: fileBytes)
        }
        let major = try h.load(UInt16.self, "the major version")
        let minor = try h.load(UInt16.self, "the minor version")
        guard major == OXCFormat.majorVersion else { throw .unsupportedVersion(major: major, minor: minor) }
        guard fileBytes >= OXCFormat.headerBytes else {
            throw .truncated(h.location(), needed: OXCFormat.headerBytes, available: fileBytes)
        }
        let headerBytes = Int(try h.u32("the header size"))
        guard headerBytes >= OXCFormat.headerBytes else {
            throw h.malformed("header size \(headerBytes) is below the \(OXCFormat.headerBytes) of version 1.0", at: 12)
        }
        guard headerBytes <= fileBytes else {
            throw .truncated(h.location(12), needed: headerBytes, available: fileBytes)
        }
        let storedHeaderCRC = (base + OXCFormat.headerCRCOffset).loadUnaligned(as: UInt32.self).littleEndian
        var crc = CRC32C()
        crc.update(UnsafeRawBufferPointer(start: base, count: OXCFormat.headerCRCOffset))
        crc.updateZeros(4)
        crc.update(UnsafeRawBufferPointer(start: base + OXCFormat.headerBytes, count: headerBytes - OXCFormat.headerBytes))
        guard crc.value == storedHeaderCRC else {
            throw .checksumMismatch(h.location(OXCFormat.headerCRCOffset), stored: storedHeaderCRC, computed: crc.value)
        }

        let declaredBytes = try h.size("the file size")
        guard declaredBytes <= fileBytes else {
            throw .truncated(h.location(16), needed: declaredBytes, available: fileBytes)
        }
        guard declaredBytes == fileBytes else {
            throw h.malformed("the file has \(fileBytes - declaredBytes) bytes after the \(declaredBytes) its header declares", at: 16)
        }
        let tableOffset = try h.size("the section table offset")
        let sectionCount = Int(try h.u32("the section count"))
        let entryBytes = Int(try h.u32("the section entry size"))
        let tableCRC = try h.u32("the section table CRC32C")
        guard entryBytes >= OXCFormat.sectionEntryBytes else {
            throw h.malformed("section entry size \(entryBytes) is below the \(OXCFormat.sectionEntryBytes) of version 1.0", at: 36)
        }
        let (tableBytes, tableOverflow) = sectionCount.multipliedReportingOverflow(by: entryBytes)
        guard !tableOverflow, tableOffset >= headerBytes, let tableEnd = CheckedSize.add(tableOffset, tableBytes), tableEnd <= fileBytes else {
            throw h.malformed("the section table (\(tableBytes) bytes at \(tableOffset)) is not inside the file after the header", at: 24)
        }
        let computedTableCRC = CRC32C.checksum(UnsafeRawBufferPointer(start: base + tableOffset, count: tableBytes))
        guard computedTableCRC == tableCRC else {
            throw .checksumMismatch(FormatLocation(section: "section table", byteOffset: tableOffset),
                                    stored: tableCRC, computed: computedTableCRC)
        }

        var ranges: [(start: Int, end: Int, name: String)] = [(0, headerBytes, "header"), (tableOffset, tableEnd, "section table")]
        for i in 0..<sectionCount {
            let entryOffset = tableOffset + i * entryBytes
            var e = Cursor(base: base, position: entryOffset, end: entryOffset + entryBytes, section: "section table", record: i)
            let kindCode = try e.u32("the section kind")
            let flags = try e.u32("the section flags")
            let offset = try e.size("the section offset")
            let size = try e.size("the section size")
            let crc = try e.u32("the section CRC32C")
            guard let end = CheckedSize.add(offset, size), end <= fileBytes else {
                throw .truncated(e.location(entryOffset + 8), needed: offset &+ size, available: fileBytes)
            }
            guard let kind = SectionKind(rawValue: kindCode) else {
                guard flags & OXCFormat.criticalSectionFlag == 0 else {
                    throw e.unsupported("section kind \(kindCode) is marked critical and this onnxc does not know it", at: entryOffset)
                }
                ranges.append((offset, end, "section \(kindCode)"))
                // Unknown sections are skipped, but a corrupt file is still a corrupt file.
                try verify(SectionEntry(kind: kindCode, offset: offset, size: size, crc: crc, entryOffset: entryOffset),
                           name: "unknown kind \(kindCode)")
                continue
            }
            guard sections[kind] == nil else {
                throw e.malformed("a second \(kind.name) section", at: entryOffset)
            }
            sections[kind] = SectionEntry(kind: kindCode, offset: offset, size: size, crc: crc, entryOffset: entryOffset)
            ranges.append((offset, end, kind.name))
        }
        for kind in SectionKind.allCases where sections[kind] == nil {
            throw FormatError.malformed(FormatLocation(section: "section table", byteOffset: tableOffset),
                                        reason: "the \(kind.name) section is missing")
        }
        let sorted = ranges.filter { $0.end > $0.start }.sorted { $0.start < $1.start }
        for (a, b) in zip(sorted, sorted.dropFirst()) where b.start < a.end {
            throw FormatError.malformed(FormatLocation(section: b.name, byteOffset: b.start),
                                        reason: "the \(b.name) overlaps the \(a.name)")
        }
        for kind in SectionKind.allCases {
            guard let entry = sections[kind] else { continue }
            if kind == .constants {
                guard entry.offset % OXCFormat.constantAlignment == 0 else {
                    throw FormatError.malformed(FormatLocation(section: kind.name, byteOffset: entry.offset),
                                                reason: "the constants section does not start at a multiple of \(OXCFormat.constantAlignment)")
                }
                if !options.verifyConstantsChecksum { continue }
                if deferConstantsCheck, entry.size >= ConstantsCheck.minimumBytes {
                    constantsCheck = ConstantsCheck(storage: storage, bytes: UnsafeRawBufferPointer(start: base + entry.offset, count: entry.size),
                                                    expected: entry.crc, location: FormatLocation(section: kind.name, byteOffset: entry.offset))
                    continue
                }
            }
            try verify(entry, name: kind.name)
        }
    }

    private func verify(_ entry: SectionEntry, name: String) throws(FormatError) {
        // Large sections (the constants) on every core: the check touches each weight page once, so it is bound
        // by page faults and memory bandwidth, not by the crc32 instruction.
        let computed = CRC32C.checksum(UnsafeRawBufferPointer(start: base + entry.offset, count: entry.size), maxThreads: nil)
        guard computed == entry.crc else {
            throw .checksumMismatch(FormatLocation(section: name, byteOffset: entry.offset), stored: entry.crc, computed: computed)
        }
    }

    // MARK: Strings, memory plan, metadata

    private mutating func readStrings() throws(FormatError) {
        var c = cursor(.strings)
        let count = try c.count("the string count", elementBytes: 4)
        var strings: [String] = []
        strings.reserveCapacity(count)
        for i in 0..<count {
            c.record = i
            let at = c.position
            let length = Int(try c.u32("a string's length"))
            let bytes = try c.bytes(length, "a string's bytes")
            guard let s = String(validating: bytes, as: UTF8.self) else { throw c.malformed("string \(i) is not valid UTF-8", at: at) }
            strings.append(s)
        }
        self.strings = strings
    }

    private func string(_ c: inout Cursor, _ what: String) throws(FormatError) -> String {
        let at = c.position
        let index = Int(try c.u32(what))
        guard index < strings.count else {
            throw c.malformed("\(what) is string \(index), but there are \(strings.count) strings", at: at)
        }
        return strings[index]
    }

    private func readMemoryPlan() throws(FormatError) -> Int {
        var section = cursor(.memoryPlan)
        var r = try section.record(0)
        return try r.size("the arena size")
    }

    private func readMetadata() throws(FormatError) -> ProgramMetadata {
        var section = cursor(.metadata)
        var r = try section.record(0)
        let compiler = try string(&r, "the compiler")
        let sourceName = try string(&r, "the source name")
        let producer = try string(&r, "the producer")
        let optimization = try string(&r, "the optimization")
        let hashLength = try r.count("the source hash length", elementBytes: 1)
        let hash = Array(try r.bytes(hashLength, "the source hash"))
        let propertyCount = try r.count("the property count", elementBytes: 8)
        var properties: [StringPair] = []
        for _ in 0..<propertyCount {
            let key = try string(&r, "a property key")
            properties.append(StringPair(key, try string(&r, "a property value")))
        }
        return ProgramMetadata(compiler: compiler, sourceSHA256: hash, sourceName: sourceName, producer: producer,
                               optimization: optimization, properties: properties)
    }

    // MARK: Tensors

    private func dtype(_ c: inout Cursor, _ what: String) throws(FormatError) -> DType {
        let at = c.position
        let code = try c.u32(what)
        guard let dtype = Int32(exactly: code).flatMap(DType.init(rawValue:)) else {
            throw c.unsupported("\(what) has the unknown data type code \(code)", at: at)
        }
        return dtype
    }

    private func readTensors() throws(FormatError) -> [ProgramTensor] {
        var section = cursor(.tensors)
        let count = try section.count("the tensor count", elementBytes: 4)
        guard count <= Int(Int32.max) else { throw section.malformed("\(count) tensors is more than tensor ids can name") }
        let constants = sections[.constants].map { ($0.offset, $0.size) } ?? (0, 0)
        var tensors: [ProgramTensor] = []
        for i in 0..<count {
            var r = try section.record(i)
            tensors.append(try readTensor(&r, constantsOffset: constants.0, constantsBytes: constants.1))
        }
        return tensors
    }

    private func readTensor(_ r: inout Cursor, constantsOffset: Int, constantsBytes: Int) throws(FormatError) -> ProgramTensor {
        let name = try string(&r, "the tensor name")
        let dtype = try dtype(&r, "the tensor")
        let storageAt = r.position
        let storageCode = try r.u32("the storage class")
        let rankAt = r.position
        let rank = try r.i32("the rank")
        var shape: Shape?
        if rank >= 0 {
            guard Int(rank) <= r.remaining / 12 else { throw r.malformed("rank \(rank) needs more bytes than the record has", at: rankAt) }
            var dims: [Dim] = []
            dims.reserveCapacity(Int(rank))
            for _ in 0..<Int(rank) {
                let at = r.position
                let kind = try r.u32("a dim kind")
                let value = try r.i64("a dim value")
                switch DimCode(rawValue: kind) {
                case .fixed:
                    guard value >= 0 else { throw r.malformed("dim \(value) of tensor '\(name)' is negative", at: at) }
                    dims.append(.fixed(value))
                case .symbolic:
                    guard value >= 0, value < Int64(strings.count) else {
                        throw r.malformed("symbolic dim of tensor '\(name)' is string \(value), but there are \(strings.count) strings", at: at)
                    }
                    dims.append(.symbolic(strings[Int(value)]))
                case .unknown:
                    dims.append(.unknown)
                case nil:
                    throw r.unsupported("dim kind \(kind) of tensor '\(name)' is unknown", at: at)
                }
            }
            shape = Shape(dims)
        } else if rank != -1 {
            throw r.malformed("rank \(rank) of tensor '\(name)' is negative (only -1, unknown rank, is allowed)", at: rankAt)
        }
        let fieldA = r.position
        let a = try r.size("the storage offset")
        let b = try r.size("the storage size")
        let dataDType = try self.dtype(&r, "the constant")
        let dataRank = try r.count("the constant's rank", elementBytes: 8)
        var dataDims: [Int64] = []
        dataDims.reserveCapacity(dataRank)
        for _ in 0..<dataRank {
            let at = r.position
            let d = try r.i64("a constant dim")
            guard d >= 0 else { throw r.malformed("dim \(d) of constant '\(name)' is negative", at: at) }
            dataDims.append(d)
        }
        let layoutAt = r.position
        let layoutCode = try r.u32("the layout code")
        let parameterCount = try r.count("the layout parameter count", elementBytes: 8)
        var parameters: [Int64] = []
        for _ in 0..<parameterCount { parameters.append(try r.i64("a layout parameter")) }

        let storage: ProgramStorage
        switch StorageCode(rawValue: storageCode) {
        case .dynamic:
            storage = .dynamic
        case .input:
            guard a <= Int(Int32.max) else { throw r.malformed("input index \(a) of tensor '\(name)' is too large", at: fieldA) }
            storage = .input(index: a)
        case .arena:
            guard a % OXCFormat.constantAlignment == 0 else {
                throw r.malformed("arena offset \(a) of tensor '\(name)' is not a multiple of \(OXCFormat.constantAlignment)", at: fieldA)
            }
            guard let end = CheckedSize.add(a, b), end <= arenaBytes else {
                throw r.malformed("arena slot \(a)+\(b) of tensor '\(name)' is outside the \(arenaBytes)-byte arena", at: fieldA)
            }
            storage = .arena(offset: a, byteCount: b)
        case .window:
            guard let extent = Self.windowExtent(dtype: dtype, shape: shape, offset: a, rowStride: b) else {
                throw r.malformed("window of tensor '\(name)' (offset \(a), row stride \(b)) needs a fixed-width dtype, static dims, "
                                  + "an element-aligned offset and a stride of at least its last dim", at: fieldA)
            }
            guard extent <= arenaBytes else {
                throw r.malformed("window of tensor '\(name)' ends at byte \(extent), outside the \(arenaBytes)-byte arena", at: fieldA)
            }
            storage = .window(offset: a, rowStride: b)
        case .constant:
            guard a % OXCFormat.constantAlignment == 0 else {
                throw r.malformed("constant '\(name)' at offset \(a) is not \(OXCFormat.constantAlignment)-byte aligned", at: fieldA)
            }
            guard let end = CheckedSize.add(a, b), end <= constantsBytes else {
                throw r.malformed("constant '\(name)' (\(b) bytes at \(a)) is outside the \(constantsBytes)-byte constants section", at: fieldA)
            }
            let data = try tensorData(dtype: dataDType, dims: dataDims, payloadAt: constantsOffset + a, count: b,
                                      copy: false, name: "constant '\(name)'", cursor: r, fieldAt: fieldA)
            let layout: ConstantLayout
            if layoutCode == ConstantLayoutCode.plain {
                guard parameters.isEmpty else {
                    throw r.malformed("plain layout of constant '\(name)' has \(parameters.count) parameters", at: layoutAt)
                }
                layout = .plain
            } else if layoutCode == ConstantLayoutCode.halfPrecision {
                guard let inner = parameters.first, inner >= 0, inner <= Int64(UInt32.max), UInt32(inner) != ConstantLayoutCode.halfPrecision,
                      parameters.count - 1 == (UInt32(inner) == ConstantLayoutCode.plain ? 0 : ConstantLayoutCode.parameterCount(UInt32(inner)) ?? -1),
                      dataDType == .float16 else {
                    throw r.malformed("float16 layout of constant '\(name)' has an unknown inner layout or \(parameters.count) parameters", at: layoutAt)
                }
                layout = .packed(code: layoutCode, parameters: parameters)
            } else if let expected = ConstantLayoutCode.parameterCount(layoutCode) {
                guard parameters.count == expected else {
                    throw r.malformed("layout \(layoutCode) of constant '\(name)' has \(parameters.count) parameters, not \(expected)", at: layoutAt)
                }
                layout = .packed(code: layoutCode, parameters: parameters)
            } else {
                throw r.unsupported("constant '\(name)' uses layout code \(layoutCode), unknown to this onnxc", at: layoutAt)
            }
            storage = .constant(data, layout: layout)
        case nil:
            throw r.unsupported("storage class \(storageCode) of tensor '\(name)' is unknown", at: storageAt)
        }
        return ProgramTensor(name: name, dtype: dtype, shape: shape, storage: storage)
    }

    /// The arena byte just past a window's last element (its rows: every dim but the last, each `rowStride`
    /// elements after the one before), or nil when the window is not well formed. Overflow-checked.
    static func windowExtent(dtype: DType, shape: Shape?, offset: Int, rowStride: Int) -> Int? {
        guard dtype != .string, let width = dtype.byteCount(elements: 1), width > 0, dtype.byteCount(elements: 2) == 2 * width,
              let dims = shape?.fixedDims, let last = dims.last, let count = CheckedSize.elementCount(dims),
              offset % width == 0, Int64(rowStride) >= last else { return nil }
        guard count > 0 else { return offset }
        let rows = count / Int(last)
        guard let span = CheckedSize.multiply(rows - 1, rowStride), let elements = CheckedSize.add(span, Int(last)),
              let bytes = CheckedSize.multiply(elements, width) else { return nil }
        return CheckedSize.add(offset, bytes)
    }

    /// A tensor value whose `count` payload bytes start at absolute offset `payloadAt`, checked against its
    /// dtype and dims. Byte payloads are slices of the file (`copy: false`) or fresh aligned copies.
    private func tensorData(dtype: DType, dims: [Int64], payloadAt: Int, count: Int, copy: Bool, name: String,
                            cursor r: Cursor, fieldAt: Int) throws(FormatError) -> TensorData {
        guard let elements = CheckedSize.elementCount(dims) else {
            throw r.malformed("dims \(dims) of \(name) overflow", at: fieldAt)
        }
        let payload: TensorPayload
        if dtype == .string {
            let (lengthBytes, overflow) = elements.multipliedReportingOverflow(by: 8)
            guard !overflow, lengthBytes <= count else {
                throw r.malformed("\(name) has \(elements) strings but only \(count) payload bytes", at: fieldAt)
            }
            var strings: [[UInt8]] = []
            strings.reserveCapacity(elements)
            var position = payloadAt + lengthBytes
            let end = payloadAt + count
            for i in 0..<elements {
                let length = UInt64(littleEndian: (base + payloadAt + 8 * i).loadUnaligned(as: UInt64.self))
                guard let n = Int(exactly: length), n <= end - position else {
                    throw r.malformed("string \(i) of \(name) (\(length) bytes) runs past its payload", at: payloadAt + 8 * i)
                }
                strings.append(Array(UnsafeRawBufferPointer(start: base + position, count: n)))
                position += n
            }
            guard position == end else {
                throw r.malformed("\(name) has \(end - position) payload bytes after its last string", at: position)
            }
            payload = .strings(strings)
        } else {
            guard let expected = dtype.byteCount(elements: elements) else {
                throw r.malformed("\(name) has data type \(dtype.onnxName), which has no packed size", at: fieldAt)
            }
            guard expected == count else {
                throw r.malformed("\(name) (\(dtype.onnxName) \(dims)) needs \(expected) bytes but has \(count)", at: fieldAt)
            }
            let slice: ByteSlice?
            if copy {
                slice = ByteSlice(copying: Array(UnsafeRawBufferPointer(start: base + payloadAt, count: count)))
            } else {
                slice = ByteSlice(storage, offset: payloadAt, count: count)
            }
            guard let slice else { throw r.malformed("\(name) payload is outside the file", at: fieldAt) }
            payload = .bytes(slice)
        }
        do {
            return try TensorData(dtype: dtype, dims: dims, payload: payload)
        } catch {
            throw r.malformed("\(name): \(error.description)", at: fieldAt)
        }
    }

    // MARK: Graphs, ops, attributes

    private func ids(_ c: inout Cursor, _ what: String, optional: Bool) throws(FormatError) -> [TensorID] {
        let count = try c.count("the number of \(what)", elementBytes: 4)
        var ids: [TensorID] = []
        ids.reserveCapacity(count)
        for _ in 0..<count {
            let at = c.position
            let id = try c.i32("a tensor id")
            guard (id >= 0 && Int(id) < tensorCount) || (optional && id == Program.omitted) else {
                throw c.malformed("\(what) name tensor \(id), but there are \(tensorCount) tensors"
                                  + (optional ? "" : " (and -1 is not allowed here)"), at: at)
            }
            ids.append(id)
        }
        return ids
    }

    private func readGraphsAndOps() throws(FormatError) -> [ProgramGraph] {
        var graphSection = cursor(.graphs)
        var opSection = cursor(.ops)
        let graphCount = try graphSection.count("the graph count", elementBytes: 4)
        guard graphCount >= 1 else { throw graphSection.malformed("there is no main graph") }
        let opCount = try opSection.count("the op count", elementBytes: 4)

        var records: [GraphRecord] = []
        var nextOp = 0
        for g in 0..<graphCount {
            var r = try graphSection.record(g)
            let name = try string(&r, "the graph name")
            let firstAt = r.position
            let firstOp = Int(try r.u32("the first op"))
            let count = Int(try r.u32("the op count"))
            guard firstOp == nextOp, count <= opCount - nextOp else {
                throw r.malformed("graph '\(name)' has ops \(firstOp)..<\(firstOp + count); expected them to start at \(nextOp) and end by \(opCount)", at: firstAt)
            }
            nextOp += count
            let inputs = try ids(&r, "graph '\(name)' inputs", optional: false)
            let outputs = try ids(&r, "graph '\(name)' outputs", optional: false)
            records.append(GraphRecord(name: name, firstOp: firstOp, opCount: count, inputs: inputs, outputs: outputs))
        }
        guard nextOp == opCount else {
            throw graphSection.malformed("the graphs hold \(nextOp) ops but the ops section has \(opCount)")
        }

        let attributes = sections[.attributes].map { ($0.offset, $0.size) } ?? (0, 0)
        var graphs: [ProgramGraph] = []
        var children: [[Int]] = []
        var opIndex = 0
        for record in records {
            var ops: [ProgramOp] = []
            var referenced: [Int] = []
            for _ in 0..<record.opCount {
                var r = try opSection.record(opIndex)
                opIndex += 1
                let opcodeAt = r.position
                let code = try r.u32("the opcode")
                guard let opcode = Opcode(rawValue: code) else {
                    if code == 0 { throw r.malformed("opcode 0 is invalid", at: opcodeAt) }
                    throw r.unsupported("opcode \(code) is newer than this onnxc (it knows 1...\(Opcodes.table.count))", at: opcodeAt)
                }
                let opset = try r.i32("the opset")
                let name = try string(&r, "the op name")
                let listAt = r.position
                let listOffset = try r.size("the attribute offset")
                let listBytes = try r.size("the attribute list size")
                guard let listEnd = CheckedSize.add(listOffset, listBytes), listEnd <= attributes.1 else {
                    throw r.malformed("attribute list \(listOffset)+\(listBytes) of op '\(name)' is outside the attributes section", at: listAt)
                }
                let inputs = try ids(&r, "op '\(name)' inputs", optional: true)
                let outputs = try ids(&r, "op '\(name)' outputs", optional: true)
                var a = Cursor(base: base, position: attributes.0 + listOffset, end: attributes.0 + listEnd,
                               section: SectionKind.attributes.name, record: opIndex - 1)
                let attrs = try readAttributes(&a, op: name, graphCount: graphCount, referenced: &referenced)
                ops.append(ProgramOp(name: name, opcode: opcode, opset: opset, inputs: inputs, outputs: outputs, attributes: attrs))
            }
            graphs.append(ProgramGraph(name: record.name, inputs: record.inputs, outputs: record.outputs, ops: ops))
            children.append(referenced)
        }
        try checkNesting(children, names: records.map(\.name))
        return graphs
    }

    /// Subgraph references must form a DAG no deeper than `maxGraphNestingDepth` (iterative: no recursion).
    private func checkNesting(_ children: [[Int]], names: [String]) throws(FormatError) {
        // 0 unvisited, 1 on the stack, 2 done.
        var state = [UInt8](repeating: 0, count: children.count)
        var height = [Int](repeating: 1, count: children.count)
        let location = FormatLocation(section: SectionKind.ops.name, byteOffset: sections[.ops]?.offset ?? 0)
        for root in children.indices where state[root] == 0 {
            var stack: [(graph: Int, next: Int)] = [(root, 0)]
            state[root] = 1
            while let top = stack.last {
                let (g, next) = top
                if next < children[g].count {
                    stack[stack.count - 1].next += 1
                    let child = children[g][next]
                    switch state[child] {
                    case 1:
                        throw FormatError.malformed(location, reason: "graph '\(names[g])' contains graph '\(names[child])', which contains it: subgraphs form a cycle")
                    case 0:
                        state[child] = 1
                        stack.append((child, 0))
                    default:
                        break
                    }
                } else {
                    stack.removeLast()
                    state[g] = 2
                    height[g] = 1 + (children[g].map { height[$0] }.max() ?? 0)
                    guard height[g] <= OXCFormat.maxGraphNestingDepth else {
                        throw FormatError.malformed(location, reason: "subgraphs under graph '\(names[g])' nest \(height[g]) deep, more than \(OXCFormat.maxGraphNestingDepth)")
                    }
                }
            }
        }
    }

    private func readAttributes(_ a: inout Cursor, op: String, graphCount: Int,
                                referenced: inout [Int]) throws(FormatError) -> [ProgramAttribute] {
        let count = try a.count("the attribute count of op '\(op)'", elementBytes: 16)
        var attributes: [ProgramAttribute] = []
        for _ in 0..<count {
            let name = try string(&a, "the attribute name")
            let tagAt = a.position
            let tagCode = try a.u32("the attribute kind")
            let length = try a.size("the attribute value size")
            try a.need(length, "the value of attribute '\(name)'")
            var v = Cursor(base: base, position: a.position, end: a.position + length, section: a.section, record: a.record)
            a.position += length
            guard let tag = AttributeTag(rawValue: tagCode) else {
                throw a.unsupported("attribute '\(name)' of op '\(op)' has the unknown kind \(tagCode)", at: tagAt)
            }
            let value = try readValue(tag, &v, attribute: name, graphCount: graphCount, referenced: &referenced)
            guard v.remaining == 0 else {
                throw v.malformed("attribute '\(name)' of op '\(op)' has \(v.remaining) bytes after its value")
            }
            attributes.append(ProgramAttribute(name, value))
        }
        guard a.remaining == 0 else { throw a.malformed("the attribute list of op '\(op)' has \(a.remaining) extra bytes") }
        return attributes
    }

    private func graphIndex(_ v: inout Cursor, attribute: String, graphCount: Int) throws(FormatError) -> Int {
        let at = v.position
        let g = Int(try v.u32("a graph index"))
        guard g < graphCount else {
            throw v.malformed("attribute '\(attribute)' names graph \(g), but there are \(graphCount) graphs", at: at)
        }
        return g
    }

    private func readValue(_ tag: AttributeTag, _ v: inout Cursor, attribute: String, graphCount: Int,
                           referenced: inout [Int]) throws(FormatError) -> ProgramAttributeValue {
        switch tag {
        case .float:
            return .float(Float(bitPattern: try v.u32("a float")))
        case .int:
            return .int(try v.i64("an int"))
        case .string:
            return .string(try string(&v, "a string attribute"))
        case .tensor:
            return .tensor(try tensorValue(&v, attribute: attribute))
        case .graph:
            let g = try graphIndex(&v, attribute: attribute, graphCount: graphCount)
            referenced.append(g)
            return .graph(g)
        case .floats:
            let n = try v.count("a float list's length", elementBytes: 4)
            var values: [Float] = []
            values.reserveCapacity(n)
            for _ in 0..<n { values.append(Float(bitPattern: try v.u32("a float"))) }
            return .floats(values)
        case .ints:
            let n = try v.count("an int list's length", elementBytes: 8)
            var values: [Int64] = []
            values.reserveCapacity(n)
            for _ in 0..<n { values.append(try v.i64("an int")) }
            return .ints(values)
        case .strings:
            let n = try v.count("a string list's length", elementBytes: 4)
            var values: [String] = []
            values.reserveCapacity(n)
            for _ in 0..<n { values.append(try string(&v, "a string in a list")) }
            return .strings(values)
        case .tensors:
            let n = try v.count("a tensor list's length", elementBytes: 16)
            var values: [TensorData] = []
            for _ in 0..<n { values.append(try tensorValue(&v, attribute: attribute)) }
            return .tensors(values)
        case .graphs:
            let n = try v.count("a graph list's length", elementBytes: 4)
            var values: [Int] = []
            values.reserveCapacity(n)
            for _ in 0..<n { values.append(try graphIndex(&v, attribute: attribute, graphCount: graphCount)) }
            referenced.append(contentsOf: values)
            return .graphs(values)
        case .type:
            let at = v.position
            let kind = try v.u32("a value type kind")
            let dtype = try self.dtype(&v, "the value type")
            switch ValueTypeCode(rawValue: kind) {
            case .absent: return .type(nil)
            case .tensor: return .type(.tensor(dtype))
            case .sequence: return .type(.sequence(dtype))
            case nil: throw v.unsupported("value type kind \(kind) of attribute '\(attribute)' is unknown", at: at)
            }
        }
    }

    /// A tensor inside an attribute: dtype, rank, dims, u64 payload size, payload (copied: attribute tensors
    /// are small and kernels may want them aligned).
    private func tensorValue(_ v: inout Cursor, attribute: String) throws(FormatError) -> TensorData {
        let fieldAt = v.position
        let dtype = try self.dtype(&v, "tensor attribute '\(attribute)'")
        let rank = try v.count("the rank of tensor attribute '\(attribute)'", elementBytes: 8)
        var dims: [Int64] = []
        dims.reserveCapacity(rank)
        for _ in 0..<rank {
            let at = v.position
            let d = try v.i64("a dim")
            guard d >= 0 else { throw v.malformed("dim \(d) of tensor attribute '\(attribute)' is negative", at: at) }
            dims.append(d)
        }
        let count = try v.size("the payload size of tensor attribute '\(attribute)'")
        let payloadAt = v.position
        try v.need(count, "the payload of tensor attribute '\(attribute)'")
        v.position += count
        return try tensorData(dtype: dtype, dims: dims, payloadAt: payloadAt, count: count, copy: true,
                              name: "tensor attribute '\(attribute)'", cursor: v, fieldAt: fieldAt)
    }
}
