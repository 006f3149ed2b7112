/// A stable number for each operator the runtime executes. The table is append-only: an opcode, once
/// released, keeps its meaning forever, so an old `.oxc` file runs on every later runtime (new ops get new
/// numbers at the end; nothing is ever renumbered or removed). Opcode 0 is invalid. schemas/oxc-format.md
/// lists the same table; a test keeps the two in step.
public struct Opcode: Sendable, Hashable {
    public let rawValue: UInt32

    public init?(rawValue: UInt32) {
        guard rawValue >= 1, Int(rawValue) <= Opcodes.table.count else { return nil }
        self.rawValue = rawValue
    }

    /// The opcode of (domain, op type), canonical domain spelling ("" for ai.onnx).
    public init?(domain: String, opType: String) {
        guard let index = Opcodes.index[Opcodes.key(domain, opType)] else { return nil }
        rawValue = UInt32(index + 1)
    }

    public var domain: String { Opcodes.table[Int(rawValue) - 1].domain }
    public var opType: String { Opcodes.table[Int(rawValue) - 1].opType }
}

public enum Opcodes {
    /// (domain, op type) by opcode - 1. APPEND ONLY.
    public static let table: [(domain: String, opType: String)] = [
        ("", "Abs"),  // 1
        ("", "Acos"),  // 2
        ("", "Acosh"),  // 3
        ("", "Add"),  // 4
        ("", "AffineGrid"),  // 5
        ("", "And"),  // 6
        ("", "ArgMax"),  // 7
        ("", "ArgMin"),  // 8
        ("", "Asin"),  // 9
        ("", "Asinh"),  // 10
        ("", "Atan"),  // 11
        ("", "Atanh"),  // 12
        ("", "AveragePool"),  // 13
        ("", "BatchNormalization"),  // 14
        ("", "Bernoulli"),  // 15
        ("", "BitShift"),  // 16
        ("", "BitwiseAnd"),  // 17
        ("", "BitwiseNot"),  // 18
        ("", "BitwiseOr"),  // 19
        ("", "BitwiseXor"),  // 20
        ("", "BlackmanWindow"),  // 21
        ("", "Cast"),  // 22
        ("", "CastLike"),  // 23
        ("", "Ceil"),  // 24
        ("", "Celu"),  // 25
        ("", "CenterCropPad"),  // 26
        ("", "Clip"),  // 27
        ("", "Col2Im"),  // 28
        ("", "Compress"),  // 29
        ("", "Concat"),  // 30
        ("", "ConcatFromSequence"),  // 31
        ("", "Constant"),  // 32
        ("", "ConstantOfShape"),  // 33
        ("", "Conv"),  // 34
        ("", "ConvInteger"),  // 35
        ("", "ConvTranspose"),  // 36
        ("", "Cos"),  // 37
        ("", "Cosh"),  // 38
        ("", "CumSum"),  // 39
        ("", "DFT"),  // 40
        ("", "DeformConv"),  // 41
        ("", "DepthToSpace"),  // 42
        ("", "DequantizeLinear"),  // 43
        ("", "Det"),  // 44
        ("", "Div"),  // 45
        ("", "Dropout"),  // 46
        ("", "DynamicQuantizeLinear"),  // 47
        ("", "Einsum"),  // 48
        ("", "Elu"),  // 49
        ("", "Equal"),  // 50
        ("", "Erf"),  // 51
        ("", "Exp"),  // 52
        ("", "Expand"),  // 53
        ("", "EyeLike"),  // 54
        ("", "Flatten"),  // 55
        ("", "Floor"),  // 56
        ("", "GRU"),  // 57
        ("", "Gather"),  // 58
        ("", "GatherElements"),  // 59
        ("", "GatherND"),  // 60
        ("", "Gelu"),  // 61
        ("", "Gemm"),  // 62
        ("", "GlobalAveragePool"),  // 63
        ("", "GlobalLpPool"),  // 64
        ("", "GlobalMaxPool"),  // 65
        ("", "Greater"),  // 66
        ("", "GreaterOrEqual"),  // 67
        ("", "GridSample"),  // 68
        ("", "GroupNormalization"),  // 69
        ("", "HammingWindow"),  // 70
        ("", "HannWindow"),  // 71
        ("", "HardSigmoid"),  // 72
        ("", "HardSwish"),  // 73
        ("", "Hardmax"),  // 74
        ("", "Identity"),  // 75
        ("", "If"),  // 76
        ("", "InstanceNormalization"),  // 77
        ("", "IsInf"),  // 78
        ("", "IsNaN"),  // 79
        ("", "LRN"),  // 80
        ("", "LSTM"),  // 81
        ("", "LayerNormalization"),  // 82
        ("", "LeakyRelu"),  // 83
        ("", "Less"),  // 84
        ("", "LessOrEqual"),  // 85
        ("", "Log"),  // 86
        ("", "LogSoftmax"),  // 87
        ("", "Loop"),  // 88
        ("", "LpPool"),  // 89
        ("", "MatMul"),  // 90
        ("", "MatMulInteger"),  // 91
        ("", "Max"),  // 92
        ("", "MaxPool"),  // 93
        ("", "MaxRoiPool"),  // 94
        ("", "MaxUnpool"),  // 95
        ("", "Mean"),  // 96
        ("", "MeanVarianceNormalization"),  // 97
        ("", "MelWeightMatrix"),  // 98
        ("", "Min"),  // 99
        ("", "Mish"),  // 100
        ("", "Mod"),  // 101
        ("", "Mul"),  // 102
        ("", "Multinomial"),  // 103
        ("", "Neg"),  // 104
        ("", "NegativeLogLikelihoodLoss"),  // 105
        ("", "NonMaxSuppression"),  // 106
        ("", "NonZero"),  // 107
        ("", "Not"),  // 108
        ("", "OneHot"),  // 109
        ("", "Optional"),  // 110
        ("", "OptionalGetElement"),  // 111
        ("", "OptionalHasElement"),  // 112
        ("", "Or"),  // 113
        ("", "PRelu"),  // 114
        ("", "Pad"),  // 115
        ("", "Pow"),  // 116
        ("", "QLinearConv"),  // 117
        ("", "QLinearMatMul"),  // 118
        ("", "QuantizeLinear"),  // 119
        ("", "RNN"),  // 120
        ("", "RandomNormal"),  // 121
        ("", "RandomNormalLike"),  // 122
        ("", "RandomUniform"),  // 123
        ("", "RandomUniformLike"),  // 124
        ("", "Range"),  // 125
        ("", "Reciprocal"),  // 126
        ("", "ReduceL1"),  // 127
        ("", "ReduceL2"),  // 128
        ("", "ReduceLogSum"),  // 129
        ("", "ReduceLogSumExp"),  // 130
        ("", "ReduceMax"),  // 131
        ("", "ReduceMean"),  // 132
        ("", "ReduceMin"),  // 133
        ("", "ReduceProd"),  // 134
        ("", "ReduceSum"),  // 135
        ("", "ReduceSumSquare"),  // 136
        ("", "RegexFullMatch"),  // 137
        ("", "Relu"),  // 138
        ("", "Reshape"),  // 139
        ("", "Resize"),  // 140
        ("", "ReverseSequence"),  // 141
        ("", "RoiAlign"),  // 142
        ("", "Round"),  // 143
        ("", "STFT"),  // 144
        ("", "Scan"),  // 145
        ("", "Scatter"),  // 146
        ("", "ScatterElements"),  // 147
        ("", "ScatterND"),  // 148
        ("", "Selu"),  // 149
        ("", "SequenceAt"),  // 150
        ("", "SequenceConstruct"),  // 151
        ("", "SequenceEmpty"),  // 152
        ("", "SequenceErase"),  // 153
        ("", "SequenceInsert"),  // 154
        ("", "SequenceLength"),  // 155
        ("", "SequenceMap"),  // 156
        ("", "Shape"),  // 157
        ("", "Shrink"),  // 158
        ("", "Sigmoid"),  // 159
        ("", "Sign"),  // 160
        ("", "Sin"),  // 161
        ("", "Sinh"),  // 162
        ("", "Size"),  // 163
        ("", "Slice"),  // 164
        ("", "Softmax"),  // 165
        ("", "SoftmaxCrossEntropyLoss"),  // 166
        ("", "Softplus"),  // 167
        ("", "Softsign"),  // 168
        ("", "SpaceToDepth"),  // 169
        ("", "Split"),  // 170
        ("", "SplitToSequence"),  // 171
        ("", "Sqrt"),  // 172
        ("", "Squeeze"),  // 173
        ("", "StringConcat"),  // 174
        ("", "StringNormalizer"),  // 175
        ("", "StringSplit"),  // 176
        ("", "Sub"),  // 177
        ("", "Sum"),  // 178
        ("", "Tan"),  // 179
        ("", "Tanh"),  // 180
        ("", "TfIdfVectorizer"),  // 181
        ("", "ThresholdedRelu"),  // 182
        ("", "Tile"),  // 183
        ("", "TopK"),  // 184
        ("", "Transpose"),  // 185
        ("", "Trilu"),  // 186
        ("", "Unique"),  // 187
        ("", "Unsqueeze"),  // 188
        ("", "Upsample"),  // 189
        ("", "Where"),  // 190
        ("", "Xor"),  // 191
        ("ai.onnx.ml", "ArrayFeatureExtractor"),  // 192
        ("ai.onnx.ml", "Binarizer"),  // 193
        ("ai.onnx.ml", "LabelEncoder"),  // 194
        ("ai.onnx.ml", "TreeEnsemble"),  // 195
        ("ai.onnx.preview.training", "Adagrad"),  // 196
        ("ai.onnx.preview.training", "Adam"),  // 197
        ("ai.onnx.preview.training", "Momentum"),  // 198
        ("ai.onnxc", "Attention"),  // 199
        ("ai.onnxc", "FusedConv"),  // 200
        ("ai.onnxc", "FusedGemm"),  // 201
        ("ai.onnxc", "FusedMatMul"),  // 202
        ("ai.onnxc", "Gelu"),  // 203
        ("ai.onnxc", "LayerNormalization"),  // 204
        ("ai.onnxc", "Silu"),  // 205
        // 1.1: channels-last (NHWC) forms, created by the layout passes for the runtime.
        ("ai.onnxc", "NhwcConv"),  // 206
        ("ai.onnxc", "NhwcMaxPool"),  // 207
        ("ai.onnxc", "NhwcAveragePool"),  // 208
        ("ai.onnxc", "NhwcGlobalAveragePool"),  // 209
        ("ai.onnxc", "NhwcGlobalMaxPool"),  // 210
        // 1.2: integer ops, created by lower-qdq for -O int8.
        ("ai.onnxc", "QLinearConv"),  // 211
        ("ai.onnxc", "QGemm"),  // 212
        ("ai.onnxc", "QLinearAdd"),  // 213
        ("ai.onnxc", "NhwcQLinearConv"),  // 214
        ("ai.onnxc", "QLookup"),  // 215
        ("ai.onnxc", "QLinearMul"),  // 216
        ("ai.onnxc", "NhwcQGlobalAveragePool"),  // 217
        // 1.3: a channels-last integer convolution with a quantized Add of a residual in its epilogue.
        ("ai.onnxc", "NhwcQLinearConvAdd"),  // 218
        // 1.4: recurrent ops with int8 weights and per-run quantized inputs, created by lower-qdq for -O int8-dynamic.
        ("ai.onnxc", "QLSTM"),  // 219
        ("ai.onnxc", "QGRU"),  // 220
        ("ai.onnxc", "QRNN"),  // 221
        // 1.5: AveragePool of a channels-last uint8 tensor between two grids.
        ("ai.onnxc", "NhwcQAveragePool"),  // 222
    ]

    static func key(_ domain: String, _ opType: String) -> String { (domain == "ai.onnx" ? "" : domain) + "::" + opType }

    static let index: [String: Int] = {
        var index: [String: Int] = [:]
        for (i, entry) in table.enumerated() { index[key(entry.domain, entry.opType)] = i }
        return index
    }()
}
