public import OnnxcCore

/// What `onnxc info` reports: versions, signature, parameter totals and an op histogram. Counts include
/// subgraphs, since their nodes run too.
public struct ModelSummary: Sendable {
    public struct OpCount: Sendable, Equatable {
        public var op: String
        public var count: Int
    }

    public let irVersion: Int64
    public let opsets: [OpsetImport]
    public let producer: String
    public let inputs: [ValueInfo]
    public let outputs: [ValueInfo]
    public let nodeCount: Int
    public let nodeCountIncludingSubgraphs: Int
    public let subgraphCount: Int
    public let initializerCount: Int
    /// Elements in all initializers, sparse ones counted by stored values.
    public let parameterCount: Int
    public let parameterBytes: Int
    public let externalBytes: Int
    /// Most frequent first, ties by name.
    public let opHistogram: [OpCount]
    public let functionCount: Int

    public init(_ model: Model) {
        irVersion = model.irVersion
        opsets = model.opsetImports
        producer = [model.producerName, model.producerVersion].filter { !$0.isEmpty }.joined(separator: " ")
        inputs = model.graph.runtimeInputs
        outputs = model.graph.outputs
        nodeCount = model.graph.nodes.count
        functionCount = model.functions.count
        var totals = Totals()
        totals.add(model.graph)
        nodeCountIncludingSubgraphs = totals.nodes
        subgraphCount = totals.subgraphs
        initializerCount = totals.initializers
        parameterCount = totals.parameters
        parameterBytes = totals.bytes
        externalBytes = totals.externalBytes
        opHistogram = totals.ops.map { OpCount(op: $0.key, count: $0.value) }
            .sorted { $0.count != $1.count ? $0.count > $1.count : $0.op < $1.op }
    }

    private struct Totals {
        var nodes = 0, subgraphs = 0, initializers = 0, parameters = 0, bytes = 0, externalBytes = 0
        var ops: [String: Int] = [:]

        mutating func add(_ graph: Graph) {
            initializers += graph.initializers.count + graph.sparseInitializers.count
            for tensor in graph.initializers {
                parameters += tensor.data.elementCount
                bytes += tensor.data.byteCount
                if tensor.externalSource != nil { externalBytes += tensor.data.byteCount }
            }
            for sparse in graph.sparseInitializers {
                parameters += sparse.values.data.elementCount
                bytes += sparse.values.data.byteCount + sparse.indices.data.byteCount
            }
            for node in graph.nodes {
                nodes += 1
                ops[node.qualifiedOpType, default: 0] += 1
                for subgraph in node.subgraphs {
                    subgraphs += 1
                    add(subgraph)
                }
            }
        }
    }

    public var json: JSON {
        .object([
            ("ir_version", .int(irVersion)),
            ("opset_imports", .array(opsets.map { .object([("domain", .string($0.domain)), ("version", .int($0.version))]) })),
            ("producer", .string(producer)),
            ("inputs", .array(inputs.map(JSONDump.valueInfo))),
            ("outputs", .array(outputs.map(JSONDump.valueInfo))),
            ("nodes", .int(Int64(nodeCount))),
            ("nodes_including_subgraphs", .int(Int64(nodeCountIncludingSubgraphs))),
            ("subgraphs", .int(Int64(subgraphCount))),
            ("functions", .int(Int64(functionCount))),
            ("initializers", .int(Int64(initializerCount))),
            ("parameters", .int(Int64(parameterCount))),
            ("parameter_bytes", .int(Int64(parameterBytes))),
            ("external_bytes", .int(Int64(externalBytes))),
            ("ops", .object(opHistogram.map { ($0.op, .int(Int64($0.count))) })),
        ])
    }

    /// The human-readable report.
    public var text: String {
        var out = ""
        out += "IR version   \(irVersion)\n"
        out += "opsets       \(DumpFormatting.opsets(opsets))\n"
        out += "producer     \(producer.isEmpty ? "-" : producer)\n"
        out += "inputs\n"
        for input in inputs { out += "  \(input.name): \(input.type?.description ?? "?")\n" }
        out += "outputs\n"
        for output in outputs { out += "  \(output.name): \(output.type?.description ?? "?")\n" }
        var nodes = "nodes        \(nodeCount)"
        if subgraphCount > 0 { nodes += " (\(nodeCountIncludingSubgraphs) with \(subgraphCount) subgraphs)" }
        out += nodes + "\n"
        out += "parameters   \(ModelSummary.grouped(parameterCount)) in \(initializerCount) initializers, \(ModelSummary.bytes(parameterBytes))"
        if externalBytes > 0 { out += " (\(ModelSummary.bytes(externalBytes)) external)" }
        out += "\n"
        if functionCount > 0 { out += "functions    \(functionCount) model-local\n" }
        out += "ops\n"
        let width = opHistogram.map(\.op.count).max() ?? 0
        for entry in opHistogram {
            out += "  " + entry.op + String(repeating: " ", count: width - entry.op.count + 2) + String(entry.count) + "\n"
        }
        return out
    }

    /// `1,234,567`.
    static func grouped(_ value: Int) -> String {
        let digits = String(value)
        var out = ""
        for (i, c) in digits.enumerated() {
            if i > 0 && (digits.count - i) % 3 == 0 { out += "," }
            out.append(c)
        }
        return out
    }

    /// `12.3 MB` (decimal units, like ls -h --si); exact bytes under 1 kB.
    static func bytes(_ value: Int) -> String {
        if value < 1000 { return "\(value) B" }
        let units = ["kB", "MB", "GB", "TB"]
        var scaled = Double(value) / 1000
        var unit = 0
        while scaled >= 1000 && unit < units.count - 1 {
            scaled /= 1000
            unit += 1
        }
        let rounded = (scaled * 10).rounded() / 10
        return "\(rounded) \(units[unit])"
    }
}
