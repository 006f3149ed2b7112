import OnnxcCore
import OnnxcIR
import OnnxcTestSupport
import Testing

/// Shape inference of the channels-last ops (ai.onnxc::NhwcConv and the Nhwc pools): the standard op's rule on the
/// NCHW view, permuted to [N, H, W, C] — the layout passes read these shapes (re-inferred after every change) to
/// decide what to push and what a Transpose may become.
@Suite struct ChannelsLastShapeInferenceTests {
    /// The inferred shape of `y` for `op` (domain `domain`) on an input of `dims` and optional weights.
    static func shape(_ op: String, domain: String = "", _ dims: [Dim], weights: [Int64]?, _ attributes: [Attribute]) throws -> String? {
        var initializers: [Tensor] = []
        var inputs = ["x"]
        if let weights {
            initializers.append(try Build.floatTensor("w", weights, [Float](repeating: 0, count: Int(weights.reduce(1, *)))))
            inputs.append("w")
        }
        let node = Node(name: "n", opType: op, domain: domain, inputs: inputs, outputs: ["y"], attributes: attributes)
        return SI.infer(inputs: [SI.x("x", dims)], nodes: [node], initializers: initializers, outputs: ["y"]).shape("y")
    }

    static func toNHWC(_ dims: [Dim]) -> [Dim] { [dims[0]] + dims[2...] + [dims[1]] }
    static func permutedToNHWC(_ shape: String?) -> String? {
        // "[a,b,c,d]" → "[a,c,d,b]"
        guard let shape, shape.hasPrefix("["), shape.hasSuffix("]") else { return nil }
        let parts = shape.dropFirst().dropLast().split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
        guard parts.count == 4 else { return nil }
        return "[" + [parts[0], parts[2], parts[3], parts[1]].joined(separator: ",") + "]"
    }

    static let inputs: [[Dim]] = [[.fixed(2), .fixed(6), .fixed(11), .fixed(9)], [.symbolic("n"), .fixed(6), .symbolic("h"), .symbolic("w")]]

    static let convAttributes: [[Attribute]] = [
        [Attribute("pads", .ints([1, 0, 2, 1])), Attribute("strides", .ints([2, 1]))],
        [Attribute("dilations", .ints([2, 2])), Attribute("pads", .ints([2, 2, 2, 2]))],
        [Attribute("auto_pad", .string(Array("SAME_UPPER".utf8))), Attribute("strides", .ints([2, 2]))],
        [Attribute("auto_pad", .string(Array("VALID".utf8))), Attribute("strides", .ints([3, 2]))],
        [Attribute("group", .int(3)), Attribute("pads", .ints([1, 1, 1, 1]))],
    ]

    @Test(arguments: 0..<inputs.count, 0..<convAttributes.count) func nhwcConvIsConvPermuted(_ i: Int, _ a: Int) throws {
        let attributes = Self.convAttributes[a]
        let group: Int64 = attributes.contains { $0.name == "group" } ? 3 : 1
        let weights: [Int64] = [8, 6 / group, 3, 3]
        let nchw = try Self.shape("Conv", Self.inputs[i], weights: weights, attributes)
        let nhwc = try Self.shape("NhwcConv", domain: "ai.onnxc", Self.toNHWC(Self.inputs[i]), weights: weights, attributes)
        #expect(nchw != nil)
        #expect(nhwc == Self.permutedToNHWC(nchw), "\(String(describing: nhwc)) vs NCHW \(String(describing: nchw))")
    }

    static let poolAttributes: [[Attribute]] = [
        [Attribute("kernel_shape", .ints([3, 3])), Attribute("strides", .ints([2, 2])), Attribute("pads", .ints([1, 1, 1, 1]))],
        [Attribute("kernel_shape", .ints([2, 2])), Attribute("strides", .ints([2, 2])), Attribute("ceil_mode", .int(1))],
        [Attribute("kernel_shape", .ints([3, 2])), Attribute("dilations", .ints([2, 1])), Attribute("pads", .ints([0, 1, 2, 0]))],
        [Attribute("kernel_shape", .ints([3, 3])), Attribute("strides", .ints([2, 2])), Attribute("auto_pad", .string(Array("SAME_LOWER".utf8)))],
    ]

    @Test(arguments: ["MaxPool", "AveragePool"], 0..<poolAttributes.count) func nhwcPoolsArePoolsPermuted(_ op: String, _ a: Int) throws {
        for dims in Self.inputs {
            let nchw = try Self.shape(op, dims, weights: nil, Self.poolAttributes[a])
            let nhwc = try Self.shape("Nhwc" + op, domain: "ai.onnxc", Self.toNHWC(dims), weights: nil, Self.poolAttributes[a])
            #expect(nchw != nil)
            #expect(nhwc == Self.permutedToNHWC(nchw), "\(op) \(dims): \(String(describing: nhwc)) vs NCHW \(String(describing: nchw))")
        }
    }

    @Test(arguments: ["GlobalAveragePool", "GlobalMaxPool"]) func nhwcGlobalPoolsKeepTheChannelsLast(_ op: String) throws {
        #expect(try Self.shape("Nhwc" + op, domain: "ai.onnxc", [.symbolic("n"), .fixed(7), .symbolic("w"), .fixed(5)], weights: nil, []) == "[n,1,1,5]")
        #expect(try Self.shape(op, [.symbolic("n"), .fixed(5), .fixed(7), .symbolic("w")], weights: nil, []) == "[n,5,1,1]")
    }
}
