import OnnxcCore

// float16 and bfloat16 compute in float32: these convert a whole tensor on the way in and out, shared by the
// kernel families that do not have narrow-type loops of their own.

/// float16/bfloat16 as a float32 tensor (nil for other types).
func widenedToFloat(_ t: Tensor) throws(RuntimeError) -> Tensor? {
    guard t.dtype == .float16 || t.dtype == .bfloat16 else { return nil }
    let out = try Tensor(zeros: .float, shape: t.shape)
    out.withMutableValues(Float.self) { dst in
        if t.dtype == .float16 {
            t.withValues(Float16.self) { src in for i in 0..<src.count { dst[i] = Float(src[i]) } }
        } else {
            t.withBytes { raw in
                for i in 0..<dst.count { dst[i] = NarrowFloat.bfloat16(raw.loadUnaligned(fromByteOffset: i * 2, as: UInt16.self)) }
            }
        }
    }
    return out
}

/// A float32 tensor rounded back to `dtype` (float16 or bfloat16, round to nearest even); other tensors as they are.
func narrowed(_ t: Tensor, to dtype: DType) throws(RuntimeError) -> Tensor {
    guard t.dtype == .float, dtype == .float16 || dtype == .bfloat16 else { return t }
    let out = try Tensor(zeros: dtype, shape: t.shape)
    t.withValues(Float.self) { src in
        if dtype == .float16 {
            out.withMutableValues(Float16.self) { dst in for i in 0..<src.count { dst[i] = Float16(src[i]) } }
        } else {
            out.withMutableBytes { raw in
                for i in 0..<src.count { raw.storeBytes(of: CastKernels.bfloat16Bits(src[i]), toByteOffset: i * 2, as: UInt16.self) }
            }
        }
    }
    return out
}

/// Runs `body` on `x`, widening float16/bfloat16 to float32 around it.
func viaFloat(_ x: Tensor, _ body: (Tensor) throws(RuntimeError) -> Tensor) throws(RuntimeError) -> Tensor {
    guard let wide = try widenedToFloat(x) else { return try body(x) }
    return try narrowed(try body(wide), to: x.dtype)
}
