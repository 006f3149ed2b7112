/// Why a tensor's declared dims and its payload cannot belong together.
public enum TensorDataError: Error, Sendable, Equatable, CustomStringConvertible {
    case negativeDim(Int64)
    case sizeOverflow(dims: [Int64])
    case byteCountMismatch(expected: Int, actual: Int)
    case stringCountMismatch(expected: Int, actual: Int)
    case payloadKind(DType)

    public var description: String {
        switch self {
        case .negativeDim(let dim): "negative dimension \(dim)"
        case .sizeOverflow(let dims): "dims \(dims) describe more elements than fit in memory"
        case .byteCountMismatch(let expected, let actual): "dims need \(expected) bytes of data but \(actual) are present"
        case .stringCountMismatch(let expected, let actual): "dims need \(expected) strings but \(actual) are present"
        case .payloadKind(let dtype): "payload kind does not match data type \(dtype.onnxName)"
        }
    }
}

/// The element payload of a tensor: packed little-endian bytes (as ONNX `raw_data`), or strings as bytes.
public enum TensorPayload: Sendable, Equatable {
    case bytes(ByteSlice)
    case strings([[UInt8]])
}

/// A dense tensor value whose payload is known to match its dtype and dims.
public struct TensorData: Sendable, Equatable {
    public let dtype: DType
    public let dims: [Int64]
    public let payload: TensorPayload
    public let elementCount: Int

    /// Checks that `payload` holds exactly the elements `dims` describe; sizes are overflow-checked first.
    public init(dtype: DType, dims: [Int64], payload: TensorPayload) throws(TensorDataError) {
        if let negative = dims.first(where: { $0 < 0 }) { throw .negativeDim(negative) }
        guard let count = CheckedSize.elementCount(dims) else { throw .sizeOverflow(dims: dims) }
        switch payload {
        case .bytes(let slice):
            guard dtype != .string else { throw .payloadKind(dtype) }
            guard let expected = dtype.byteCount(elements: count) else { throw .sizeOverflow(dims: dims) }
            guard expected == slice.count else { throw .byteCountMismatch(expected: expected, actual: slice.count) }
        case .strings(let strings):
            guard dtype == .string else { throw .payloadKind(dtype) }
            guard strings.count == count else { throw .stringCountMismatch(expected: count, actual: strings.count) }
        }
        self.dtype = dtype
        self.dims = dims
        self.payload = payload
        self.elementCount = count
    }

    /// An int64 tensor (shape vectors, indices), stored little-endian.
    public init(int64s values: [Int64], dims: [Int64]) throws(TensorDataError) {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(values.count * 8)
        for v in values { withUnsafeBytes(of: v.littleEndian) { bytes.append(contentsOf: $0) } }
        try self.init(dtype: .int64, dims: dims, payload: .bytes(ByteSlice(copying: bytes)))
    }

    /// Payload size in bytes (strings count their UTF-8 bytes).
    public var byteCount: Int {
        switch payload {
        case .bytes(let slice): slice.count
        case .strings(let strings): strings.reduce(0) { $0 + $1.count }
        }
    }

    public var bytes: ByteSlice? {
        if case .bytes(let slice) = payload { return slice }
        return nil
    }

    /// Element `index` widened to `Double` for printing and statistics; nil for strings and complex types.
    public func numericValue(at index: Int) -> Double? {
        guard case .bytes(let b) = payload, index >= 0, index < elementCount else { return nil }
        return b.withUnsafeBytes { dtype.numericValue(in: $0, at: index) }
    }

    /// Every element exactly as Int64, for integer and bool tensors; nil for other types and for uint64 values
    /// above Int64.max. (Going through `numericValue` would round int64s beyond 2^53.)
    public func integers() -> [Int64]? {
        guard case .bytes(let b) = payload else { return nil }
        switch dtype {
        case .int64: return (0..<elementCount).map { b.load($0, as: Int64.self) }
        case .uint64:
            var values: [Int64] = []
            values.reserveCapacity(elementCount)
            for i in 0..<elementCount {
                guard let v = Int64(exactly: b.load(i, as: UInt64.self)) else { return nil }
                values.append(v)
            }
            return values
        case .int32, .int16, .int8, .uint32, .uint16, .uint8, .bool, .int4, .uint4:
            // Every value of these types is exact in a Double.
            var values: [Int64] = []
            values.reserveCapacity(elementCount)
            for i in 0..<elementCount {
                guard let v = numericValue(at: i) else { return nil }
                values.append(Int64(v))
            }
            return values
        default:
            return nil
        }
    }

    /// The first `limit` elements as text, the way dumps print them.
    public func formattedValues(limit: Int) -> [String] {
        let shown = min(limit, elementCount)
        switch payload {
        case .strings(let strings):
            return strings.prefix(shown).map { bytes in
                var quoted = ""
                JSON.quote(String(decoding: bytes, as: UTF8.self), into: &quoted)
                return quoted
            }
        case .bytes(let b):
            switch dtype {
            case .complex64:
                return (0..<shown).map { i in
                    let re = Float(bitPattern: b.load(2 * i, as: UInt32.self))
                    let im = Float(bitPattern: b.load(2 * i + 1, as: UInt32.self))
                    return "\(re)\(im < 0 ? "" : "+")\(im)i"
                }
            case .complex128:
                return (0..<shown).map { i in
                    let re = Double(bitPattern: b.load(2 * i, as: UInt64.self))
                    let im = Double(bitPattern: b.load(2 * i + 1, as: UInt64.self))
                    return "\(re)\(im < 0 ? "" : "+")\(im)i"
                }
            case .bool:
                return (0..<shown).map { b.load($0, as: UInt8.self) != 0 ? "true" : "false" }
            default:
                return (0..<shown).map { i in
                    guard let value = numericValue(at: i) else { return "?" }
                    if !dtype.isFloatingPoint, value.magnitude < 1e18 { return String(Int64(value)) }
                    if dtype == .uint64 { return String(b.load(i, as: UInt64.self)) }
                    if dtype == .int64 { return String(b.load(i, as: Int64.self)) }
                    return dtype == .double ? "\(value)" : "\(Float(value))"
                }
            }
        }
    }
}

extension DType {
    /// Element `index` of packed little-endian storage of this type, widened to `Double` (exact for every type
    /// but 64-bit integers beyond 2^53); nil for strings and complex types. The caller guarantees the index is
    /// inside the buffer.
    public func numericValue(in raw: UnsafeRawBufferPointer, at i: Int) -> Double? {
        switch self {
        case .float: return Double(Float(bitPattern: raw.loadUnaligned(fromByteOffset: i * 4, as: UInt32.self).littleEndian))
        case .double: return Double(bitPattern: raw.loadUnaligned(fromByteOffset: i * 8, as: UInt64.self).littleEndian)
        case .float16: return Double(NarrowFloat.float16(raw.loadUnaligned(fromByteOffset: i * 2, as: UInt16.self).littleEndian))
        case .bfloat16: return Double(NarrowFloat.bfloat16(raw.loadUnaligned(fromByteOffset: i * 2, as: UInt16.self).littleEndian))
        case .float8e4m3fn: return Double(NarrowFloat.float8(raw[i], exponentBits: 4, bias: 7, fnuz: false, hasInfinity: false))
        case .float8e4m3fnuz: return Double(NarrowFloat.float8(raw[i], exponentBits: 4, bias: 8, fnuz: true, hasInfinity: false))
        case .float8e5m2: return Double(NarrowFloat.float8(raw[i], exponentBits: 5, bias: 15, fnuz: false, hasInfinity: true))
        case .float8e5m2fnuz: return Double(NarrowFloat.float8(raw[i], exponentBits: 5, bias: 16, fnuz: true, hasInfinity: false))
        case .uint8: return Double(raw[i])
        case .int8: return Double(Int8(bitPattern: raw[i]))
        case .uint16: return Double(raw.loadUnaligned(fromByteOffset: i * 2, as: UInt16.self).littleEndian)
        case .int16: return Double(raw.loadUnaligned(fromByteOffset: i * 2, as: Int16.self).littleEndian)
        case .int32: return Double(raw.loadUnaligned(fromByteOffset: i * 4, as: Int32.self).littleEndian)
        case .uint32: return Double(raw.loadUnaligned(fromByteOffset: i * 4, as: UInt32.self).littleEndian)
        case .int64: return Double(raw.loadUnaligned(fromByteOffset: i * 8, as: Int64.self).littleEndian)
        case .uint64: return Double(raw.loadUnaligned(fromByteOffset: i * 8, as: UInt64.self).littleEndian)
        case .bool: return raw[i] != 0 ? 1 : 0
        case .uint4, .int4:
            let byte = raw[i / 2]
            let nibble = i % 2 == 0 ? byte & 0x0F : byte >> 4
            return self == .int4 && nibble >= 8 ? Double(Int(nibble) - 16) : Double(nibble)
        case .complex64, .complex128, .string, .undefined: return nil
        }
    }
}
