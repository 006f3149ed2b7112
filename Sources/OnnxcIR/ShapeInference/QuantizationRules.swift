import OnnxcCore

/// QuantizeLinear/DequantizeLinear/DynamicQuantizeLinear and the quantized linear ops (QLinearMatMul,
/// QLinearConv), whose output element type is the output zero point's.
enum QuantizationRules {
    static let table: [String: InferenceRule] = [
        "QuantizeLinear": { ctx in
            // Output type: the zero point's, else output_dtype (opset 21), else uint8.
            let attr = ctx.int("output_dtype").flatMap { $0 == 0 ? nil : DType(rawValue: Int32(truncatingIfNeeded: $0)) }
            return [InferenceSupport.tensor(ctx.dtype(2) ?? attr ?? .uint8, ctx.shape(0))]
        },
        "DequantizeLinear": { ctx in
            // The scale's type from opset 19 on (float16/bfloat16 allowed); float before.
            [InferenceSupport.tensor(ctx.opset >= 19 ? (ctx.dtype(1) ?? .float) : .float, ctx.shape(0))]
        },
        "DynamicQuantizeLinear": { ctx in
            [InferenceSupport.tensor(.uint8, ctx.shape(0)), .tensor(.float, Shape([])), .tensor(.uint8, Shape([]))]
        },
        "QLinearMatMul": { ctx in
            [InferenceSupport.tensor(ctx.dtype(7), try LinearAlgebraRules.matmulShape(ctx.shape(0), ctx.shape(3)))]
        },
        "QLinearConv": { ctx in
            [InferenceSupport.tensor(ctx.dtype(7), try ConvolutionRules.convShape(ctx, x: 0, w: 3))]
        },
    ]
}
