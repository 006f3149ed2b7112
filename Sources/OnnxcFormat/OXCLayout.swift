/// The numbers of the `.oxc` format (schemas/oxc-format.md is normative; this file mirrors it).
public enum OXCFormat {
    /// `89 4F 58 43 0D 0A 1A 0A` — "\x89OXC\r\n\x1A\n", PNG's scheme: the high-bit first byte keeps the file
    /// from being taken for text, "OXC" names it, and CR LF / ^Z / LF catch line-ending conversions and
    /// truncated text transfers.
    public static let magic: [UInt8] = [0x89, 0x4F, 0x58, 0x43, 0x0D, 0x0A, 0x1A, 0x0A]
    /// A reader rejects a file whose major version is newer than this.
    public static let majorVersion: UInt16 = 1
    /// A reader accepts any minor version of its major and ignores what it does not know.
    public static let minorVersion: UInt16 = 6

    /// Size of the v1.0 header; a newer minor may append fields (the header states its own size).
    static let headerBytes = 48
    /// Size of a v1.0 section table entry; a newer minor may append fields.
    static let sectionEntryBytes = 32
    /// Byte offset of the header's own CRC32C field (read as zero while computing it).
    static let headerCRCOffset = 44
    /// Constants start at a multiple of this many bytes from the start of the file (one cache line; AVX-512
    /// loads). The arena uses the same alignment.
    public static let constantAlignment = 64
    /// Every section but constants starts at a multiple of this.
    static let sectionAlignment = 8
    /// Subgraphs nested deeper than this are rejected: the interpreter recurses into subgraphs, and no real
    /// model nests If/Loop/Scan bodies more than a handful deep, so 64 leaves room without risking the stack.
    public static let maxGraphNestingDepth = 64
    /// Section table flag: a reader that does not know this section kind must reject the file.
    static let criticalSectionFlag: UInt32 = 1
}

/// Section kinds (append-only).
enum SectionKind: UInt32, CaseIterable {
    case strings = 1
    case metadata = 2
    case tensors = 3
    case constants = 4
    case graphs = 5
    case ops = 6
    case attributes = 7
    case memoryPlan = 8

    var name: String {
        switch self {
        case .strings: "strings"
        case .metadata: "metadata"
        case .tensors: "tensors"
        case .constants: "constants"
        case .graphs: "graphs"
        case .ops: "ops"
        case .attributes: "attributes"
        case .memoryPlan: "memory plan"
        }
    }
}

/// Storage class codes of the tensor table (append-only).
enum StorageCode: UInt32 {
    case dynamic = 0
    case constant = 1
    case arena = 2
    case input = 3
    case window = 4
}

/// Dim kind codes of a tensor's shape (append-only).
enum DimCode: UInt32 {
    case fixed = 0
    case symbolic = 1
    case unknown = 2
}

/// Attribute value tags (append-only).
enum AttributeTag: UInt32 {
    case float = 1
    case int = 2
    case string = 3
    case tensor = 4
    case graph = 5
    case floats = 6
    case ints = 7
    case strings = 8
    case tensors = 9
    case graphs = 10
    case type = 11
}

/// Value-type kind codes of a `type` attribute (append-only).
enum ValueTypeCode: UInt32 {
    case absent = 0
    case tensor = 1
    case sequence = 2
}

/// Constant layout codes (append-only). Code 0 is `ConstantLayout.plain`; every other code is a packed layout
/// with a fixed number of integer parameters.
public enum ConstantLayoutCode {
    public static let plain: UInt32 = 0
    /// Packed GEMM B panels, defined by CKernels; parameters [k, n, nr].
    public static let packedGEMMBPanels: UInt32 = 1

    /// 2-D convolution weights [M, C, kh, kw] packed as CKernels' GEMM A panels (m = M rows, k = C·kh·kw columns,
    /// panels of MR rows); parameters [M, C, kh, kw, MR]. The payload is the packed buffer.
    public static let packedConvWeights: UInt32 = 2

    /// Channels-last convolution weights [M, C/groups, kh, kw] packed as one set of GEMM B panels per group (the
    /// B operand of CKernels' indirect GEMM, `ck_conv_nhwc_pack`); parameters [M, C/groups, kh, kw, groups, NR].
    public static let packedNHWCConvWeights: UInt32 = 3

    /// Channels-last depthwise convolution weights [C, 1, kh, kw] in blocks of NR channels (`ck_depthwise_nhwc_pack`);
    /// parameters [C, 1, kh, kw, NR].
    public static let packedNHWCDepthwiseWeights: UInt32 = 4

    /// int8 channels-last convolution weights [M, C/groups, kh, kw] in `ck_qconv_nhwc_pack`'s layout (quads of
    /// input taps × panels of 16 output channels, then Σw per output channel as int32); parameters
    /// [M, C/groups, kh, kw, groups]. A QGemm's [N, K] weight is stored as [N, K, 1, 1].
    public static let packedQuantizedNHWCWeights: UInt32 = 5

    /// int8 channels-last depthwise weights [C, 1, kh, kw] in `ck_qdepthwise_nhwc_pack`'s layout; parameters
    /// [C, 1, kh, kw].
    public static let packedQuantizedDepthwiseWeights: UInt32 = 6

    /// A float32 constant stored as float16 (`compile -O fp16`: half the size, fp32 compute): the payload is the
    /// float16 form of the constant's float32 payload in its inner layout; parameters [inner code, inner
    /// parameters…]. The reader widens it at load (exactly: every float16 is a float32), then reads the inner layout.
    public static let halfPrecision: UInt32 = 7

    /// Parameter count of each known packed code, nil for others (halfPrecision: 1 + its inner code's). A switch,
    /// not a dictionary: a `[UInt32: Int]` costs a fresh process a scan of every conformance record at load.
    static func parameterCount(_ code: UInt32) -> Int? {
        switch code {
        case packedGEMMBPanels: 3
        case packedConvWeights: 5
        case packedNHWCConvWeights: 6
        case packedNHWCDepthwiseWeights: 5
        case packedQuantizedNHWCWeights: 5
        case packedQuantizedDepthwiseWeights: 4
        default: nil
        }
    }
}
