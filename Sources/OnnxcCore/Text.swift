#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Text helpers the CLI and the runtime share, so that neither links Foundation for them: Foundation added
/// 0.5–1 ms to every process start of the statically linked binary (its initializers, relocations, and thousands of
/// protocol conformance records the Swift runtime scans on each new dynamic cast), a tenth of `onnxc run` on bert_tiny.
public enum Text {
    /// printf-style formatting of numbers (`%.2f`, `%+.1f`, `%02x`, `%.3g`, `%-5ld` for an `Int`, …), as C's
    /// `snprintf` does it. Strings go through interpolation, not `%s`: a Swift `String` is not a C variadic argument.
    public static func format(_ format: String, _ arguments: any CVarArg...) -> String {
        withVaList(arguments) { list in
            // Formatted numbers are short; one retry covers any longer result exactly.
            var buffer = [CChar](repeating: 0, count: 128)
            let needed = Int(vsnprintf(&buffer, buffer.count, format, list))
            if needed < buffer.count { return String(decoding: buffer.prefix(max(needed, 0)).map { UInt8(bitPattern: $0) }, as: UTF8.self) }
            return withVaList(arguments) { again in
                buffer = [CChar](repeating: 0, count: needed + 1)
                _ = vsnprintf(&buffer, buffer.count, format, again)
                return String(decoding: buffer.prefix(needed).map { UInt8(bitPattern: $0) }, as: UTF8.self)
            }
        }
    }

    /// The last component of a slash-separated path (`a/b/c.onnx` → `c.onnx`; trailing slashes ignored).
    public static func lastPathComponent(_ path: String) -> String {
        var trimmed = Substring(path)
        while trimmed.count > 1, trimmed.last == "/" { trimmed.removeLast() }
        guard let slash = trimmed.lastIndex(of: "/"), trimmed.count > 1 else { return String(trimmed) }
        return String(trimmed[trimmed.index(after: slash)...])
    }
}

extension StringProtocol {
    /// The text without leading and trailing characters from `set`.
    public func trimming(_ set: Set<Character>) -> String {
        var slice = Substring(self)
        while let first = slice.first, set.contains(first) { slice.removeFirst() }
        while let last = slice.last, set.contains(last) { slice.removeLast() }
        return String(slice)
    }

    /// The text without leading and trailing Unicode whitespace (spaces, tabs, line breaks).
    public func trimmingWhitespace() -> String {
        let text = String(self), scalars = text.unicodeScalars
        guard let start = scalars.firstIndex(where: { !$0.properties.isWhitespace }),
              let end = scalars.lastIndex(where: { !$0.properties.isWhitespace }) else { return "" }
        return String(scalars[start...end])
    }
}
