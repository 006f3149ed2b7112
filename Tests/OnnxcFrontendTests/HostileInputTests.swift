import Foundation
import OnnxcCore
import OnnxcFrontend
import OnnxcIR
import OnnxcTestSupport
import Testing

/// Untrusted bytes must produce errors, never traps: truncation at every offset, random bytes, bit flips,
/// runaway nesting.
@Suite struct HostileInputTests {
    static func sampleBytes() throws -> [UInt8] {
        let branch = Graph(name: "b", outputs: [ValueInfo(name: "t", type: nil)], nodes: [Build.node("Identity", ["a"], ["t"])])
        let graph = Graph(
            name: "g", inputs: [Build.input("x", [.symbolic("n"), .fixed(2)]), Build.input("c", [], .bool)],
            outputs: [ValueInfo(name: "y", type: .tensor(.float, nil))],
            initializers: [try Build.floatTensor("w", [2], [1, 2])],
            nodes: [Build.node("Add", ["x", "w"], ["a"], name: "add"),
                    Build.node("If", ["c"], ["y"], name: "if", [Attribute("then_branch", .graph(branch)), Attribute("else_branch", .graph(branch))])])
        return try ONNXExporter.serialize(Build.model(graph)).array
    }

    static func load(_ bytes: [UInt8]) -> Result<Model, FrontendError> {
        Result { () throws(FrontendError) in try ONNXImporter.load(bytes: ByteStorage(copying: bytes), directory: ".") }
    }

    @Test func sampleLoads() throws {
        #expect(try Self.load(Self.sampleBytes()).get().graph.nodes.count == 2)
    }

    @Test func everyTruncationIsAnErrorOrAValidPrefix() throws {
        let bytes = try Self.sampleBytes()
        var errors = 0
        for length in 0..<bytes.count {
            if case .failure = Self.load(Array(bytes[..<length])) { errors += 1 }
        }
        // Cutting at a field boundary can leave a well-formed message, but never a complete model here.
        #expect(errors == bytes.count)
    }

    @Test func randomBytesAreRejected() {
        var generator = SplitMix(seed: 7)
        for size in [1, 2, 7, 64, 1000, 4096] {
            for _ in 0..<20 {
                let bytes = (0..<size).map { _ in UInt8(truncatingIfNeeded: generator.next()) }
                if case .success = Self.load(bytes) { Issue.record("random bytes of size \(size) loaded as a model") }
            }
        }
    }

    @Test func bitFlipsNeverTrap() throws {
        let bytes = try Self.sampleBytes()
        var generator = SplitMix(seed: 11)
        for _ in 0..<2000 {
            var copy = bytes
            let index = Int(generator.next() % UInt64(copy.count))
            copy[index] ^= UInt8(1 << (generator.next() % 8))
            _ = Self.load(copy)  // any outcome but a trap is fine
        }
    }

    @Test func nestingIsBounded() throws {
        func nested(_ depth: Int) -> Graph {
            var graph = Graph(name: "leaf", outputs: [ValueInfo(name: "v0", type: nil)],
                              nodes: [Build.node("Constant", [], ["v0"], [Attribute("value_float", .float(1))])])
            for level in 1...depth {
                // Only one branch nests, so the file grows linearly with depth.
                graph = Graph(name: "level\(level)", outputs: [ValueInfo(name: "v\(level)", type: nil)],
                              nodes: [Build.node("If", ["c"], ["v\(level)"], [Attribute("then_branch", .graph(graph))])])
            }
            return graph
        }
        func model(_ depth: Int) -> Model {
            var graph = nested(depth)
            graph.inputs = [Build.input("c", [], .bool)]
            return Build.model(graph)
        }
        let shallow = try ONNXExporter.serialize(model(5))
        #expect(throws: Never.self) { try ONNXImporter.load(bytes: shallow, directory: ".") }
        let deep = try ONNXExporter.serialize(model(30))
        #expect(throws: FrontendError.nestingTooDeep(limit: ONNXImporter.maximumNesting)) {
            try ONNXImporter.load(bytes: deep, directory: ".")
        }
    }
}

/// A small deterministic generator, so failures reproduce.
struct SplitMix {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
