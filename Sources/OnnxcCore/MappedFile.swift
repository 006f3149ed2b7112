#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Errors from reading and writing files, with the path and the system's reason.
public enum FileError: Error, Sendable, Equatable {
    case cannotOpen(path: String, reason: String)
    case notARegularFile(path: String)
    case cannotMap(path: String, reason: String)
    case cannotWrite(path: String, reason: String)


    static func systemReason() -> String { String(cString: strerror(errno)) }
}

/// Maps a whole file read-only, so that weights are read in place and only the pages touched are loaded.
public enum MappedFile {
    /// Mappings this large get the huge-page advice (the size one page-table entry maps at the PMD level with
    /// 4 KiB pages).
    static let hugePageBytes = 2 << 20

    /// The file's bytes as shared storage; an empty file gives empty storage.
    public static func map(path: String) throws(FileError) -> ByteStorage {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw .cannotOpen(path: path, reason: FileError.systemReason()) }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0 else { throw .cannotOpen(path: path, reason: FileError.systemReason()) }
        guard (info.st_mode & S_IFMT) == S_IFREG else { throw .notARegularFile(path: path) }
        let size = Int(info.st_size)
        guard size > 0 else { return ByteStorage(base: nil, count: 0, owner: nil) }
        guard let region = mmap(nil, size, PROT_READ, MAP_PRIVATE, fd, 0), region != MAP_FAILED else {
            throw .cannotMap(path: path, reason: FileError.systemReason())
        }
        #if os(Linux)
        // Pages the file does not yet have in the page cache are then read in 2 MiB folios and mapped one
        // page-table entry per 2 MiB (THP "madvise" mode, a large-folio filesystem): resnet50's 103 MB .oxc
        // loads from disk in ~37 ms instead of ~50, and later mappings of it fault ~50 times instead of ~1,600.
        // Advice only: where it does not apply the call fails or does nothing, and the mapping works as before.
        if size >= Self.hugePageBytes { _ = madvise(region, size, MADV_HUGEPAGE) }
        #endif
        return ByteStorage(base: UnsafeRawPointer(region), count: size, owner: nil, release: { munmap(region, size) })
    }
}

extension MappedFile {
    /// The file's bytes decoded as UTF-8 (invalid sequences become U+FFFD).
    public static func text(path: String) throws(FileError) -> String {
        let storage = try map(path: path)
        return storage.withUnsafeBytes { String(decoding: $0, as: UTF8.self) }
    }
}

/// Raw descriptor output shared by file writers and the CLI's stdout/stderr.
public enum FileDescriptor {
    /// Writes all of `bytes`, retrying short and interrupted writes. Returns how many bytes were written:
    /// fewer than `bytes.count` means a write failed, and `errno` says why.
    @discardableResult
    public static func writeAll(_ fd: Int32, _ bytes: UnsafeRawBufferPointer) -> Int {
        guard let base = bytes.baseAddress else { return 0 }
        var done = 0
        while done < bytes.count {
            let written = Glibc.write(fd, base + done, bytes.count - done)
            if written < 0 {
                if errno == EINTR { continue }
                return done
            }
            done += written
        }
        return done
    }
}

/// Folders for outputs, made with mkdir(2): FileManager's first use costs a fresh process ~0.3 ms.
public enum Directory {
    /// Creates `path` and any missing parents (`mkdir -p`); an existing folder is fine.
    public static func create(_ path: String) throws(FileError) {
        let bytes = Array(path.utf8)
        let slash = UInt8(ascii: "/")
        // Every prefix that ends before a slash, then the whole path; existing ones answer EEXIST.
        let ends = bytes.indices.filter { $0 > 0 && bytes[$0] == slash } + [bytes.count]
        for end in ends where end > 0 {
            let prefix = String(decoding: bytes[..<end], as: UTF8.self)
            guard mkdir(prefix, 0o755) == 0 || errno == EEXIST else {
                throw .cannotWrite(path: path, reason: FileError.systemReason())
            }
        }
        var info = stat()
        guard stat(path, &info) == 0, (info.st_mode & S_IFMT) == S_IFDIR else {
            throw .cannotWrite(path: path, reason: "it exists and is not a folder")
        }
    }
}

/// Writes a file atomically: into a temporary sibling first, then `rename`, so a failure or a crash never
/// leaves a half-written output under the final name.
public final class AtomicFileWriter {
    public let path: String
    private let temporaryPath: String
    private var fd: Int32
    private var committed = false
    /// Bytes written so far: the offset the next write lands at.
    public private(set) var position = 0

    public init(path: String) throws(FileError) {
        self.path = path
        self.temporaryPath = path + ".tmp-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        fd = open(temporaryPath, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw .cannotWrite(path: path, reason: FileError.systemReason()) }
    }

    /// Appends `bytes`.
    public func write(_ bytes: UnsafeRawBufferPointer) throws(FileError) {
        let written = FileDescriptor.writeAll(fd, bytes)
        position += written
        guard written == bytes.count else { throw .cannotWrite(path: path, reason: FileError.systemReason()) }
    }

    public func write(_ slice: ByteSlice) throws(FileError) {
        try slice.withUnsafeBytes { (buffer) throws(FileError) in try write(buffer) }
    }

    /// Appends `count` zero bytes (alignment padding).
    public func writeZeros(_ count: Int) throws(FileError) {
        guard count > 0 else { return }
        try write(ByteSlice(copying: [UInt8](repeating: 0, count: count)))
    }

    /// Closes and renames into place; `durable` flushes to the disk first, so that the file survives a power loss
    /// too (artifacts: models). Without it the rename still never exposes a partial file, and a small output costs
    /// no journal commit (~1 ms: as long as `onnxc run` of a small model). Without a commit, `deinit` removes the
    /// temporary file.
    public func commit(durable: Bool = true) throws(FileError) {
        guard !committed, fd >= 0 else { return }
        if durable {
            guard fsync(fd) == 0 || errno == EINVAL else { throw .cannotWrite(path: path, reason: FileError.systemReason()) }
        }
        let closed = close(fd)
        fd = -1
        guard closed == 0 else { throw .cannotWrite(path: path, reason: FileError.systemReason()) }
        guard rename(temporaryPath, path) == 0 else { throw .cannotWrite(path: path, reason: FileError.systemReason()) }
        committed = true
    }

    deinit {
        if fd >= 0 { close(fd) }
        if !committed { unlink(temporaryPath) }
    }
}

/// What stat(2) says about a path, for the CLI's checks of its arguments.
public enum FileInfo {
    /// The size in bytes of the regular file at `path` (following symbolic links), or nil.
    public static func size(_ path: String) -> Int? {
        var info = stat()
        guard stat(path, &info) == 0, (info.st_mode & S_IFMT) == S_IFREG else { return nil }
        return Int(info.st_size)
    }

    public static func isDirectory(_ path: String) -> Bool {
        var info = stat()
        return stat(path, &info) == 0 && (info.st_mode & S_IFMT) == S_IFDIR
    }

    public static func exists(_ path: String) -> Bool {
        var info = stat()
        return stat(path, &info) == 0
    }
}

extension Directory {
    /// The names in the folder at `path` (without `.` and `..`), unsorted; nil if it cannot be read.
    public static func entries(_ path: String) -> [String]? {
        guard let stream = opendir(path) else { return nil }
        defer { closedir(stream) }
        var names: [String] = []
        while let entry = readdir(stream) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
            }
            if name != "." && name != ".." { names.append(name) }
        }
        return names
    }
}
