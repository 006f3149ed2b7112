/// ONNX tensor element types, numbered exactly as `TensorProto.DataType` so the raw value is the wire value.
///
/// Every type is stored losslessly; which ones a kernel computes on is the runtime's business, not the IR's.
public enum DType: Int32, CaseIterable, Sendable, Hashable, Comparable {
    case undefined = 0
    case float = 1
    case uint8 = 2
    case int8 = 3
    case uint16 = 4
    case int16 = 5
    case int32 = 6
    case int64 = 7
    case string = 8
    case bool = 9
    case float16 = 10
    case double = 11
    case uint32 = 12
    case uint64 = 13
    case complex64 = 14
    case complex128 = 15
    case bfloat16 = 16
    case float8e4m3fn = 17
    case float8e4m3fnuz = 18
    case float8e5m2 = 19
    case float8e5m2fnuz = 20
    case uint4 = 21
    case int4 = 22

    public static func < (lhs: DType, rhs: DType) -> Bool { lhs.rawValue < rhs.rawValue }

    /// Short name used in dumps (`f32`, `i64`, `bf16`, …): compact enough for one line per node.
    public var shortName: String {
        switch self {
        case .undefined: "undefined"
        case .float: "f32"
        case .uint8: "u8"
        case .int8: "i8"
        case .uint16: "u16"
        case .int16: "i16"
        case .int32: "i32"
        case .int64: "i64"
        case .string: "str"
        case .bool: "bool"
        case .float16: "f16"
        case .double: "f64"
        case .uint32: "u32"
        case .uint64: "u64"
        case .complex64: "c64"
        case .complex128: "c128"
        case .bfloat16: "bf16"
        case .float8e4m3fn: "f8e4m3fn"
        case .float8e4m3fnuz: "f8e4m3fnuz"
        case .float8e5m2: "f8e5m2"
        case .float8e5m2fnuz: "f8e5m2fnuz"
        case .uint4: "u4"
        case .int4: "i4"
        }
    }

    /// The name ONNX uses in `TensorProto.DataType` (`FLOAT`, `INT64`, …), used in JSON and error messages.
    public var onnxName: String {
        switch self {
        case .undefined: "UNDEFINED"
        case .float: "FLOAT"
        case .uint8: "UINT8"
        case .int8: "INT8"
        case .uint16: "UINT16"
        case .int16: "INT16"
        case .int32: "INT32"
        case .int64: "INT64"
        case .string: "STRING"
        case .bool: "BOOL"
        case .float16: "FLOAT16"
        case .double: "DOUBLE"
        case .uint32: "UINT32"
        case .uint64: "UINT64"
        case .complex64: "COMPLEX64"
        case .complex128: "COMPLEX128"
        case .bfloat16: "BFLOAT16"
        case .float8e4m3fn: "FLOAT8E4M3FN"
        case .float8e4m3fnuz: "FLOAT8E4M3FNUZ"
        case .float8e5m2: "FLOAT8E5M2"
        case .float8e5m2fnuz: "FLOAT8E5M2FNUZ"
        case .uint4: "UINT4"
        case .int4: "INT4"
        }
    }

    /// Bits per element in the packed little-endian layout of `raw_data`; nil for strings and `undefined`.
    public var bitWidth: Int? {
        switch self {
        case .undefined, .string: nil
        case .uint4, .int4: 4
        case .uint8, .int8, .bool, .float8e4m3fn, .float8e4m3fnuz, .float8e5m2, .float8e5m2fnuz: 8
        case .uint16, .int16, .float16, .bfloat16: 16
        case .float, .int32, .uint32: 32
        case .double, .int64, .uint64, .complex64: 64
        case .complex128: 128
        }
    }

    public var isFloatingPoint: Bool {
        switch self {
        case .float, .double, .float16, .bfloat16, .float8e4m3fn, .float8e4m3fnuz, .float8e5m2, .float8e5m2fnuz: true
        default: false
        }
    }

    /// Bytes needed to store `count` packed elements (4-bit types round up to whole bytes), or nil on overflow.
    public func byteCount(elements count: Int) -> Int? {
        guard count >= 0, let bits = bitWidth else { return nil }
        if bits == 4 { return count / 2 + count % 2 }
        let (bytes, overflow) = count.multipliedReportingOverflow(by: bits / 8)
        return overflow ? nil : bytes
    }

    /// Looks a type up by its ONNX name or short name, case-insensitively (`float`, `f32`, `INT64`).
    public init?(name: String) {
        let lowered = name.lowercased()
        guard let match = DType.allCases.first(where: { $0.shortName == lowered || $0.onnxName.lowercased() == lowered })
        else { return nil }
        self = match
    }
}
