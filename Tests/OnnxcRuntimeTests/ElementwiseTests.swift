import Foundation
import OnnxcCore
@testable import OnnxcRuntime
import Testing

/// Runs one node on `inputs` (an empty name skips an optional input) and returns its first output.
private func run(_ op: String, _ inputs: [Tensor?], opset: Int = 21, _ attributes: [String: AttributeValue] = [:]) throws -> Tensor {
    let names = inputs.indices.map { inputs[$0] == nil ? "" : "x\($0)" }
    let graph = RuntimeGraph(
        name: "test",
        inputs: names.filter { !$0.isEmpty }.map { RuntimeValueInfo(name: $0, dtype: nil, shape: nil, shapeText: "") },
        outputs: [RuntimeValueInfo(name: "y", dtype: nil, shape: nil, shapeText: "")],
        initializers: [:],
        nodes: [RuntimeNode(name: "n", opType: op, domain: "", opset: opset, inputs: names, outputs: ["y"], attributes: Attributes(attributes))]
    )
    var feeds: [String: Value] = [:]
    for (name, tensor) in zip(names, inputs) { if let tensor { feeds[name] = .tensor(tensor) } }
    let result = try Executor(graph: graph).run(feeds)
    return try #require(result["y"]?.tensor)
}

private func t<T: TensorElement>(_ values: [T], _ shape: [Int]? = nil) throws -> Tensor {
    try Tensor(values, shape: shape ?? [values.count])
}

@Suite struct IntegerArithmeticTests {
    @Test func divisionTruncatesAndNeverTraps() throws {
        let y = try run("Div", [t([7, -7, 5, Int8.min, 3] as [Int8]), t([2, 2, 0, -1, -4] as [Int8])])
        #expect(y.array(Int8.self) == [3, -3, 0, Int8.min, 0])
    }

    @Test func modFollowsPythonSignAndFmodFollowsC() throws {
        let a = try t([-7, 7, -7, 7, 5] as [Int32]), b = try t([3, -3, -3, 3, 0] as [Int32])
        #expect(try run("Mod", [a, b]).array(Int32.self) == [2, -2, -1, 1, 0])
        #expect(try run("Mod", [a, b], ["fmod": .int(1)]).array(Int32.self) == [-1, 1, -1, 1, 0])
    }

    @Test func addWrapsAndBroadcasts() throws {
        let y = try run("Add", [t([250, 10, 1, 2, 3, 4] as [UInt8], [2, 3]), t([10, 0, 1] as [UInt8])])
        #expect(y.shape == [2, 3])
        #expect(y.array(UInt8.self) == [4, 10, 2, 12, 3, 5])
    }

    @Test func zeroSizedOperandsGiveEmptyResults() throws {
        let y = try run("Mul", [Tensor(zeros: .float, shape: [0, 3]), t([1, 2, 3] as [Float])])
        #expect(y.shape == [0, 3])
    }

    @Test func incompatibleShapesThrow() throws {
        #expect(throws: RuntimeError.self) { try run("Add", [t([1, 2] as [Float]), t([1, 2, 3] as [Float])]) }
    }

    @Test func integerPowWrapsAndHandlesNegativeExponents() throws {
        let y = try run("Pow", [t([2, -1, 3, 2] as [Int64]), t([10, 3, -1, 64] as [Int64])])
        #expect(y.array(Int64.self) == [1024, -1, 0, 0])
        let mixed = try run("Pow", [t([2, 3] as [Int32]), t([0.5, 2] as [Float])])
        #expect(mixed.array(Int32.self) == [1, 9])
    }

    @Test func bitShiftPastTheWidthGivesZero() throws {
        let y = try run("BitShift", [t([1, 255] as [UInt8]), t([9, 4] as [UInt8])], ["direction": .string("LEFT")])
        #expect(y.array(UInt8.self) == [0, 240])
    }

    @Test func legacyBroadcastAlignsAtAxis() throws {
        let a = try Tensor(zeros: .float, shape: [2, 3, 2])
        let y = try run("Add", [a, t([1, 2, 3] as [Float])], opset: 6, ["broadcast": .int(1), "axis": .int(1)])
        #expect(y.array(Float.self) == [1, 1, 2, 2, 3, 3, 1, 1, 2, 2, 3, 3])
    }
}

@Suite struct FloatOpsTests {
    @Test func minAndMaxPropagateNaN() throws {
        let y = try run("Max", [t([1, .nan, 3] as [Float]), t([2, 0, .nan] as [Float]), t([0] as [Float])])
        let v = y.array(Float.self)
        #expect(v[0] == 2 && v[1].isNaN && v[2].isNaN)
    }

    @Test func meanOfHalfPrecision() throws {
        let y = try run("Mean", [t([1, 2] as [Float16]), t([3, 5] as [Float16])])
        #expect(y.array(Float16.self) == [2, 3.5])
    }

    @Test func roundIsHalfToEven() throws {
        #expect(try run("Round", [t([0.5, 1.5, 2.5, -0.5, -1.5] as [Double])]).array(Double.self) == [0, 2, 2, -0, -2])
    }

    @Test func isInfHonoursDirectionFlags() throws {
        let x = try t([Float.infinity, -.infinity, 1, .nan])
        #expect(try run("IsInf", [x], ["detect_negative": .int(0)]).array(Bool.self) == [true, false, false, false])
        #expect(try run("IsNaN", [x]).array(Bool.self) == [false, false, false, true])
    }

    @Test func clipWithInputsAttributesAndInvertedBounds() throws {
        let x = try t([-5, 0, 5] as [Int8])
        #expect(try run("Clip", [x, Tensor.scalar(Int8(-1)), nil]).array(Int8.self) == [-1, 0, 5])
        #expect(try run("Clip", [x, Tensor.scalar(Int8(3)), Tensor.scalar(Int8(1))]).array(Int8.self) == [1, 1, 1])
        let f = try t([-5, 0, 5] as [Float])
        #expect(try run("Clip", [f], opset: 6, ["min": .float(-1), "max": .float(2)]).array(Float.self) == [-1, 0, 2])
    }

    @Test func bfloat16AddRoundsBack() throws {
        let one = try CastKernels.convert(t([1, 2] as [Float]), to: .bfloat16)
        let y = try run("Add", [one, one])
        #expect(y.dtype == .bfloat16)
        #expect(y.doubles() == [2, 4])
    }
}

@Suite struct SelectionAndComparisonTests {
    @Test func whereBroadcastsStringsAndNumbers() throws {
        let c = try t([true, false])
        let s = try run("Where", [c, Tensor(strings: ["a"], shape: [1]), Tensor(strings: ["x", "y"], shape: [2])])
        #expect(s.strings == ["a", "y"])
        let n = try run("Where", [try t([true, false], [2, 1]), t([1, 2, 3] as [Int64]), Tensor.scalar(Int64(0))])
        #expect(n.shape == [2, 3])
        #expect(n.array(Int64.self) == [1, 2, 3, 0, 0, 0])
    }

    @Test func whereOnScalarsAndEmptyTensors() throws {
        let s = try run("Where", [Tensor.scalar(false), Tensor.scalar(Int8(1)), Tensor.scalar(Int8(2))])
        #expect(s.shape == [] && s.array(Int8.self) == [2])
        let e = try run("Where", [try t([Bool](), [0, 2]), t([1, 2] as [Double]), Tensor.scalar(Double(0))])
        #expect(e.shape == [0, 2])
        let m = try run("Where", [try t([true, false, false, true], [2, 2]), t([1, 2] as [Float16], [2, 1]), t([9] as [Float16])])
        #expect(m.array(Float16.self) == [1, 9, 9, 2])
    }

    @Test func equalOnStringsBroadcasts() throws {
        let y = try run("Equal", [Tensor(strings: ["a", "b"], shape: [2]), Tensor(strings: ["b"], shape: [])])
        #expect(y.array(Bool.self) == [false, true])
    }
}

@Suite struct ActivationTests {
    @Test func preluBroadcastsIntegerSlopes() throws {
        let y = try run("PRelu", [t([-2, 3, -4, 5] as [Int32], [2, 2]), t([3, 0] as [Int32])])
        #expect(y.array(Int32.self) == [-6, 3, -12, 5])
    }

    @Test func sigmoidAndSoftplusStayFiniteForLargeInputs() throws {
        let x = try t([-1000, 1000] as [Float])
        #expect(try run("Sigmoid", [x]).array(Float.self) == [0, 1])
        #expect(try run("Softplus", [x]).array(Float.self) == [0, 1000])
    }

    @Test func vectorSigmoidIsWithinAFewUlpsOfTheDoubleFormula() throws {
        // 1003 elements: whole 8-wide vectors and a tail; -20…20 covers both branches and saturation.
        var values: [Float] = (0..<1000).map { Float($0) / 25 - 20 }
        values += [.nan, .infinity, -.infinity]
        let y = try run("Sigmoid", [try t(values)]).array(Float.self)
        for (x, s) in zip(values, y) {
            if x.isNaN { #expect(s.isNaN); continue }
            let exact = 1 / (1 + Foundation.exp(-Double(x)))
            #expect(abs(Double(s) - exact) <= 4e-7 * exact + 1e-30, "sigmoid(\(x)) = \(s), expected \(exact)")
        }
    }

    @Test func reluOnIntegers() throws {
        #expect(try run("Relu", [t([-3, 4] as [Int16])]).array(Int16.self) == [0, 4])
    }
}

@Suite struct CastTests {
    private func cast(_ x: Tensor, _ to: DType, opset: Int = 21, saturate: Bool = true) throws -> Tensor {
        try run("Cast", [x], opset: opset, ["to": .int(Int64(to.rawValue)), "saturate": .int(saturate ? 1 : 0)])
    }

    @Test func floatToIntegerFollowsNumpyOnX86() throws {
        let x = try t([300.5, -129.7, .nan, 1e20, -1] as [Float])
        #expect(try cast(x, .int8).array(Int8.self) == [44, 127, 0, 0, -1])
        #expect(try cast(x, .int32).array(Int32.self) == [300, -129, .min, .min, -1])
        #expect(try cast(x, .uint64).array(UInt64.self) == [300, UInt64(bitPattern: -129), 1 << 63, 0, .max])
    }

    @Test func integersWrapAndBoolsAreZeroOrOne() throws {
        #expect(try cast(t([200, -1] as [Int16]), .int8).array(Int8.self) == [-56, -1])
        #expect(try cast(t([0, 7] as [Int64]), .bool).array(Bool.self) == [false, true])
        #expect(try cast(t([UInt64.max]), .float).array(Float.self) == [0x1p64])
    }

    @Test func numbersFormatAsNumpy() throws {
        let f = try t([1.5, 100, 1e16, 123456792, 1e-5, 0.0001, 1234567, -0.0, .infinity, .nan] as [Float])
        let strings = try cast(f, .string).strings
        #expect(strings == ["1.5", "100.0", "1e+16", "1.2345679e+08", "1e-05", "1e-04", "1.234567e+06", "-0.0", "inf", "nan"])
        let d = try t([123456789, 1e15, 1e17, 0.1] as [Double])
        #expect(try cast(d, .string).strings == ["123456789.0", "1000000000000000.0", "1e+17", "0.1"])
        #expect(try cast(t([true, false]), .string).strings == ["True", "False"])
    }

    @Test func stringsParseSpecialValues() throws {
        let s = Tensor(strings: ["INF", "-inf", "+Inf", "NaN", " 2.5 ", "1e3"], shape: [6])
        let v = try cast(s, .double).array(Double.self)
        #expect(v[0] == .infinity && v[1] == -.infinity && v[2] == .infinity && v[3].isNaN && v[4] == 2.5 && v[5] == 1000)
        #expect(try cast(Tensor(strings: ["9007199254740993"], shape: [1]), .int64).array(Int64.self) == [9_007_199_254_740_993])
        #expect(throws: RuntimeError.self) { try cast(Tensor(strings: ["hello"], shape: [1]), .float) }
    }

    @Test func narrowFloatsRoundToNearestEven() throws {
        // 1 + 2^-8 is halfway between two bfloat16 values: ties go to the even one.
        let x = try t([1 + 0x1p-8, 1 + 3 * 0x1p-8] as [Float])
        #expect(try cast(x, .bfloat16).doubles() == [1, 1 + 4 * 0x1p-8])
        #expect(try cast(t([65520] as [Float]), .float16).array(Float16.self) == [.infinity])
    }

    @Test func float8SaturationAndFnuzZero() throws {
        let x = try t([1000, -1000, .infinity, -0.0] as [Float])
        #expect(try cast(x, .float8e4m3fn).doubles() == [448, -448, 448, -0.0])
        let noSat = try cast(x, .float8e4m3fn, saturate: false).doubles()
        #expect(noSat[0].isNaN && noSat[2].isNaN)
        #expect(try cast(x, .float8e5m2, saturate: false).doubles() == [1024, -1024, .infinity, -0.0])
        let fnuz = try cast(t([-0.0, 1e6] as [Float]), .float8e4m3fnuz)
        fnuz.withBytes { #expect(Array($0) == [0, 0x7F]) }
    }

    @Test func fourBitRoundsAndClamps() throws {
        let y = try cast(t([2.5, -9, 3.5, 100] as [Float]), .int4)
        #expect(y.doubles() == [2, -8, 4, 7])
        #expect(try cast(y, .int8).array(Int8.self) == [2, -8, 4, 7])
        #expect(try cast(t([-1, 20] as [Float]), .uint4).doubles() == [0, 15])
    }

    @Test func castOneNamesTheTypeAsAString() throws {
        let y = try run("Cast", [t([1.5] as [Float])], opset: 1, ["to": .string("DOUBLE")])
        #expect(y.array(Double.self) == [1.5])
    }

    @Test func castLikeTakesTheSecondInputsType() throws {
        let y = try run("CastLike", [t([1.7, -2.2] as [Double]), Tensor.scalar(Int32(0))])
        #expect(y.array(Int32.self) == [1, -2])
    }
}
