internal import CKernels
public import OnnxcCore

/// Weights packed at compile time for the packed GEMM, so a run reads them in the kernel's order straight from
/// the mapped file instead of repacking every weight on every call.
public enum PrepackedWeights {
    /// CKernels' A-panel height: stored with the packed weights, so a file packed for another height is refused.
    public static var panelRows: Int { Int(CK_MR) }

    /// Float32 2-D convolution weights [M, C, kh, kw] packed as GEMM A panels (m = M, k = C·kh·kw); nil when the
    /// tensor is not such weights or the sizes do not fit the kernel's 32-bit arguments.
    public static func packConvolutionWeights(_ data: TensorData) -> TensorData? {
        guard data.dtype == .float, data.dims.count == 4, case .bytes(let slice) = data.payload,
              let m = Int32(exactly: data.dims[0]), let columns = CheckedSize.elementCount(Array(data.dims[1...])),
              let k = Int32(exactly: columns), m > 0, k > 0 else { return nil }
        let floats = ck_sgemm_packed_a_size(m, k)
        guard floats > 0, let bytes = CheckedSize.multiply(floats, 4) else { return nil }
        let packed = ByteStorage(count: bytes) { out in
            guard let target = out.baseAddress?.assumingMemoryBound(to: Float.self) else { return }
            slice.withUnsafeBytes { source in
                guard let base = source.baseAddress?.assumingMemoryBound(to: Float.self) else { return }
                ck_sgemm_pack_a(m, k, base, Int(k), 1, target)
            }
        }
        return try? TensorData(dtype: .float, dims: [Int64(floats)], payload: .bytes(ByteSlice(packed)))
    }

    /// The byte size packed convolution weights of this logical shape must have.
    public static func packedConvolutionBytes(rows: Int, columns: Int) -> Int? {
        guard let m = Int32(exactly: rows), let k = Int32(exactly: columns), m > 0, k > 0 else { return nil }
        return CheckedSize.multiply(ck_sgemm_packed_a_size(m, k), 4)
    }

    /// CKernels' channels-last panel width (NR), stored with NHWC-packed weights.
    public static var channelsLastPanelWidth: Int { ChannelsLast.panelWidth }

    /// Float32 weights [M, C/groups, kh, kw] of a 2-D channels-last convolution in the indirect GEMM's layout
    /// (`depthwise`: one input and one output channel per group, in the depthwise kernel's layout); nil when the
    /// tensor is not such weights or a size does not fit the kernel's 32-bit arguments.
    public static func packNHWCConvolutionWeights(_ data: TensorData, groups: Int, depthwise: Bool) -> TensorData? {
        guard data.dtype == .float, data.dims.count == 4, case .bytes(let slice) = data.payload, groups >= 1,
              data.dims.allSatisfy({ $0 > 0 && $0 <= Int64(Int32.max) }), data.dims[0] % Int64(groups) == 0,
              !depthwise || (data.dims[1] == 1 && data.dims[0] == Int64(groups)) else { return nil }
        let dims = data.dims.map { Int($0) }
        guard let floats = nhwcPackedFloats(dims: dims, groups: groups, depthwise: depthwise),
              let bytes = CheckedSize.multiply(floats, 4) else { return nil }
        let packed = ByteStorage(count: bytes) { out in
            guard let target = out.baseAddress?.assumingMemoryBound(to: Float.self) else { return }
            slice.withUnsafeBytes { source in
                guard let base = source.baseAddress?.assumingMemoryBound(to: Float.self) else { return }
                ChannelsLast.pack(weights: base, outChannels: dims[0], groupIn: dims[1], kernelH: dims[2], kernelW: dims[3],
                                  groups: groups, depthwise: depthwise, into: target)
            }
        }
        return try? TensorData(dtype: .float, dims: [Int64(floats)], payload: .bytes(ByteSlice(packed)))
    }

    /// int8 weights [M, C/groups, kh, kw] in the integer convolution's layout (`ck_qconv_nhwc_pack`, or the depthwise
    /// kernel's); nil when the tensor is not such weights or a size does not fit the kernel's 32-bit arguments.
    public static func packQuantizedWeights(_ data: TensorData, groups: Int, depthwise: Bool) -> TensorData? {
        QuantizedConvolution.packWeights(data, groups: groups, depthwise: depthwise)
    }

    /// The float count of NHWC-packed weights of logical shape [M, C/groups, kh, kw]; nil when it overflows.
    public static func nhwcPackedFloats(dims: [Int], groups: Int, depthwise: Bool) -> Int? {
        guard dims.count == 4, groups >= 1, dims.allSatisfy({ $0 > 0 && $0 <= Int(Int32.max) }), dims[0] % groups == 0 else { return nil }
        // Bound the product before the C size function computes it in size_t.
        guard let logical = CheckedSize.elementCount(dims.map(Int64.init)), logical <= Int(Int32.max) else { return nil }
        return depthwise
            ? ChannelsLast.packedDepthwiseFloats(channels: dims[0], kernelH: dims[2], kernelW: dims[3])
            : ChannelsLast.packedConvolutionFloats(groups: groups, groupOut: dims[0] / groups, groupIn: dims[1], kernelH: dims[2], kernelW: dims[3])
    }

    /// CKernels' B-panel width (NR), stored with packed GEMM B weights.
    public static var panelColumns: Int { Int(CK_NR) }

    /// A float32 2-D weight used as the B operand (k × n) of a product, packed as CKernels' B panels; `transposed`:
    /// the tensor is [n, k] (Gemm's transB). Nil when it is not such a tensor or a size does not fit 32 bits.
    public static func packGemmWeights(_ data: TensorData, transposed: Bool) -> TensorData? {
        guard data.dtype == .float, data.dims.count == 2, case .bytes(let slice) = data.payload,
              let rows = Int32(exactly: data.dims[0]), let columns = Int32(exactly: data.dims[1]), rows > 0, columns > 0 else { return nil }
        let (k, n) = transposed ? (columns, rows) : (rows, columns)
        guard let bytes = CheckedSize.multiply(ck_sgemm_packed_b_size(k, n), 4) else { return nil }
        let packed = ByteStorage(count: bytes) { out in
            guard let target = out.baseAddress?.assumingMemoryBound(to: Float.self) else { return }
            slice.withUnsafeBytes { source in
                guard let base = source.baseAddress?.assumingMemoryBound(to: Float.self) else { return }
                // Element (p, j) of B: row p, column j of [k, n], or row j, column p of the transposed [n, k].
                ck_sgemm_pack_b(k, n, base, transposed ? 1 : Int(n), transposed ? Int(k) : 1, target)
            }
        }
        return try? TensorData(dtype: .float, dims: [Int64(bytes / 4)], payload: .bytes(ByteSlice(packed)))
    }

    /// The byte size of packed GEMM B weights of k × n.
    public static func packedGemmBytes(k: Int, n: Int) -> Int? {
        guard let k32 = Int32(exactly: k), let n32 = Int32(exactly: n), k > 0, n > 0 else { return nil }
        return CheckedSize.multiply(ck_sgemm_packed_b_size(k32, n32), 4)
    }

    /// Whether a product op takes a packed B: the linear step runs it (`LinearSteps.packable`).
    public static func packsGemmWeights(opType: String, domain: String, attributes: (String) -> Int64?, alphaBeta: (Float, Float),
                                        weightRank: Int, biasIsConstantVector: Bool?) -> Bool {
        LinearSteps.packable(opType: opType, domain: domain, attributes: attributes, alphaBeta: alphaBeta, weightRank: weightRank,
                             biasIsConstantVector: biasIsConstantVector)
    }
}
