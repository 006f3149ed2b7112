#if canImport(Glibc)
import Glibc
#endif
import OnnxcCore
import OnnxcIR

/// Resolves `external_data` references of an untrusted model: paths must stay inside the model's folder,
/// and each file is memory-mapped once and shared by all tensors that live in it.
final class ExternalDataResolver {
    private let directory: String
    private var resolvedDirectory: String?
    private var mapped: [String: ByteStorage] = [:]

    /// `directory` is the folder of the model file; relative locations are taken from there.
    init(directory: String) {
        self.directory = directory
    }

    func read(_ reference: ExternalDataRef, tensor: String, byteCount: Int) throws(FrontendError) -> ByteSlice {
        func fail(_ reason: String) -> FrontendError { .externalData(tensor: tensor, file: reference.location, reason: reason) }
        let location = reference.location
        if location.hasPrefix("/") { throw fail("absolute paths are not allowed; the file must be inside the model's folder") }
        if location.split(separator: "/", omittingEmptySubsequences: false).contains("..") {
            throw fail("'..' is not allowed; the file must be inside the model's folder")
        }
        if location.contains("\0") { throw fail("the path contains a NUL byte") }
        let root = try modelDirectory(fail: fail)
        let candidate = root + "/" + location
        guard let real = realPath(candidate) else {
            throw fail(errno == ENOENT ? "file not found next to the model" : "cannot resolve path: \(String(cString: strerror(errno)))")
        }
        // A symlink could point anywhere; what counts is where the path really leads.
        guard real.hasPrefix(root + "/") else { throw fail("the path leaves the model's folder (through a symlink)") }

        let storage: ByteStorage
        if let cached = mapped[real] {
            storage = cached
        } else {
            do {
                storage = try MappedFile.map(path: real)
            } catch {
                throw fail(error.what)
            }
            mapped[real] = storage
        }
        let length = reference.length >= 0 ? reference.length : byteCount
        if length != byteCount {
            throw fail("length \(length) does not match the \(byteCount) bytes that the tensor's type and dims need")
        }
        guard let end = CheckedSize.add(reference.offset, length), end <= storage.count else {
            throw fail("the file is \(storage.count) bytes, too short for offset \(reference.offset) + length \(length)")
        }
        guard let slice = ByteSlice(storage, offset: reference.offset, count: length) else {
            throw fail("offset \(reference.offset) + length \(length) is outside the file")
        }
        return slice
    }

    private func modelDirectory(fail: (String) -> FrontendError) throws(FrontendError) -> String {
        if let resolvedDirectory { return resolvedDirectory }
        guard let real = realPath(directory.isEmpty ? "." : directory) else {
            throw fail("cannot resolve the model's folder \(directory)")
        }
        let root = real == "/" ? "" : real
        resolvedDirectory = root
        return root
    }

    private func realPath(_ path: String) -> String? {
        guard let resolved = realpath(path, nil) else { return nil }
        defer { free(resolved) }
        return String(cString: resolved)
    }
}
