import Foundation
import OnnxcCore
import OnnxcFrontend
import OnnxcIR
import OnnxcPasses
import OnnxcTestSupport
import Testing

/// The `onnxc` binary end to end: exit codes, output formats, and error lines.
@Suite struct CLITests {
    @Test func helpAndVersion() throws {
        let help = try CLIRunner.run(["--help"])
        #expect(help.status == 0)
        #expect(help.stdout.contains("SUBCOMMANDS"))
        for command in ["info", "dump", "optimize", "run", "test"] { #expect(help.stdout.contains(command)) }
        let version = try CLIRunner.run(["--version"])
        #expect(version.status == 0)
        #expect(!version.stdout.isEmpty)
    }

    @Test func usageErrorsExitWithTwo() throws {
        for arguments in [["info"], ["dump", Fixtures.model("mlp.onnx"), "--format", "xml"], ["frobnicate"],
                          ["optimize", Fixtures.model("mlp.onnx"), "-O3", "-o", "/tmp/x.onnx"],
                          ["optimize", Fixtures.model("mlp.onnx"), "-O1", "--disable-pass", "nope", "-o", "/tmp/x.onnx"],
                          ["optimize", Fixtures.model("mlp.onnx"), "-o", Fixtures.model("mlp.onnx")]] {
            let result = try CLIRunner.run(arguments)
            #expect(result.status == 2, "\(arguments)")
            #expect(result.stderr.hasPrefix("error: "), "\(arguments): \(result.stderr)")
        }
    }

    @Test func infoSummarizes() throws {
        let result = try CLIRunner.run(["info", Fixtures.model("tiny_cnn.onnx")])
        #expect(result.status == 0)
        #expect(result.stdout.contains("IR version   8"))
        #expect(result.stdout.contains("opsets       ai.onnx:17"))
        #expect(result.stdout.contains("input: f32[batch,3,16,16]"))
        #expect(result.stdout.contains("nodes        10"))
        #expect(result.stdout.contains("parameters   1,626 in 10 initializers, 6.5 kB"))
        #expect(result.stdout.contains("  Conv "))

        let json = try CLIRunner.run(["info", "--json", Fixtures.model("tiny_cnn.onnx")])
        let object = try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [String: Any]
        #expect(object?["parameters"] as? Int == 1626)  // 8·27+8 + 16·72+16 + 4·16 + 10·16+10
        #expect((object?["ops"] as? [String: Int])?["Conv"] == 2)
    }

    @Test func jsonDumpListsEveryNodeInOrder() throws {
        let result = try CLIRunner.run(["dump", "--format", "json", Fixtures.model("control_flow.onnx")])
        #expect(result.status == 0)
        let object = try #require(try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any])
        let graph = try #require(object["graph"] as? [String: Any])
        let nodes = try #require(graph["nodes"] as? [[String: Any]])
        let model = try ONNXImporter.load(path: Fixtures.model("control_flow.onnx"))
        #expect(nodes.map { $0["op_type"] as? String } == model.graph.nodes.map(\.opType))
        for key in ["name", "op_type", "domain", "inputs", "outputs", "attributes"] { #expect(nodes[0][key] != nil, "\(key)") }
        #expect((graph["initializers"] as? [[String: Any]])?.first?.keys.sorted() == ["dtype", "name", "shape"])
    }

    @Test func dumpShowsInferredTypesUnlessAskedNotTo() throws {
        let inferred = try CLIRunner.run(["dump", Fixtures.model("mlp.onnx")])
        #expect(inferred.status == 0)
        #expect(inferred.stdout.contains("%fc1_mm: f32[1,64] = MatMul(%x, %fc1.weight)"))
        #expect(inferred.stderr.isEmpty)
        let declared = try CLIRunner.run(["dump", "--no-infer", Fixtures.model("mlp.onnx")])
        #expect(declared.stdout.contains("%fc1_mm = MatMul(%x, %fc1.weight)"))
        let symbolic = try CLIRunner.run(["dump", Fixtures.model("symbolic_dims.onnx")])
        #expect(symbolic.stdout.contains("%x_t: f32[seq,batch,16] = Transpose"))
    }

    @Test func dumpWarnsAboutShapeContradictions() throws {
        let graph = Graph(name: "g", inputs: [Build.input("a", [.fixed(2), .fixed(3)]), Build.input("b", [.fixed(4), .fixed(3)])],
                          outputs: [ValueInfo(name: "c", type: nil)], nodes: [Build.node("Add", ["a", "b"], ["c"], name: "add0")])
        let folder = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: folder) }
        let path = folder.appendingPathComponent("bad_add.onnx").path
        try ONNXExporter.write(Build.model(graph), to: path)
        let result = try CLIRunner.run(["dump", path])
        #expect(result.status == 0)
        #expect(result.stderr.contains("warning: shape inference"))
        #expect(result.stderr.contains("node add0") && result.stderr.contains("op Add"))
    }

    @Test func dotRendersWithGraphviz() throws {
        let result = try CLIRunner.run(["dump", "--format", "dot", Fixtures.model("control_flow.onnx")])
        #expect(result.status == 0)
        #expect(result.stdout.hasPrefix("digraph "))
        guard let dot = ["/usr/bin/dot", "/usr/local/bin/dot"].first(where: FileManager.default.isExecutableFile(atPath:)) else {
            return  // graphviz is installed by scripts/setup.sh; without it only the DOT text is checked
        }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: dot)
        process.arguments = ["-Tsvg"]
        let input = Pipe(), output = Pipe()
        process.standardInput = input
        process.standardOutput = output
        process.standardError = output
        try process.run()
        input.fileHandleForWriting.write(Data(result.stdout.utf8))
        try input.fileHandleForWriting.close()
        let svg = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        #expect(process.terminationStatus == 0, "\(svg.prefix(500))")
        #expect(svg.contains("<svg"))
    }

    @Test(arguments: [["-O0"], ["-O", "0"], []])
    func optimizeO0ReEncodesLosslessly(_ level: [String]) throws {
        let directory = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let output = directory.appendingPathComponent("out.onnx").path
        let source = Fixtures.model("local_function.onnx")
        let result = try CLIRunner.run(["optimize", source] + level + ["-o", output])
        #expect(result.status == 0, "\(result.stderr)")
        let options = ImportOptions(inlineFunctions: false)
        #expect(try ONNXImporter.load(path: output, options: options) == ONNXImporter.load(path: source, options: options))
    }

    @Test func optimizeWritesExternalDataOnRequest() throws {
        let directory = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let output = directory.appendingPathComponent("mlp.onnx").path
        let result = try CLIRunner.run(["optimize", Fixtures.model("mlp.onnx"), "-O0", "--external-data", "-o", output])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(FileManager.default.fileExists(atPath: output + ".data"))
        let written = try ONNXImporter.load(path: output)
        #expect(written.graph.initializers.contains { $0.externalSource != nil })
        #expect(written.graph.initializers.map(\.data) == (try ONNXImporter.load(path: Fixtures.model("mlp.onnx"))).graph.initializers.map(\.data))
    }

    @Test func missingFileIsOneClearLine() throws {
        for path in ["/nonexistent/model.onnx", "/nonexistent/model.oxc"] {
            let result = try CLIRunner.run(["info", path])
            #expect(result.status == 1)
            #expect(result.stderr == "error: \(path): cannot open: No such file or directory — check the path and permissions\n")
        }
    }

    @Test func failedOptimizeLeavesNoOutput() throws {
        let directory = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let output = directory.appendingPathComponent("out.onnx").path
        let result = try CLIRunner.run(["optimize", Fixtures.bad("cycle.onnx"), "-O0", "-o", output])
        #expect(result.status == 1)
        #expect(try FileManager.default.contentsOfDirectory(atPath: directory.path).isEmpty)
        let unwritable = try CLIRunner.run(["optimize", Fixtures.model("mlp.onnx"), "-O0", "-o", directory.path + "/no/such/dir/out.onnx"])
        #expect(unwritable.status == 1)
        #expect(unwritable.stderr.hasPrefix("error: "))
        #expect(unwritable.stderr.contains("cannot write"))
    }

    @Test func everyBadFileFailsCleanly() throws {
        let folder = Fixtures.testdata.appendingPathComponent("bad").path
        let files = try FileManager.default.contentsOfDirectory(atPath: folder).filter { $0.hasSuffix(".onnx") }.sorted()
        #expect(files.count >= 20)
        for file in files {
            let path = folder + "/" + file
            for command in [["info", path], ["dump", path, "--format", "json"]] {
                let result = try CLIRunner.run(command)
                #expect(result.status == 1, "\(command): \(result.stderr)")
                #expect(result.stderr.hasPrefix("error: \(path): ") || result.stderr.hasPrefix("error: "), "\(file): \(result.stderr)")
                #expect(result.stdout.isEmpty, "\(file)")
                #expect(!result.stderr.contains("Fatal error") && !result.stderr.contains("Stack dump"), "\(file)")
                #expect(result.stderr.contains(" — "), "\(file): every error says what to do: \(result.stderr)")
            }
        }
    }
}

@Suite struct OptimizeLevelTests {
    @Test func o1PrintsTheOpTableAndStatistics() throws {
        let directory = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let output = directory.appendingPathComponent("bert.onnx").path
        let source = Fixtures.testdata.appendingPathComponent("exported/bert_tiny.onnx").path
        let result = try CLIRunner.run(["optimize", source, "-O", "1", "-o", output, "--print-pass-stats"])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdout.contains("Constant            49      0"))
        #expect(result.stdout.contains("constant-folding"))
        #expect(try ONNXImporter.load(path: output).graph.nodes.count < 174)

        let json = try CLIRunner.run(["optimize", source, "-O2", "-o", output, "--json", "--disable-pass", "cse"])
        let object = try #require(try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [String: Any])
        #expect(object["nodes_before"] as? Int == 174)
        let ran = (object["passes"] as? [[String: Any]])?.compactMap { $0["pass"] as? String } ?? []
        #expect(ran == Pipelines.passes(level: 2).map(\.id).filter { $0 != "cse" })
    }

    @Test func passesAndDumpAfter() throws {
        let passes = try CLIRunner.run(["passes"])
        #expect(passes.status == 0)
        for id in ["constant-folding", "eliminate-identity", "cse", "dce"] { #expect(passes.stdout.contains(id)) }
        let source = Fixtures.testdata.appendingPathComponent("exported/bert_tiny.onnx").path
        let dump = try CLIRunner.run(["dump", source, "--after", "constant-folding", "--format", "json"])
        #expect(dump.status == 0, "\(dump.stderr)")
        let object = try #require(try JSONSerialization.jsonObject(with: Data(dump.stdout.utf8)) as? [String: Any])
        let nodes = try #require((object["graph"] as? [String: Any])?["nodes"] as? [[String: Any]])
        #expect(!nodes.contains { $0["op_type"] as? String == "Constant" })
        #expect(try CLIRunner.run(["dump", source, "--pipeline", "2", "--target", "runtime"]).status == 0)
        let wrongTarget = try CLIRunner.run(["dump", source, "--pipeline", "2", "--target", "tflite"])
        #expect(wrongTarget.status == 2 && wrongTarget.stderr.contains("use onnx (standard ops) or runtime"))
    }
}
