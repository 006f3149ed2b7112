import Foundation
import OnnxcCore
import OnnxcFrontend
import OnnxcIR
import OnnxcTestSupport
import Testing

/// IR → ONNX → IR must give back an equal model: every field the IR holds survives the protobuf-c encoder
/// and decoder.
@Suite struct RoundTripTests {
    static func tensor(_ name: String, _ dtype: DType, _ dims: [Int64], _ bytes: [UInt8]) throws -> Tensor {
        Tensor(name: name, data: try TensorData(dtype: dtype, dims: dims, payload: .bytes(ByteSlice(copying: bytes))))
    }

    /// A model using every IR feature: all attribute kinds, every data type, subgraphs with outer-scope reads,
    /// sparse initializers, functions with attribute references, training info, metadata everywhere.
    static func kitchenSink() throws -> Model {
        var tensors: [Tensor] = []
        for type in DType.allCases where type != .undefined && type != .string {
            let count = 5
            let size = type.byteCount(elements: count) ?? 0
            tensors.append(try tensor("t_\(type.shortName)", type, [Int64(count)], (0..<size).map { UInt8(truncatingIfNeeded: $0 * 37 + 11) }))
        }
        tensors.append(Tensor(name: "t_str", data: try TensorData(dtype: .string, dims: [2], payload: .strings([Array("héllo".utf8), []]))))
        tensors.append(try tensor("t_empty", .float, [0, 3], []))
        tensors.append(try tensor("t_scalar", .int64, [], [1, 0, 0, 0, 0, 0, 0, 0]))
        tensors[0].docString = "first"
        tensors[0].metadataProps = [StringPair("k", "v")]
        tensors[1].segment = 0...4

        let branch = Graph(name: "then", docString: "branch doc", outputs: [ValueInfo(name: "bt", type: .tensor(.float, nil))],
                           initializers: [try tensor("bw", .float, [1], [0, 0, 128, 63])],
                           nodes: [Node(opType: "Add", inputs: ["x", "bw"], outputs: ["bt"])])
        let sparse = SparseTensor(values: try tensor("sv", .float, [2], [0, 0, 128, 63, 0, 0, 0, 64]),
                                  indices: try tensor("si", .int64, [2], [1, 0, 0, 0, 0, 0, 0, 0, 3, 0, 0, 0, 0, 0, 0, 0]), dims: [4])
        let seqType = ValueType(.sequence(ValueType(.map(key: .int64, value: .tensor(.float, Shape([.symbolic("n")]))))), denotation: "SEQ")
        let attributes: [Attribute] = [
            Attribute("f", .float(-0.125), docString: "a float"),
            Attribute("i", .int(-7)),
            Attribute("s", .string(Array("text".utf8))),
            Attribute("t", .tensor(try tensor("", .int32, [2], [1, 0, 0, 0, 2, 0, 0, 0]))),
            Attribute("g", .graph(branch)),
            Attribute("st", .sparseTensor(sparse)),
            Attribute("tp", .typeProto(seqType)),
            Attribute("fs", .floats([1, .infinity, -0.0])),
            Attribute("is", .ints([Int64.min, 0, Int64.max])),
            Attribute("ss", .strings([Array("a".utf8), []])),
            Attribute("ts", .tensors([try tensor("x1", .uint8, [1], [9])])),
            Attribute("gs", .graphs([branch, branch])),
            Attribute("sts", .sparseTensors([sparse])),
            Attribute("tps", .typeProtos([.tensor(.bool, Shape([])), ValueType(.optional(.tensor(.int8, nil)))])),
        ]
        let function = Function(
            name: "Fn", domain: "custom", overload: "v2", inputs: ["A", ""], outputs: ["B"], attributeNames: ["unset"],
            attributeDefaults: [Attribute("alpha", .float(0.5))],
            nodes: [Node(name: "inner", opType: "LeakyRelu", inputs: ["A"], outputs: ["B"],
                         attributes: [Attribute("alpha", .float(0), referencedAttribute: "alpha"),
                                      Attribute("g", .graph(Graph()), referencedAttribute: "body"),
                                      Attribute("t", .tensors([]), referencedAttribute: "many")])],
            opsetImports: [OpsetImport(domain: "", version: 17)], valueInfo: [ValueInfo(name: "B", type: .tensor(.float, nil))],
            docString: "fn doc", metadataProps: [StringPair("fk", "fv")])
        var inputType = TensorType(.float, Shape([.symbolic("batch"), .fixed(4), .unknown]), dimDenotations: ["DATA_BATCH", "", ""])
        inputType.elementType = .float
        let graph = Graph(
            name: "main", docString: "graph doc",
            inputs: [ValueInfo(name: "x", type: ValueType(.tensor(inputType), denotation: "TENSOR"), docString: "input doc",
                               metadataProps: [StringPair("ik", "iv")]),
                     Build.input("c", [], .bool)],
            outputs: [ValueInfo(name: "y", type: .tensor(.float, nil)), ValueInfo(name: "z", type: nil)],
            initializers: tensors, sparseInitializers: [sparse],
            nodes: [
                Node(name: "kitchen", opType: "Custom", domain: "custom", overload: "", inputs: ["x", "", "c"], outputs: ["y", ""],
                     attributes: attributes, docString: "node doc", metadataProps: [StringPair("nk", "nv")]),
                Node(name: "call", opType: "Fn", domain: "custom", overload: "v2", inputs: ["x"], outputs: ["z"]),
            ],
            valueInfo: [ValueInfo(name: "y", type: seqType)],
            quantizationAnnotations: [TensorAnnotation(tensorName: "y", quantParameterTensorNames: [StringPair("SCALE_TENSOR", "s")])],
            metadataProps: [StringPair("gk", "gv")])
        let training = TrainingInfo(initialization: Graph(name: "init"), algorithm: nil,
                                    initializationBinding: [StringPair("a", "b")], updateBinding: [StringPair("c", "d")])
        return Model(irVersion: 10, opsetImports: [OpsetImport(domain: "", version: 21), OpsetImport(domain: "custom", version: 1)],
                     producerName: "tests", producerVersion: "1.2", domain: "org.onnxc", modelVersion: 42, docString: "model doc",
                     graph: graph, metadataProps: [StringPair("author", "me"), StringPair("author", "dup")],
                     trainingInfo: [training], functions: [function])
    }

    @Test func everyFieldSurvives() throws {
        let model = try Self.kitchenSink()
        let bytes = try ONNXExporter.serialize(model)
        let back = try ONNXImporter.load(bytes: bytes, directory: ".", options: ImportOptions(inlineFunctions: false, verify: false))
        #expect(back.graph.initializers == model.graph.initializers)
        #expect(back.graph.nodes[0].attributes == model.graph.nodes[0].attributes)
        #expect(back.functions == model.functions)
        #expect(back == model)
    }

    /// Large raw_data is left in the file and read in place (see RawDataSkeleton), wherever the tensor sits:
    /// initializers, Constant attributes, subgraph initializers, sparse values and function bodies.
    @Test func largeWeightsAreReadInPlaceEverywhere() throws {
        var model = try Self.kitchenSink()
        func big(_ name: String, _ seed: Int) throws -> Tensor {
            try Self.tensor(name, .float, [1500], (0..<6000).map { UInt8(truncatingIfNeeded: $0 * seed + 1) })
        }
        model.graph.initializers += [try big("w_big", 3), try big("w_big2", 5)]
        let branch = Graph(name: "branch", outputs: [ValueInfo(name: "bo", type: nil)], initializers: [try big("bw_big", 7)],
                           nodes: [Node(opType: "Identity", inputs: ["bw_big"], outputs: ["bo"])])
        let sparse = SparseTensor(values: try big("sv_big", 11), indices: try Self.tensor("si_big", .int64, [1500], (0..<12000).map { i in
            i % 8 == 0 ? UInt8(truncatingIfNeeded: i / 8) : (i % 8 == 1 ? UInt8(truncatingIfNeeded: i / 2048) : 0)
        }), dims: [100_000])
        model.graph.nodes.append(Node(name: "big", opType: "Custom", domain: "custom", inputs: ["x"], outputs: ["w_out"],
                                      attributes: [Attribute("t", .tensor(try big("", 13))), Attribute("g", .graph(branch)),
                                                   Attribute("st", .sparseTensor(sparse))]))
        model.functions[0].nodes[0].attributes.append(Attribute("tbig", .tensor(try big("", 17))))
        let bytes = try ONNXExporter.serialize(model)
        let back = try ONNXImporter.load(bytes: bytes, directory: ".", options: ImportOptions(inlineFunctions: false, verify: false))
        #expect(back == model)
        // The large payloads are slices of the input bytes, not copies.
        let inPlace = back.graph.initializers.filter { $0.data.bytes?.storage === bytes }.map(\.name)
        #expect(inPlace == ["w_big", "w_big2"])
        #expect(try ONNXExporter.serialize(back).array == bytes.array)
    }

    @Test func reEncodingIsStable() throws {
        let first = try ONNXExporter.serialize(try Self.kitchenSink())
        let model = try ONNXImporter.load(bytes: first, directory: ".", options: ImportOptions(inlineFunctions: false, verify: false))
        let second = try ONNXExporter.serialize(model)
        #expect(first.array == second.array)
    }

    @Test func externalDataIsWrittenAlignedAndReadBack() throws {
        let directory = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        var model = Build.model(Graph(inputs: [Build.input("x", [.fixed(512)])], outputs: [ValueInfo(name: "y", type: nil)]))
        let big = try Build.floatTensor("big", [512], (0..<512).map(Float.init))
        let big2 = try Build.floatTensor("big2", [300], (0..<300).map { Float($0) * 0.5 })
        let small = try Build.floatTensor("small", [2], [1, 2])
        model.graph.initializers = [big, small, big2]
        model.graph.nodes = [Build.node("Add", ["x", "big"], ["y"])]
        let path = directory.appendingPathComponent("m.onnx").path
        try ONNXExporter.write(model, to: path, options: ExportOptions(externalData: .always))
        #expect(try FileManager.default.contentsOfDirectory(atPath: directory.path).sorted() == ["m.onnx", "m.onnx.data"])

        let back = try ONNXImporter.load(path: path)
        #expect(back.graph.initializers.map(\.data) == model.graph.initializers.map(\.data))
        #expect(back.graph.initializers.map { $0.externalSource?.offset } == [0, nil, 4096])
        #expect(back.graph.initializers.map { $0.externalSource?.location } == ["m.onnx.data", nil, "m.onnx.data"])

        // Re-exporting a model that uses external data keeps it external by default.
        let again = directory.appendingPathComponent("again.onnx").path
        try ONNXExporter.write(back, to: again)
        #expect(FileManager.default.fileExists(atPath: again + ".data"))
        #expect(try ONNXImporter.load(path: again).graph.initializers.map(\.data) == model.graph.initializers.map(\.data))
    }

    @Test func weightsPastTheProtobufLimitGoExternalAutomatically() throws {
        let directory = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        var model = Build.model(Graph(inputs: [Build.input("x", [.fixed(2048)])], outputs: [ValueInfo(name: "y", type: nil)]))
        model.graph.initializers = [try Build.floatTensor("w", [2048], [Float](repeating: 0.5, count: 2048))]
        model.graph.nodes = [Build.node("Add", ["x", "w"], ["y"])]
        // The real limit is ~1.8 GB; a lowered threshold exercises the same decision on a small model.
        let inline = directory.appendingPathComponent("inline.onnx").path
        try ONNXExporter.write(model, to: inline, options: ExportOptions(automaticExternalThreshold: 10_000))
        #expect(!FileManager.default.fileExists(atPath: inline + ".data"))
        let external = directory.appendingPathComponent("external.onnx").path
        try ONNXExporter.write(model, to: external, options: ExportOptions(automaticExternalThreshold: 4_000))
        #expect(FileManager.default.fileExists(atPath: external + ".data"))
        #expect(try ONNXImporter.load(path: external).graph.initializers[0].data == model.graph.initializers[0].data)
    }

    @Test func failedWritesLeaveNoFiles() throws {
        let directory = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let model = Build.model(Graph(inputs: [Build.input("x", [.fixed(1)])], outputs: [ValueInfo(name: "x", type: nil)]))
        let path = directory.appendingPathComponent("missing-folder/m.onnx").path
        #expect(throws: FrontendError.self) { try ONNXExporter.write(model, to: path) }
        #expect(try FileManager.default.contentsOfDirectory(atPath: directory.path).isEmpty)
    }
}

@Suite struct TensorFileTests {
    @Test func tensorProtoFilesRoundTrip() throws {
        let directory = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        for tensor in try RoundTripTests.kitchenSink().graph.initializers {
            let path = directory.appendingPathComponent("t.pb").path
            let writer = try AtomicFileWriter(path: path)
            try writer.write(ByteSlice(try ONNXExporter.serialize(tensor: tensor)))
            try writer.commit()
            #expect(try ONNXImporter.loadTensor(path: path) == tensor)
        }
    }
}
