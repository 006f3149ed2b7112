internal import CKernels
import OnnxcCore

/// float32 Add, Sub, Mul and Div with NumPy broadcasting in CKernels (`ck_binary_f32`): the operands' shapes become
/// per-axis strides (0 where broadcast), adjacent axes that stay contiguous together merge, and the innermost axis
/// is vectorized — the same-shape, scalar, per-channel (a squeeze-and-excitation gate, NCHW or NHWC) and bias cases
/// all run as one loop over rows. One IEEE operation per element, as the Swift loops compute.
enum VectorArithmetic {
    enum Operation: Int32 {
        case add = 0, sub = 1, mul = 2, div = 3
    }

    /// a op b into a new tensor of the broadcast shape; nil when the shapes do not broadcast or the merged rank
    /// exceeds the kernel's (the caller's generic path then reports or computes it).
    static func binary(_ operation: Operation, _ a: Tensor, _ b: Tensor) throws(RuntimeError) -> Tensor? {
        guard a.dtype == .float, b.dtype == .float, let shape = try? Broadcast.shape([a.shape, b.shape]) else { return nil }
        let out = try Tensor(uninitialized: .float, shape: shape)
        guard out.count > 0 else { return out }
        let (dims, sa, sb) = Broadcast.mergedAxes(a.shape, b.shape, into: shape)
        guard dims.allSatisfy({ $0 <= Int(Int32.max) }) else { return nil }
        let dims32 = dims.map { Int32($0) }
        let done: Int32 = a.withValues(Float.self) { pa in
            b.withValues(Float.self) { pb in
                out.withMutableValues(Float.self) { po in
                    guard let x = pa.baseAddress, let z = pb.baseAddress, let y = po.baseAddress else { return 0 }
                    return ck_binary_f32(operation.rawValue, Int32(dims.count), dims32, sa, sb, x, z, y)
                }
            }
        }
        return done != 0 ? out : nil
    }
}
