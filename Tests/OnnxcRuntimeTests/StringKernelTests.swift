import OnnxcCore
@testable import OnnxcRuntime
import Testing

/// RegexFullMatch with RE2's meaning (the ONNX spec names RE2), on the standard library's regex engine.
@Suite struct StringKernelTests {
    static func fullMatch(_ pattern: String, _ strings: [String]) throws -> [Bool] {
        let x = Tensor(strings: strings, shape: [strings.count])
        return try ChannelsLastOpTests.run("RegexFullMatch", [x], ["pattern": .string(pattern)], opset: 20).array(Bool.self)
    }

    /// `\b` between a word and a non-word character, as in RE2 (Unicode's default boundaries see no break in
    /// "google.com", so `\.\bcom` would never match).
    @Test func wordBoundariesAreSimple() throws {
        #expect(try Self.fullMatch(#"www\.[\w.-]+\.\bcom\b"#, ["www.google.com", "www.bbc.co.uk", "www.x.comx"]) == [true, false, false])
    }

    /// RE2's `\w`, `\d` and `\s` are ASCII; `.` is one code point, not one grapheme cluster.
    @Test func classesAreASCIIAndDotIsOneCodePoint() throws {
        #expect(try Self.fullMatch(#"\w+"#, ["abc_1", "café"]) == [true, false])
        #expect(try Self.fullMatch(#"\d+"#, ["123", "١٢٣"]) == [true, false])
        #expect(try Self.fullMatch(".", ["e\u{301}"]) == [false])
        #expect(try Self.fullMatch("..", ["e\u{301}"]) == [true])
    }

    /// The whole string must match: an alternation backtracks to the branch that covers it all.
    @Test func matchesTheWholeString() throws {
        #expect(try Self.fullMatch("a|ab", ["ab", "a", "abc", ""]) == [true, true, false, false])
    }

    @Test func anInvalidPatternIsAnError() {
        #expect(throws: RuntimeError.self) { try Self.fullMatch("(", ["x"]) }
    }
}
