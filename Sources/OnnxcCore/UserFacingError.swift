/// An error a person will read: what went wrong, where (node, op, tensor), and what to do about it.
///
/// The CLI prints every one the same way — `error: FILE: what (where: …) — hint` — so each module's typed
/// error only has to fill in the three parts.
public protocol UserFacingError: Error, CustomStringConvertible {
    var what: String { get }
    var location: String? { get }
    var hint: String? { get }
}

extension UserFacingError {
    public var description: String {
        var text = what
        if let location { text += " (where: \(location))" }
        if let hint { text += " — \(hint)" }
        return text
    }
}

extension FileError: UserFacingError {
    public var what: String {
        switch self {
        case .cannotOpen(let path, let reason): "\(path): cannot open: \(reason)"
        case .notARegularFile(let path): "\(path): not a regular file"
        case .cannotMap(let path, let reason): "\(path): cannot memory-map: \(reason)"
        case .cannotWrite(let path, let reason): "\(path): cannot write: \(reason)"
        }
    }

    public var location: String? { nil }

    public var hint: String? {
        switch self {
        case .cannotOpen: "check the path and permissions"
        case .notARegularFile: "pass a file, not a directory or device"
        case .cannotMap: "check the file is readable and the disk is healthy"
        case .cannotWrite: "check the folder exists, is writable and has space"
        }
    }
}
