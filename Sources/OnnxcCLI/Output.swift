#if canImport(Glibc)
import Glibc
#endif

/// Writes to stdout and stderr through the file descriptors (C's `stdout` globals are not concurrency-safe
/// in Swift 6), retrying short writes so multi-megabyte dumps arrive whole.
enum Output {
    static func write(_ text: String) { writeAll(1, text) }

    static func error(_ message: String) { writeAll(2, "error: " + message + "\n") }

    static func note(_ message: String) { writeAll(2, message + "\n") }

    private static func writeAll(_ fd: Int32, _ text: String) {
        var text = text
        text.withUTF8 { bytes in
            guard var cursor = bytes.baseAddress else { return }
            var remaining = bytes.count
            while remaining > 0 {
                let written = Glibc.write(fd, cursor, remaining)
                if written < 0 {
                    if errno == EINTR { continue }
                    return  // a closed pipe (`| head`): stop quietly, like other Unix tools
                }
                cursor += written
                remaining -= written
            }
        }
    }
}
