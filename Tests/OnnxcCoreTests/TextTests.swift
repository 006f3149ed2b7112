import OnnxcCore
import Testing

/// The Foundation-free text helpers: C formatting, path components, trimming.
@Suite struct TextTests {
    @Test func formatsNumbersAsSnprintfDoes() {
        #expect(Text.format("%.2f MB", 12.345) == "12.35 MB")
        #expect(Text.format("%-5ld|%4ld", 7, 42) == "7    |  42")
        #expect(Text.format("%+.2f points", -0.25) == "-0.25 points")
        #expect(Text.format("%02x", 10) == "0a")
        #expect(Text.format("%.3g", 0.000123456) == "0.000123")
        #expect(Text.format("%.1f %%", 99.95) == "100.0 %")
        #expect(Text.format("no arguments") == "no arguments")
    }

    /// Results longer than the first buffer are formatted again at their full length.
    @Test func formatsLongResults() {
        let long = Text.format("%0300d", 1)
        #expect(long.count == 300 && long.hasSuffix("1") && long.dropLast().allSatisfy { $0 == "0" })
    }

    @Test func lastPathComponents() {
        #expect(Text.lastPathComponent("a/b/c.onnx") == "c.onnx")
        #expect(Text.lastPathComponent("c.onnx") == "c.onnx")
        #expect(Text.lastPathComponent("dir/sub/") == "sub")
        #expect(Text.lastPathComponent("/") == "/")
        #expect(Text.lastPathComponent("") == "")
    }

    @Test func trims() {
        #expect("  a b \t".trimmingWhitespace() == "a b")
        #expect(" \n ".trimmingWhitespace() == "")
        #expect("'<f4'".trimming(["'", "\""]) == "<f4")
        #expect("(3, 4L)".trimming(["(", ")", " "]) == "3, 4L")
    }
}
