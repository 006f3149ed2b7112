import OnnxcCore

/// Writes to stdout and stderr through the file descriptors (C's `stdout` globals are not concurrency-safe
/// in Swift 6), so multi-megabyte dumps arrive whole.
enum Output {
    static func write(_ text: String) { writeAll(1, text) }

    static func error(_ message: String) { writeAll(2, "error: " + message + "\n") }

    static func note(_ message: String) { writeAll(2, message + "\n") }

    /// Text for stderr as it is (a progress bar's carriage returns).
    static func progress(_ text: String) { writeAll(2, text) }

    /// A closed pipe (`| head`) just ends the output, as with other Unix tools.
    private static func writeAll(_ fd: Int32, _ text: String) {
        var text = text
        text.withUTF8 { _ = FileDescriptor.writeAll(fd, UnsafeRawBufferPointer($0)) }
    }
}
