public import Foundation
public import OnnxcCore
public import OnnxcIR
public import OnnxcRuntime

/// Paths into the repository, found from this file's location so tests run from any working directory.
public enum Fixtures {
    public static let repositoryRoot: URL = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    public static let testdata = repositoryRoot.appendingPathComponent("testdata")

    public static func model(_ name: String) -> String { testdata.appendingPathComponent("models/\(name)").path }

    public static func bad(_ name: String) -> String { testdata.appendingPathComponent("bad/\(name)").path }

    /// Every `.onnx` file under `testdata/models`, sorted.
    public static func allModels() -> [String] {
        let root = testdata.appendingPathComponent("models")
        guard let enumerator = FileManager.default.enumerator(atPath: root.path) else { return [] }
        return enumerator.compactMap { $0 as? String }.filter { $0.hasSuffix(".onnx") }.sorted()
            .map { root.appendingPathComponent($0).path }
    }

    /// A fresh temporary folder, removed by the caller with `removeTemporaryDirectory`.
    public static func temporaryDirectory() throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("onnxc-test-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }
}

/// Golden-file comparison: the expected text lives in `Tests/Golden/NAME`; run with `ONNXC_RECORD=1` to
/// rewrite it, which makes the test fail once so that a recording is never mistaken for a pass.
public enum Golden {
    public enum Outcome: Equatable, Sendable {
        case matches
        case recorded
        case differs(String)
    }

    public static func check(_ actual: String, named name: String) -> Outcome {
        let url = Fixtures.repositoryRoot.appendingPathComponent("Tests/Golden/\(name)")
        if ProcessInfo.processInfo.environment["ONNXC_RECORD"] == "1" {
            try? FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
            try? actual.write(to: url, atomically: true, encoding: .utf8)
            return .recorded
        }
        guard let expected = try? String(contentsOf: url, encoding: .utf8) else {
            return .differs("no golden file at \(url.path); run the tests with ONNXC_RECORD=1 to create it")
        }
        if expected == actual { return .matches }
        let a = expected.split(separator: "\n", omittingEmptySubsequences: false)
        let b = actual.split(separator: "\n", omittingEmptySubsequences: false)
        let line = zip(a, b).enumerated().first { $0.element.0 != $0.element.1 }?.offset ?? min(a.count, b.count)
        let want = line < a.count ? String(a[line]) : "<end of file>"
        let got = line < b.count ? String(b[line]) : "<end of file>"
        return .differs("\(name) differs at line \(line + 1):\n  expected: \(want)\n  actual:   \(got)\n(re-record with ONNXC_RECORD=1 if the change is intended)")
    }
}

/// Small IR builders for tests that need a graph without a file.
public enum Build {
    public static func floatTensor(_ name: String, _ dims: [Int64], _ values: [Float]) throws -> OnnxcIR.Tensor {
        var bytes: [UInt8] = []
        for v in values { withUnsafeBytes(of: v.bitPattern.littleEndian) { bytes.append(contentsOf: $0) } }
        let data = try TensorData(dtype: .float, dims: dims, payload: .bytes(ByteSlice(copying: bytes)))
        return Tensor(name: name, data: data)
    }

    public static func int64Tensor(_ name: String, _ dims: [Int64], _ values: [Int64]) throws -> OnnxcIR.Tensor {
        Tensor(name: name, data: try TensorData(int64s: values, dims: dims))
    }

    public static func input(_ name: String, _ dims: [Dim], _ dtype: DType = .float) -> ValueInfo {
        ValueInfo(name: name, type: ValueType(.tensor(TensorType(dtype, Shape(dims)))))
    }

    public static func node(_ op: String, _ inputs: [String], _ outputs: [String], name: String = "",
                            _ attributes: [Attribute] = []) -> Node {
        Node(name: name, opType: op, inputs: inputs, outputs: outputs, attributes: attributes)
    }

    public static func model(_ graph: Graph, opset: Int64 = 17) -> Model {
        Model(irVersion: 8, opsetImports: [OpsetImport(domain: "", version: opset)], producerName: "onnxc-tests", graph: graph)
    }
}

/// The ONNX Runtime references in testdata/reference (made by scripts/gen_testdata.py): one folder per model with
/// meta.json, input_N.npy and output_N.npy.
public enum References {
    public struct Meta: Decodable, Sendable {
        public struct Entry: Decodable, Sendable { public var name: String }
        public var model: String
        public var inputs: [Entry]
        public var outputs: [Entry]
    }

    public static let folders: [String] = {
        let root = Fixtures.testdata.appendingPathComponent("reference")
        let names = (try? FileManager.default.contentsOfDirectory(atPath: root.path)) ?? []
        return names.filter { FileManager.default.fileExists(atPath: root.appendingPathComponent("\($0)/meta.json").path) }.sorted()
    }()

    public static func meta(_ folder: String) throws -> Meta {
        try JSONDecoder().decode(Meta.self, from: Data(contentsOf: Fixtures.testdata.appendingPathComponent("reference/\(folder)/meta.json")))
    }

    public static func readNPY(_ path: String) throws -> OnnxcRuntime.Tensor {
        try NPY.read(Array(try Data(contentsOf: URL(fileURLWithPath: path))))
    }
}
