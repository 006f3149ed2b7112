public import OnnxcCore

/// NumPy `.npy` files (format versions 1–3): read and write every numeric, bool, complex and string dtype.
/// Fortran-order and object arrays are rejected with a clear message; big-endian data is byte-swapped.
public enum NPY {
    public enum Failure: Error, Sendable, Equatable, CustomStringConvertible {
        case invalid(String)
        public var description: String {
            if case .invalid(let message) = self { return message }
            return ""
        }
    }

    private static let magic: [UInt8] = [0x93, 0x4E, 0x55, 0x4D, 0x50, 0x59]  // \x93NUMPY

    /// A `.npy` file's bytes (a mapped file, say). Little-endian numeric data whose offset is 64-byte aligned —
    /// what NumPy writes — is used in place, without a copy, for as long as the tensor lives; anything else is
    /// decoded into a new tensor.
    public static func read(_ storage: ByteStorage) throws(Failure) -> Tensor {
        let count = storage.count
        guard count >= 12, let base = storage.baseAddress else { return try read(storage.withUnsafeBytes { Array($0) }) }
        let prefix = Array(UnsafeRawBufferPointer(start: base, count: 12))
        let major = prefix[6]
        guard Array(prefix[0..<6]) == magic, major >= 1, major <= 3 else { return try read(storage.withUnsafeBytes { Array($0) }) }
        let headerStart = major == 1 ? 10 : 12
        let headerLength = major == 1 ? Int(prefix[8]) | Int(prefix[9]) << 8
            : Int(prefix[8]) | Int(prefix[9]) << 8 | Int(prefix[10]) << 16 | Int(prefix[11]) << 24
        let dataStart = headerStart + headerLength
        guard dataStart <= count else { throw .invalid("truncated .npy header") }
        let header = String(decoding: UnsafeRawBufferPointer(start: base + headerStart, count: headerLength), as: UTF8.self)
        if let (dtype, shape) = try? nativeLayout(header), dataStart % 64 == 0,
           let elements = CheckedSize.elementCount(shape.map(Int64.init)), let bytes = dtype.byteCount(elements: elements),
           bytes <= count - dataStart, let slice = ByteSlice(storage, offset: dataStart, count: bytes),
           let data = try? TensorData(dtype: dtype, dims: shape.map(Int64.init), payload: .bytes(slice)),
           let tensor = try? Tensor(borrowing: data) {
            return tensor
        }
        return try read(storage.withUnsafeBytes { Array($0) })
    }

    /// The dtype and shape of a header whose data can be used as is: C order, little-endian (or one byte wide),
    /// a fixed-width numeric or bool dtype.
    private static func nativeLayout(_ header: String) throws(Failure) -> (DType, [Int])? {
        guard try field("fortran_order", in: header) != "True" else { return nil }
        let type = try field("descr", in: header).trimming(["'", "\""])
        let shape = try parseShape(try field("shape", in: header))
        let table: [String: DType] = [
            "<f2": .float16, "<f4": .float, "<f8": .double, "|i1": .int8, "<i2": .int16, "<i4": .int32, "<i8": .int64,
            "|u1": .uint8, "<u2": .uint16, "<u4": .uint32, "<u8": .uint64, "|b1": .bool,
        ]
        guard let dtype = table[type] else { return nil }
        return (dtype, shape)
    }

    public static func read(_ bytes: [UInt8]) throws(Failure) -> Tensor {
        guard bytes.count >= 10, Array(bytes[0..<6]) == magic else { throw .invalid("not a .npy file (bad magic)") }
        let major = bytes[6]
        let headerLength: Int
        let headerStart: Int
        switch major {
        case 1:
            headerLength = Int(bytes[8]) | Int(bytes[9]) << 8
            headerStart = 10
        case 2, 3:
            guard bytes.count >= 12 else { throw .invalid("truncated .npy header") }
            headerLength = Int(bytes[8]) | Int(bytes[9]) << 8 | Int(bytes[10]) << 16 | Int(bytes[11]) << 24
            headerStart = 12
        default: throw .invalid(".npy format version \(major) is not supported (1, 2 and 3 are)")
        }
        guard headerStart + headerLength <= bytes.count else { throw .invalid("truncated .npy header") }
        let header = String(decoding: bytes[headerStart..<(headerStart + headerLength)], as: UTF8.self)
        let descr = try field("descr", in: header)
        let fortran = try field("fortran_order", in: header)
        let shapeText = try field("shape", in: header)
        if fortran == "True" { throw .invalid("Fortran-order arrays are not supported; save with np.ascontiguousarray(a)") }
        let shape = try parseShape(shapeText)
        let payload = Array(bytes[(headerStart + headerLength)...])
        guard let count = CheckedSize.elementCount(shape.map(Int64.init)) else { throw .invalid("shape \(shape) is too large") }
        let type = descr.trimming(["'", "\""])
        guard type.count >= 3 else { throw .invalid("unsupported dtype '\(type)'") }
        let order = type.first ?? "<"
        let kind = type.dropFirst().first ?? "?"
        guard let width = Int(type.dropFirst(2)) else { throw .invalid("unsupported dtype '\(type)'") }
        if kind == "O" { throw .invalid("object arrays are not supported; convert to a numeric or string dtype") }
        if kind == "U" {
            guard payload.count >= count * width * 4 else { throw .invalid("the .npy data is shorter than its shape needs") }
            var strings: [String] = []
            for i in 0..<count {
                var scalars = String.UnicodeScalarView()
                for c in 0..<width {
                    let o = (i * width + c) * 4
                    var code = UInt32(payload[o]) | UInt32(payload[o + 1]) << 8 | UInt32(payload[o + 2]) << 16 | UInt32(payload[o + 3]) << 24
                    if order == ">" { code = code.byteSwapped }
                    if code == 0 { break }
                    scalars.append(Unicode.Scalar(code) ?? "\u{FFFD}")
                }
                strings.append(String(scalars))
            }
            return Tensor(strings: strings, shape: shape)
        }
        if kind == "S" {
            guard payload.count >= count * width else { throw .invalid("the .npy data is shorter than its shape needs") }
            let strings = (0..<count).map { i in
                String(decoding: payload[(i * width)..<((i + 1) * width)].prefix { $0 != 0 }, as: UTF8.self)
            }
            return Tensor(strings: strings, shape: shape)
        }
        let dtype: DType
        switch (kind, width) {
        case ("f", 2): dtype = .float16
        case ("f", 4): dtype = .float
        case ("f", 8): dtype = .double
        case ("i", 1): dtype = .int8
        case ("i", 2): dtype = .int16
        case ("i", 4): dtype = .int32
        case ("i", 8): dtype = .int64
        case ("u", 1): dtype = .uint8
        case ("u", 2): dtype = .uint16
        case ("u", 4): dtype = .uint32
        case ("u", 8): dtype = .uint64
        case ("b", 1): dtype = .bool
        case ("c", 8): dtype = .complex64
        case ("c", 16): dtype = .complex128
        default: throw .invalid("unsupported dtype '\(type)'")
        }
        let tensor: Tensor
        do {
            tensor = try Tensor(uninitialized: dtype, shape: shape)
        } catch {
            throw .invalid(error.description)
        }
        guard payload.count >= tensor.byteCount else {
            throw .invalid("the .npy data has \(payload.count) bytes, its shape \(shape) needs \(tensor.byteCount)")
        }
        let lane = kind == "c" ? width / 2 : width
        tensor.withMutableBytes { out in
            payload.withUnsafeBytes { source in
                guard let from = source.baseAddress, let to = out.baseAddress else { return }
                to.copyMemory(from: from, byteCount: tensor.byteCount)
            }
            if order == ">" && lane > 1 {
                for start in stride(from: 0, to: tensor.byteCount, by: lane) {
                    for k in 0..<(lane / 2) { out.swapAt(start + k, start + lane - 1 - k) }
                }
            }
        }
        return tensor
    }

    /// Writes `tensor` as `.npy` through `sink`: the header, then the elements straight from the tensor's memory
    /// (strings are encoded first). `sink` receives each piece once, in order.
    public static func write<E: Error>(_ tensor: Tensor, to sink: (UnsafeRawBufferPointer) throws(E) -> Void) throws(Failure) -> Result<Void, E> {
        if tensor.dtype == .string {
            let bytes = try write(tensor)
            return bytes.withUnsafeBytes { raw in Result { () throws(E) in try sink(raw) } }
        }
        let header = try self.header(tensor)
        let written = header.withUnsafeBytes { raw in Result { () throws(E) in try sink(raw) } }
        guard case .success = written else { return written }
        return tensor.withBytes { raw in Result { () throws(E) in try sink(raw) } }
    }

    /// The `.npy` bytes of `tensor` (format 1.0, little-endian, C order; strings as fixed-width unicode).
    public static func write(_ tensor: Tensor) throws(Failure) -> [UInt8] {
        if tensor.dtype != .string { return try header(tensor) + tensor.withBytes { Array($0) } }
        return try encode(tensor)
    }

    /// The header of a numeric tensor's `.npy` file (its elements follow as they are in memory).
    private static func header(_ tensor: Tensor) throws(Failure) -> [UInt8] {
        try encode(tensor, headerOnly: true)
    }

    private static func encode(_ tensor: Tensor, headerOnly: Bool = false) throws(Failure) -> [UInt8] {
        let descr: String
        var payload: [UInt8] = []
        switch tensor.dtype {
        case .float16: descr = "<f2"
        case .float: descr = "<f4"
        case .double: descr = "<f8"
        case .int8: descr = "|i1"
        case .int16: descr = "<i2"
        case .int32: descr = "<i4"
        case .int64: descr = "<i8"
        case .uint8: descr = "|u1"
        case .uint16: descr = "<u2"
        case .uint32: descr = "<u4"
        case .uint64: descr = "<u8"
        case .bool: descr = "|b1"
        case .complex64: descr = "<c8"
        case .complex128: descr = "<c16"
        case .string:
            let strings = tensor.strings ?? []
            let width = max(1, strings.map { $0.unicodeScalars.count }.max() ?? 1)
            descr = "<U\(width)"
            for string in strings {
                var scalars = Array(string.unicodeScalars.map(\.value))
                scalars += [UInt32](repeating: 0, count: width - scalars.count)
                for code in scalars { payload += [UInt8(code & 0xFF), UInt8(code >> 8 & 0xFF), UInt8(code >> 16 & 0xFF), UInt8(code >> 24)] }
            }
        default:
            throw .invalid("NumPy has no dtype for \(tensor.dtype.onnxName); cast the output to float32 first")
        }
        if tensor.dtype != .string && !headerOnly { payload = tensor.withBytes { Array($0) } }
        let shape = tensor.shape.count == 1 ? "(\(tensor.shape[0]),)" : "(" + tensor.shape.map(String.init).joined(separator: ", ") + ")"
        var header = "{'descr': '\(descr)', 'fortran_order': False, 'shape': \(shape), }"
        // Pad so the data starts on a 64-byte boundary, as NumPy does; the header ends with a newline.
        let total = 10 + header.utf8.count + 1
        header += String(repeating: " ", count: (64 - total % 64) % 64) + "\n"
        let length = header.utf8.count
        return magic + [1, 0, UInt8(length & 0xFF), UInt8(length >> 8)] + Array(header.utf8) + payload
    }

    private static func field(_ name: String, in header: String) throws(Failure) -> String {
        guard let after = suffix(of: header, after: "'\(name)'") ?? suffix(of: header, after: "\"\(name)\"") else {
            throw .invalid(".npy header has no '\(name)'")
        }
        var rest = after.drop { $0 == " " || $0 == ":" }
        if rest.first == "(" {
            guard let close = rest.firstIndex(of: ")") else { throw .invalid(".npy header: unterminated shape") }
            return String(rest[...close])
        }
        if rest.first == "'" || rest.first == "\"" {
            let quote = rest.removeFirst()
            guard let close = rest.firstIndex(of: quote) else { throw .invalid(".npy header: unterminated '\(name)'") }
            return String(rest[..<close])
        }
        return String(rest.prefix { $0 != "," && $0 != "}" }).trimming([" "])
    }

    /// The text after the first occurrence of `key` (Foundation-free, so the runtime stays dependency-light).
    private static func suffix(of text: String, after key: String) -> Substring? {
        let chars = Array(text), pattern = Array(key)
        guard pattern.count <= chars.count else { return nil }
        for start in 0...(chars.count - pattern.count) where Array(chars[start..<(start + pattern.count)]) == pattern {
            return Substring(String(chars[(start + pattern.count)...]))
        }
        return nil
    }

    private static func parseShape(_ text: String) throws(Failure) -> [Int] {
        let inner = text.trimming(["(", ")", " "])
        var dims: [Int] = []
        for part in inner.split(separator: ",") {
            let trimmed = String(part).trimming([" ", "L"])
            if trimmed.isEmpty { continue }
            guard let value = Int(trimmed), value >= 0 else { throw .invalid(".npy shape \(text) is not a tuple of sizes") }
            dims.append(value)
        }
        return dims
    }
}
