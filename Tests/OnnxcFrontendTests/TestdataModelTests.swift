import Foundation
import OnnxcCore
import OnnxcFrontend
import OnnxcIR
import OnnxcTestSupport
import Testing

/// `testdata/manifest.json` entry written by scripts/gen_testdata.py.
struct ManifestEntry: Decodable, Sendable, CustomTestStringConvertible {
    var model: String
    var node_count: Int
    var node_count_total: Int
    var initializer_count: Int
    var testDescription: String { model }

    static func all() throws -> [ManifestEntry] {
        let data = try Data(contentsOf: Fixtures.testdata.appendingPathComponent("manifest.json"))
        return try JSONDecoder().decode([ManifestEntry].self, from: data)
    }
}

@Suite struct TestdataModelTests {
    static let entries = (try? ManifestEntry.all()) ?? []

    @Test func manifestIsPresent() {
        #expect(Self.entries.count >= 10)
    }

    @Test(arguments: entries)
    func importsWithTheNodeCountONNXReports(_ entry: ManifestEntry) throws {
        let path = Fixtures.testdata.appendingPathComponent(entry.model).path
        let model = try ONNXImporter.load(path: path, options: ImportOptions(inlineFunctions: false))
        #expect(model.graph.nodes.count == entry.node_count)
        #expect(model.graph.nodeCountIncludingSubgraphs == entry.node_count_total)
        #expect(model.graph.initializers.count == entry.initializer_count)
        // The default import (functions inlined) must verify too.
        _ = try ONNXImporter.load(path: path)
    }

    @Test(arguments: entries)
    func roundTripsLosslessly(_ entry: ManifestEntry) throws {
        let path = Fixtures.testdata.appendingPathComponent(entry.model).path
        let options = ImportOptions(inlineFunctions: false)
        var model = try ONNXImporter.load(path: path, options: options)
        let back = try ONNXImporter.load(bytes: try ONNXExporter.serialize(model), directory: ".", options: options)
        // Serializing in memory inlines external data; everything else must be identical.
        for index in model.graph.initializers.indices { model.graph.initializers[index].externalSource = nil }
        #expect(back == model)
    }

    @Test func localFunctionsAreInlinedOnImport() throws {
        let kept = try ONNXImporter.load(path: Fixtures.model("local_function.onnx"), options: ImportOptions(inlineFunctions: false))
        let inlined = try ONNXImporter.load(path: Fixtures.model("local_function.onnx"))
        #expect(!kept.functions.isEmpty)
        #expect(inlined.functions.isEmpty)
        let functionOps = Set(kept.functions.map(\.name))
        #expect(!inlined.graph.nodes.contains { functionOps.contains($0.opType) })
        #expect(inlined.graph.nodes.count > kept.graph.nodes.count)
    }

    @Test func unsortedNodesAreSorted() throws {
        let model = try ONNXImporter.load(path: Fixtures.model("unsorted.onnx"))
        var defined = Set(model.graph.inputs.map(\.name) + model.graph.initializers.map(\.name))
        for node in model.graph.nodes {
            #expect(node.inputs.allSatisfy { $0.isEmpty || defined.contains($0) })
            defined.formUnion(node.outputs)
        }
    }

    @Test func externalDataIsMappedFromTheModelFolder() throws {
        let model = try ONNXImporter.load(path: Fixtures.testdata.appendingPathComponent("models/external/model.onnx").path)
        #expect(!model.graph.initializers.isEmpty)
        #expect(model.graph.initializers.allSatisfy { $0.externalSource != nil })
    }

    @Test func symlinksLeavingTheFolderAreRejected() throws {
        let directory = try Fixtures.temporaryDirectory()
        let outside = try Fixtures.temporaryDirectory()
        defer {
            try? FileManager.default.removeItem(at: directory)
            try? FileManager.default.removeItem(at: outside)
        }
        let source = Fixtures.testdata.appendingPathComponent("models/external")
        let modelCopy = directory.appendingPathComponent("model.onnx")
        try FileManager.default.copyItem(at: source.appendingPathComponent("model.onnx"), to: modelCopy)
        let original = try ONNXImporter.load(path: source.appendingPathComponent("model.onnx").path)
        let dataName = try #require(original.graph.initializers.first?.externalSource?.location)
        let target = outside.appendingPathComponent("weights")
        try FileManager.default.copyItem(at: source.appendingPathComponent(dataName), to: target)
        try FileManager.default.createSymbolicLink(at: directory.appendingPathComponent(dataName), withDestinationURL: target)
        do {
            _ = try ONNXImporter.load(path: modelCopy.path)
            Issue.record("a symlink out of the model's folder was followed")
        } catch {
            #expect(error.description.contains("leaves the model's folder"))
        }
        // The same file, copied inside the folder, is fine.
        try FileManager.default.removeItem(at: directory.appendingPathComponent(dataName))
        try FileManager.default.copyItem(at: target, to: directory.appendingPathComponent(dataName))
        #expect(try ONNXImporter.load(path: modelCopy.path).graph.initializers.map(\.data) == original.graph.initializers.map(\.data))
    }
}

/// Every file in testdata/bad is rejected with the error `expected_errors.json` names.
@Suite struct BadInputTests {
    static let expected: [(String, String)] = {
        let url = Fixtures.testdata.appendingPathComponent("bad/expected_errors.json")
        guard let data = try? Data(contentsOf: url),
              let table = try? JSONDecoder().decode([String: String].self, from: data) else { return [] }
        return table.sorted { $0.key < $1.key }
    }()

    @Test func corpusIsPresent() {
        #expect(Self.expected.count >= 20)
    }

    @Test(arguments: expected.map(\.0))
    func rejected(_ file: String) throws {
        let substring = try #require(Self.expected.first { $0.0 == file }?.1)
        do {
            _ = try ONNXImporter.load(path: Fixtures.bad(file))
            Issue.record("\(file) loaded without an error")
        } catch {
            #expect(error.description.contains(substring), "\(file): \(error.description)")
        }
    }
}
