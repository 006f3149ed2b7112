public import OnnxcCore

/// Where in a `.oxc` file something went wrong: the section, the record inside it (if any) and the absolute
/// byte offset from the start of the file.
public struct FormatLocation: Sendable, Equatable, CustomStringConvertible {
    public var section: String
    public var record: Int?
    public var byteOffset: Int

    public init(section: String, record: Int? = nil, byteOffset: Int) {
        self.section = section
        self.record = record
        self.byteOffset = byteOffset
    }

    public var description: String {
        var text = "section \(section)"
        if let record { text += ", record \(record)" }
        return text + ", byte offset \(byteOffset)"
    }
}

/// Everything that can go wrong reading or writing a `.oxc` file.
public enum FormatError: Error, Sendable, Equatable {
    /// The first 8 bytes are not the `.oxc` magic.
    case notAnOXCFile(byteCount: Int)
    /// The file's major version is not one this reader understands.
    case unsupportedVersion(major: UInt16, minor: UInt16)
    /// The file ends before a structure it declares.
    case truncated(FormatLocation, needed: Int, available: Int)
    /// A section's (or the header's) CRC32C does not match its bytes.
    case checksumMismatch(FormatLocation, stored: UInt32, computed: UInt32)
    /// A value is out of range or inconsistent with the rest of the file.
    case malformed(FormatLocation, reason: String)
    /// A valid construct from a newer onnxc this reader does not know (opcode, layout, attribute kind…).
    case unsupported(FormatLocation, reason: String)
    /// The program cannot be written (a count or size beyond what the format encodes, or an invalid value).
    case unwritable(reason: String)
    /// Reading or writing the file failed.
    case file(FileError)
}

extension FormatError: UserFacingError {
    public var what: String {
        switch self {
        case .notAnOXCFile(let count):
            count < OXCFormat.magic.count ? "not a compiled onnxc program: only \(count) bytes"
                : "not a compiled onnxc program (.oxc): the file does not start with the .oxc magic bytes"
        case .unsupportedVersion(let major, let minor):
            major > OXCFormat.majorVersion
                ? ".oxc format version \(major).\(minor) is newer than this onnxc reads (\(OXCFormat.majorVersion).x)"
                : ".oxc format version \(major).\(minor) is not supported (this onnxc reads \(OXCFormat.majorVersion).x)"
        case .truncated(_, let needed, let available):
            "the .oxc file is truncated: \(needed) bytes needed, \(available) present"
        case .checksumMismatch(_, let stored, let computed):
            "the .oxc file is corrupt: CRC32C is 0x\(hex(computed)), the file says 0x\(hex(stored))"
        case .malformed(_, let reason): "the .oxc file is invalid: \(reason)"
        case .unsupported(_, let reason): "the .oxc file needs a newer onnxc: \(reason)"
        case .unwritable(let reason): "cannot write the program as .oxc: \(reason)"
        case .file(let error): error.what
        }
    }

    public var location: String? {
        switch self {
        case .truncated(let where_, _, _), .checksumMismatch(let where_, _, _), .malformed(let where_, _),
             .unsupported(let where_, _):
            where_.description
        case .notAnOXCFile, .unsupportedVersion, .unwritable, .file: nil
        }
    }

    public var hint: String? {
        switch self {
        case .notAnOXCFile: "pass a file written by `onnxc compile`"
        case .unsupportedVersion(let major, _):
            major > OXCFormat.majorVersion
                ? "run it with a newer onnxc, or recompile the model with this one (`onnxc compile`)"
                : "recompile the model with `onnxc compile`"
        case .truncated, .checksumMismatch, .malformed:
            "the file was damaged or not fully written; recompile the model with `onnxc compile`"
        case .unsupported:
            "run it with a newer onnxc, or recompile the model with this one (`onnxc compile`)"
        case .unwritable: "this is a compiler bug or a model beyond the format's limits; please report it"
        case .file(let error): error.hint
        }
    }

    /// The location, when the error has one.
    public var formatLocation: FormatLocation? {
        switch self {
        case .truncated(let where_, _, _), .checksumMismatch(let where_, _, _), .malformed(let where_, _),
             .unsupported(let where_, _):
            where_
        case .notAnOXCFile, .unsupportedVersion, .unwritable, .file: nil
        }
    }
}

private func hex(_ value: UInt32) -> String {
    let digits = String(value, radix: 16, uppercase: true)
    return String(repeating: "0", count: max(0, 8 - digits.count)) + digits
}
