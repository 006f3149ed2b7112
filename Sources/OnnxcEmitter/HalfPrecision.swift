import OnnxcCore
import OnnxcFormat

/// `-O fp16`: float32 weights stored as float16 (layout code 7 around their own layout), half the file, widened
/// at load so every kernel still computes in float32. Small constants (under 1024 elements: biases, shapes,
/// scalars a shape computation reads) stay float32, as does any weight with a value float16 cannot hold (beyond
/// ±65504: it would become infinite).
enum HalfPrecision {
    static let minimumElements = 1024

    static func narrow(_ tensors: inout [ProgramTensor]) {
        for i in tensors.indices {
            guard case .constant(let data, let layout) = tensors[i].storage, data.dtype == .float, data.elementCount >= minimumElements,
                  case .bytes(let slice) = data.payload else { continue }
            var fits = true
            var half = [UInt8](repeating: 0, count: data.elementCount * 2)
            slice.withUnsafeBytes { raw in
                for e in 0..<data.elementCount {
                    let v = Float(bitPattern: UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: 4 * e, as: UInt32.self)))
                    guard v.isNaN || abs(v) <= Float(Float16.greatestFiniteMagnitude) else { fits = false; return }
                    let bits = Float16(v).bitPattern.littleEndian
                    half[2 * e] = UInt8(truncatingIfNeeded: bits)
                    half[2 * e + 1] = UInt8(truncatingIfNeeded: bits >> 8)
                }
            }
            guard fits, let narrowed = try? TensorData(dtype: .float16, dims: data.dims, payload: .bytes(ByteSlice(copying: half))) else { continue }
            let inner: [Int64]
            switch layout {
            case .plain: inner = [Int64(ConstantLayoutCode.plain)]
            case .packed(let code, let parameters): inner = [Int64(code)] + parameters
            }
            tensors[i].storage = .constant(narrowed, layout: .packed(code: ConstantLayoutCode.halfPrecision, parameters: inner))
        }
    }
}
