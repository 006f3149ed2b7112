#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import OnnxcCore

/// Resize and Upsample, following `onnx/reference/ops/op_resize.py`. Resampling is separable: each resized axis
/// gets a table of (input index, weight) taps per output index, and one pass per axis applies it.
enum ResizeKernels {
    static let table: [String: Kernel] = [
        "Resize": { inputs, context throws(RuntimeError) in
            let x = try context.tensor(inputs, 0)
            let a = context.attributes
            var settings = try Settings(a, opset: context.opset)
            var roi: [Double]?, scales: [Double]?, sizes: [Int]?
            if context.opset < 11 {
                scales = try context.tensor(inputs, 1).doubles()
            } else {
                roi = try context.optionalTensor(inputs, 1).flatMap { $0.count > 0 ? $0.doubles() : nil }
                scales = try context.optionalTensor(inputs, 2).flatMap { $0.count > 0 ? $0.doubles() : nil }
                sizes = try context.optionalTensor(inputs, 3).flatMap { $0.count > 0 ? $0.int64s().map { Int(clamping: $0) } : nil }
            }
            if settings.coordinateMode != .tfCropAndResize { roi = nil }
            let plan = try Plan(x.shape, scales: scales, sizes: sizes, roi: roi, axes: a.ints("axes"), policy: a.string("keep_aspect_ratio_policy", "stretch"), settings: &settings)
            return outputs(try resize(x, plan: plan, mode: settings.mode, op: "Resize"))
        },
        "Upsample": { inputs, context throws(RuntimeError) in
            let x = try context.tensor(inputs, 0)
            let a = context.attributes
            let scales: [Double]
            if context.opset < 9 {
                guard let s = a.floats("scales") else { throw .invalidArgument("Upsample needs a scales attribute") }
                scales = s.map(Double.init)
            } else {
                scales = try context.tensor(inputs, 1).doubles()
            }
            var settings = try Settings(a, opset: 10)
            let plan = try Plan(x.shape, scales: scales, sizes: nil, roi: nil, axes: nil, policy: "stretch", settings: &settings)
            return outputs(try resize(x, plan: plan, mode: settings.mode, op: "Upsample"))
        },
        "GridSample": { inputs, context throws(RuntimeError) in
            let x = try context.tensor(inputs, 0)
            let grid = try context.tensor(inputs, 1)
            let settings = try GridSettings(context.attributes)
            guard x.rank >= 3, grid.rank == x.rank, grid.shape[0] == x.shape[0], grid.shape[grid.rank - 1] == x.rank - 2 else {
                throw .invalidShape("GridSample needs X [N, C, D1…Dr] and grid [N, O1…Or, r], got \(x.shape) and \(grid.shape)")
            }
            let coordinates = try QuantizationKernels.floats(grid, op: "GridSample")
            switch x.dtype {
            case .float, .double, .float16:
                return outputs(try dispatchFloat(x.dtype, op: "GridSample", GridSampleVisitor(x: x, gridShape: grid.shape, grid: coordinates, settings: settings)))
            default:
                // Integer data samples in Double and truncates back, as the reference's astype does.
                let wide = try Tensor(x.doubles(), shape: x.shape)
                let sampled = try GridSampleVisitor(x: wide, gridShape: grid.shape, grid: coordinates, settings: settings).visit(Double.self)
                return outputs(try dispatchInteger(x.dtype, op: "GridSample", NarrowVisitor(values: sampled.array(Double.self), shape: sampled.shape)))
            }
        },
    ]

    /// Builds an integer tensor from Double values (truncating, saturating).
    private struct NarrowVisitor: IntegerVisitor {
        let values: [Double], shape: [Int]
        func visit<T: IntegerElement>(_: T.Type) throws(RuntimeError) -> Tensor {
            try Tensor(values.map { T.from($0) }, shape: shape)
        }
    }

    struct GridSettings {
        enum Padding { case zeros, border, reflection }
        var mode = Mode.linear
        var padding = Padding.zeros
        var alignCorners = false

        init(_ a: Attributes) throws(RuntimeError) {
            switch a.string("mode", "linear") {
            case "linear", "bilinear": mode = .linear
            case "nearest": mode = .nearest
            case "cubic", "bicubic": mode = .cubic
            case let other: throw .invalidArgument("GridSample mode \(other) is not supported")
            }
            switch a.string("padding_mode", "zeros") {
            case "zeros": padding = .zeros
            case "border": padding = .border
            case "reflection": padding = .reflection
            case let other: throw .invalidArgument("GridSample padding_mode \(other) is not supported")
            }
            alignCorners = a.int("align_corners", 0) != 0
        }
    }

    /// Folds a coordinate back into [low, high] by reflecting at the borders, as the reference does.
    private static func reflect(_ x: Double, _ low: Double, _ high: Double) -> Double {
        let range = high - low
        guard range > 0 else { return low }
        if x < low {
            let dx = low - x, n = (dx / range).rounded(.towardZero), r = dx - n * range
            return n.truncatingRemainder(dividingBy: 2) == 0 ? low + r : high - r
        }
        if x > high {
            let dx = x - high, n = (dx / range).rounded(.towardZero), r = dx - n * range
            return n.truncatingRemainder(dividingBy: 2) == 0 ? high - r : low + r
        }
        return x
    }

    /// Samples X at grid locations (normalized to [-1, 1], innermost axis first), following
    /// `onnx/reference/ops/op_grid_sample.py`: coordinates in float32, separable taps, per-axis padding.
    private struct GridSampleVisitor: FloatVisitor {
        let x: Tensor, gridShape: [Int], grid: [Float], settings: GridSettings
        func visit<T: FloatElement>(_: T.Type) throws(RuntimeError) -> Tensor {
            let dims = x.rank - 2
            let spatial = Array(x.shape[2...])
            let outSpatial = Array(gridShape[1..<(gridShape.count - 1)])
            let batch = x.shape[0], channels = x.shape[1]
            let y = try Tensor(zeros: x.dtype, shape: [batch, channels] + outSpatial)
            let inVol = spatial.reduce(1, *), outVol = outSpatial.reduce(1, *)
            guard y.count > 0, inVol > 0 else { return y }
            let strides = Broadcast.strides(spatial)
            let width: Int
            switch settings.mode {
            case .nearest: width = 1
            case .linear: width = 2
            case .cubic: width = 4
            }
            let taps = pow(Double(width), Double(dims))
            guard taps <= Double(1 << 20) else { throw .invalidShape("GridSample over \(dims) spatial axes needs \(taps) taps per sample: too many") }
            let tapCount = Int(taps)
            // Per output position: flat input offsets (-1 reads zero) and weights of every tap.
            var offsets = [Int](repeating: -1, count: tapCount), weights = [T](repeating: 0, count: tapCount)
            var axisIndex = [[Int]](repeating: [Int](repeating: -1, count: width), count: dims)
            var axisWeight = [[T]](repeating: [T](repeating: 0, count: width), count: dims)
            x.withValues(T.self) { xb in
                y.withMutableValues(T.self) { yb in
                    for n in 0..<batch {
                        for o in 0..<outVol {
                            let g = (n * outVol + o) * dims
                            for d in 0..<dims {
                                let size = spatial[d]
                                let normalized = Double(grid[g + dims - 1 - d])
                                var v = Double(Float(settings.alignCorners ? (normalized + 1) / 2 * Double(size - 1) : ((normalized + 1) * Double(size) - 1) / 2))
                                if settings.mode == .nearest { v = Double(Float(v).rounded(.toNearestOrEven)) }
                                let low = settings.alignCorners ? 0 : -0.5, high = settings.alignCorners ? Double(size - 1) : Double(size) - 0.5
                                if v < low || v > high {
                                    switch settings.padding {
                                    case .border: v = min(max(v, 0), Double(size - 1))
                                    case .reflection: v = Double(Float(reflect(v, low, high)))
                                    case .zeros: break
                                    }
                                }
                                func pixel(_ i: Int) -> Int {
                                    switch settings.padding {
                                    case .zeros: return i >= 0 && i < size ? i : -1
                                    case .border: return min(max(i, 0), size - 1)
                                    case .reflection: return min(max(Int(reflect(Double(i), low, high).rounded(.towardZero)), 0), size - 1)
                                    }
                                }
                                guard v.isFinite, abs(v) < 1e9 else {
                                    for j in 0..<width { axisIndex[d][j] = -1; axisWeight[d][j] = 0 }
                                    continue
                                }
                                let base = Int(v.rounded(.down)), r = T(v - Double(base))
                                switch settings.mode {
                                case .nearest:
                                    axisIndex[d][0] = pixel(Int(v))
                                    axisWeight[d][0] = 1
                                case .linear:
                                    axisIndex[d][0] = pixel(base)
                                    axisIndex[d][1] = pixel(base + 1)
                                    axisWeight[d][0] = 1 - r
                                    axisWeight[d][1] = r
                                case .cubic:
                                    let a: T = -0.75, q = 1 - r
                                    axisWeight[d][0] = ((a * (r + 1) - 5 * a) * (r + 1) + 8 * a) * (r + 1) - 4 * a
                                    axisWeight[d][1] = ((a + 2) * r - (a + 3)) * r * r + 1
                                    axisWeight[d][2] = ((a + 2) * q - (a + 3)) * q * q + 1
                                    axisWeight[d][3] = ((a * (q + 1) - 5 * a) * (q + 1) + 8 * a) * (q + 1) - 4 * a
                                    for j in 0..<4 { axisIndex[d][j] = pixel(base - 1 + j) }
                                }
                            }
                            for t in 0..<tapCount {
                                var rest = t, offset = 0, weight: T = 1
                                for d in stride(from: dims - 1, through: 0, by: -1) {
                                    let j = rest % width
                                    rest /= width
                                    let i = axisIndex[d][j]
                                    if i < 0 || offset < 0 { offset = -1 } else { offset += i * strides[d] }
                                    weight *= axisWeight[d][j]
                                }
                                offsets[t] = offset
                                weights[t] = weight
                            }
                            for c in 0..<channels {
                                let plane = (n * channels + c) * inVol
                                var sum: T = 0
                                for t in 0..<tapCount where offsets[t] >= 0 { sum += weights[t] * xb[plane + offsets[t]] }
                                yb[(n * channels + c) * outVol + o] = sum
                            }
                        }
                    }
                }
            }
            return y
        }
    }

    /// Numeric types resample arithmetically; bfloat16 through Float; any other type (bool, string, complex)
    /// only in nearest mode, as a gather of whole elements.
    private static func resize(_ x: Tensor, plan: Plan, mode: Mode, op: String) throws(RuntimeError) -> Tensor {
        if mode == .nearest, x.dtype != .string, x.dtype.storageBytes > 0, let y = try nearestRows(x, plan: plan) { return y }
        switch x.dtype {
        case .float, .double, .float16, .int8, .int16, .int32, .int64, .uint8, .uint16, .uint32, .uint64:
            return try dispatchArithmetic(x.dtype, op: op, ResizeVisitor(x: x, plan: plan))
        case .bfloat16 where mode != .nearest:
            let values = try QuantizationKernels.floats(x, op: op)
            let y = try Tensor(zeros: .bfloat16, shape: plan.outShape)
            try QuantizationKernels.store(resample(values, shape: x.shape, plan: plan), into: y, op: op)
            return y
        default:
            guard mode == .nearest else { throw .unsupportedType(op: "\(op) (linear/cubic)", dtype: x.dtype.onnxName) }
            let sources = nearestSources(shape: x.shape, plan: plan)
            if x.dtype == .string {
                let strings = x.strings ?? []
                return Tensor(strings: sources.map { $0 >= 0 && $0 < strings.count ? strings[$0] : "" }, shape: plan.outShape)
            }
            let width = x.dtype.storageBytes
            guard width > 0 else { throw .unsupportedType(op: op, dtype: x.dtype.onnxName) }
            let y = try Tensor(zeros: x.dtype, shape: plan.outShape)
            x.withBytes { src in
                y.withMutableBytes { dst in
                    for (i, source) in sources.enumerated() where source >= 0 {
                        for b in 0..<width { dst[i * width + b] = src[source * width + b] }
                    }
                }
            }
            return y
        }
    }

    /// Nearest mode as a gather of whole rows: the axes after the last resized one are copied as contiguous blocks
    /// (a channels-last image's pixels). Nil when an output extrapolates with a nonzero value (the gather writes zeros).
    private static func nearestRows(_ x: Tensor, plan: Plan) throws(RuntimeError) -> Tensor? {
        let resized = plan.axes.filter { taps in taps.inSize != taps.outSize || (0..<taps.outSize).contains { taps.index[$0 * taps.width] != $0 } }
        if plan.extrapolation != 0, resized.contains(where: { $0.outside.contains(true) }) { return nil }
        let last = resized.map(\.axis).max() ?? -1
        let inner = x.shape[(last + 1)...].reduce(1, *)
        var rowsPlan = plan
        rowsPlan.axes = resized
        let sources = nearestSources(shape: Array(x.shape.prefix(last + 1)), plan: rowsPlan)
        let y = try Tensor(uninitialized: x.dtype, shape: plan.outShape)
        x.withBytes { source in
            y.withMutableBytes { target in
                guard let from = source.baseAddress, let to = target.baseAddress else { return }
                BlockCopy.gather(sources.map(Int64.init), rowBytes: inner * x.dtype.storageBytes, from: from, to: to)
            }
        }
        return y
    }

    /// For each output element in nearest mode, the flat input index it copies (-1 where it extrapolates).
    private static func nearestSources(shape: [Int], plan: Plan) -> [Int] {
        var map = Array(0..<shape.reduce(1, *))
        var current = shape
        for taps in plan.axes.reversed() {
            let outer = current[..<taps.axis].reduce(1, *), inner = current[(taps.axis + 1)...].reduce(1, *)
            var next = [Int](repeating: -1, count: outer * taps.outSize * inner)
            for a in 0..<outer {
                for o in 0..<taps.outSize where !taps.outside[o] {
                    let target = (a * taps.outSize + o) * inner, source = (a * taps.inSize + taps.index[o * taps.width]) * inner
                    for i in 0..<inner { next[target + i] = map[source + i] }
                }
            }
            map = next
            current[taps.axis] = taps.outSize
        }
        return map
    }

    enum Mode { case nearest, linear, cubic }
    enum CoordinateMode { case halfPixel, halfPixelSymmetric, pytorchHalfPixel, alignCorners, asymmetric, tfCropAndResize, tfHalfPixelForNN }
    /// `simple` is the pre-opset-11 rule (ONNX Runtime's): truncate when upsampling, ceil when downsampling.
    enum NearestMode { case roundPreferFloor, roundPreferCeil, floor, ceil, simple }

    struct Settings {
        var mode = Mode.nearest
        var coordinateMode = CoordinateMode.halfPixel
        var nearestMode = NearestMode.roundPreferFloor
        var cubicA = -0.75
        var excludeOutside = false
        var extrapolation = 0.0
        var antialias = false

        init(_ a: Attributes, opset: Int) throws(RuntimeError) {
            switch a.string("mode", "nearest") {
            case "nearest": mode = .nearest
            case "linear", "bilinear", "trilinear": mode = .linear
            case "cubic" where opset >= 11: mode = .cubic
            case let other: throw .invalidArgument("Resize mode \(other) is not supported")
            }
            if opset < 11 {
                coordinateMode = .asymmetric
                nearestMode = .simple
                return
            }
            switch a.string("coordinate_transformation_mode", "half_pixel") {
            case "half_pixel": coordinateMode = .halfPixel
            case "half_pixel_symmetric": coordinateMode = .halfPixelSymmetric
            case "pytorch_half_pixel": coordinateMode = .pytorchHalfPixel
            case "align_corners": coordinateMode = .alignCorners
            case "asymmetric": coordinateMode = .asymmetric
            case "tf_crop_and_resize": coordinateMode = .tfCropAndResize
            case "tf_half_pixel_for_nn": coordinateMode = .tfHalfPixelForNN  // opset 11 only
            case let other: throw .invalidArgument("coordinate_transformation_mode \(other) is not supported")
            }
            switch a.string("nearest_mode", "round_prefer_floor") {
            case "round_prefer_floor": nearestMode = .roundPreferFloor
            case "round_prefer_ceil": nearestMode = .roundPreferCeil
            case "floor": nearestMode = .floor
            case "ceil": nearestMode = .ceil
            case let other: throw .invalidArgument("nearest_mode \(other) is not supported")
            }
            cubicA = Double(a.float("cubic_coeff_a", -0.75))
            excludeOutside = a.int("exclude_outside", 0) != 0
            extrapolation = Double(a.float("extrapolation_value", 0))
            antialias = a.int("antialias", 0) != 0 && mode != .nearest
        }
    }

    /// Taps of one resized axis: `width` (index, weight) pairs per output index, and which outputs extrapolate.
    struct AxisTaps {
        var axis = 0, inSize = 0, outSize = 0, width = 1
        var index: [Int] = [], weight: [Double] = [], outside: [Bool] = []
    }

    /// The output shape and the per-axis taps.
    struct Plan {
        var outShape: [Int] = []
        var axes: [AxisTaps] = []
        var extrapolation = 0.0

        init(_ shape: [Int], scales rawScales: [Double]?, sizes rawSizes: [Int]?, roi rawRoi: [Double]?, axes rawAxes: [Int64]?, policy: String, settings: inout Settings) throws(RuntimeError) {
            let rank = shape.count
            var axes = Array(0..<rank)
            if let rawAxes {
                axes = []
                for a in rawAxes {
                    guard a >= -Int64(rank), a < Int64(rank) else { throw .invalidArgument("Resize axis \(a) is out of range for rank \(rank)") }
                    let axis = Int(a < 0 ? a + Int64(rank) : a)
                    guard !axes.contains(axis) else { throw .invalidArgument("Resize axes \(rawAxes) repeat an axis") }
                    axes.append(axis)
                }
            }
            var scales = [Double](repeating: 1, count: rank)
            outShape = shape
            if let rawSizes {
                guard rawScales == nil else { throw .invalidArgument("Resize takes scales or sizes, not both") }
                guard rawSizes.count == axes.count, rawSizes.allSatisfy({ $0 >= 0 && $0 <= Int(Int32.max) }) else {
                    throw .invalidArgument("Resize sizes \(rawSizes) must list \(axes.count) non-negative sizes")
                }
                for (i, axis) in axes.enumerated() {
                    outShape[axis] = rawSizes[i]
                    scales[axis] = shape[axis] == 0 ? 1 : Double(rawSizes[i]) / Double(shape[axis])
                }
                if policy != "stretch" {
                    guard policy == "not_larger" || policy == "not_smaller" else { throw .invalidArgument("keep_aspect_ratio_policy \(policy) is not supported") }
                    let chosen = axes.map { scales[$0] }
                    let scale = (policy == "not_larger" ? chosen.min() : chosen.max()) ?? 1
                    for axis in axes {
                        scales[axis] = scale
                        outShape[axis] = Int(scale * Double(shape[axis]) + 0.5)
                    }
                }
            } else if let rawScales {
                guard rawScales.count == axes.count, rawScales.allSatisfy({ $0 > 0 && $0.isFinite }) else {
                    throw .invalidArgument("Resize scales \(rawScales) must list \(axes.count) positive values")
                }
                for (i, axis) in axes.enumerated() {
                    scales[axis] = rawScales[i]
                    let size = rawScales[i] * Double(shape[axis])
                    guard size < Double(Int32.max) else { throw .invalidShape("Resize output size \(size) is too large") }
                    outShape[axis] = Int(size)
                }
            } else {
                throw .invalidArgument("Resize needs scales or sizes")
            }
            guard CheckedSize.elementCount(outShape.map(Int64.init)) != nil else { throw .invalidShape("Resize output \(outShape) is too large") }
            var roi = [Double](repeating: 0, count: rank) + [Double](repeating: 1, count: rank)
            if let rawRoi {
                guard rawRoi.count == 2 * axes.count else { throw .invalidArgument("Resize roi has \(rawRoi.count) values; expected \(2 * axes.count)") }
                for (i, axis) in axes.enumerated() {
                    roi[axis] = rawRoi[i]
                    roi[rank + axis] = rawRoi[axes.count + i]
                }
            }
            extrapolation = settings.extrapolation
            for axis in 0..<rank where shape[axis] == 0 && outShape[axis] > 0 {
                throw .invalidShape("Resize cannot resize axis \(axis) of size 0 to \(outShape[axis])")
            }
            for axis in 0..<rank {
                let identity = outShape[axis] == shape[axis] && scales[axis] == 1 && settings.coordinateMode != .tfCropAndResize
                if identity { continue }
                self.axes.append(try Self.taps(axis: axis, inSize: shape[axis], outSize: outShape[axis], scale: scales[axis], roi: (roi[axis], roi[rank + axis]), settings))
            }
        }

        private static func taps(axis: Int, inSize: Int, outSize: Int, scale: Double, roi: (Double, Double), _ s: Settings) throws(RuntimeError) -> AxisTaps {
            var t = AxisTaps()
            t.axis = axis
            t.inSize = inSize
            t.outSize = outSize
            let outWidth = scale * Double(inSize)
            let antialiasScale = min(scale, 1)
            // Taps run from `start` to 1 - start around the base index; antialiasing widens them as 1/scale.
            let reach: Double
            switch s.mode {
            case .nearest: reach = 0
            case .linear: reach = s.antialias ? (-1 / antialiasScale).rounded(.down) + 1 : 0
            case .cubic: reach = s.antialias ? (-2 / antialiasScale).rounded(.down) + 1 : -1
            }
            // A footprint far wider than the axis only ever reads clamped edge values: refuse it.
            guard -reach <= Double(2 * inSize + 32) else {
                throw .invalidArgument("Resize scale \(scale) is too small to antialias an axis of \(inSize) elements")
            }
            let start = Int(reach)
            t.width = s.mode == .nearest ? 1 : 2 - 2 * start
            t.index = [Int](repeating: 0, count: outSize * t.width)
            t.weight = [Double](repeating: 0, count: outSize * t.width)
            t.outside = [Bool](repeating: false, count: outSize)
            guard inSize > 0 else { return t }
            var coefficients = [Double](repeating: 0, count: t.width)
            for o in 0..<outSize {
                let x = Double(o)
                var original: Double
                switch s.coordinateMode {
                case .alignCorners: original = outWidth == 1 ? 0 : x * Double(inSize - 1) / (outWidth - 1)
                case .asymmetric: original = x / scale
                case .tfCropAndResize:
                    original = outWidth == 1 ? (roi.1 - roi.0) * Double(inSize - 1) / 2 : x * (roi.1 - roi.0) * Double(inSize - 1) / (outWidth - 1)
                    original += roi.0 * Double(inSize - 1)
                    if original < 0 || original > Double(inSize - 1) { t.outside[o] = true; continue }
                case .pytorchHalfPixel: original = outWidth == 1 ? -0.5 : (x + 0.5) / scale - 0.5
                case .halfPixel: original = (x + 0.5) / scale - 0.5
                case .tfHalfPixelForNN: original = (x + 0.5) / scale
                case .halfPixelSymmetric:
                    let adjustment = Double(outSize) / outWidth
                    original = Double(inSize) / 2 * (1 - adjustment) + (x + 0.5) / scale - 0.5
                }
                // Non-finite or far-out coordinates (from a hostile roi) clamp to the edge instead of trapping.
                if original.isNaN { t.outside[o] = true; continue }
                original = min(max(original, -Double(inSize + t.width + 16)), Double(inSize + t.width + 16))
                let base = o * t.width
                if s.mode == .nearest {
                    var i: Double
                    let floor = original.rounded(.down), ratio = original - floor
                    switch s.nearestMode {
                    case _ where ratio == 0: i = original
                    case .roundPreferFloor: i = ratio <= 0.5 ? floor : floor + 1
                    case .roundPreferCeil: i = ratio < 0.5 ? floor : floor + 1
                    case .floor: i = floor
                    case .ceil: i = floor + 1
                    case .simple: i = scale < 1 ? original.rounded(.up) : floor
                    }
                    t.index[base] = Int(max(0, min(Double(inSize - 1), i)))
                    t.weight[base] = 1
                    continue
                }
                // Base f with original in (f, f + 1]: the reference's neighbour choice, including at integers.
                var f = original.rounded(.down)
                if f == original { f -= 1 }
                let ratio = original - f
                switch s.mode {
                case .linear where !s.antialias:
                    coefficients[0] = 1 - ratio
                    coefficients[1] = ratio
                case .cubic where !s.antialias:
                    let a = s.cubicA, r = ratio, q = 1 - ratio
                    coefficients[0] = ((a * (r + 1) - 5 * a) * (r + 1) + 8 * a) * (r + 1) - 4 * a
                    coefficients[1] = ((a + 2) * r - (a + 3)) * r * r + 1
                    coefficients[2] = ((a + 2) * q - (a + 3)) * q * q + 1
                    coefficients[3] = ((a * (q + 1) - 5 * a) * (q + 1) + 8 * a) * (q + 1) - 4 * a
                case .linear:
                    var sum = 0.0
                    for j in 0..<t.width {
                        coefficients[j] = max(0, min(1, 1 - abs((Double(start + j) - ratio) * antialiasScale)))
                        sum += coefficients[j]
                    }
                    if sum != 0 { for j in 0..<t.width { coefficients[j] /= sum } }
                default:
                    var sum = 0.0
                    for j in 0..<t.width {
                        let v = abs(antialiasScale * (Double(start + j) - ratio)), a = s.cubicA
                        coefficients[j] = v <= 1 ? (a + 2) * v * v * v - (a + 3) * v * v + 1 : v < 2 ? a * v * v * v - 5 * a * v * v + 8 * a * v - 4 * a : 0
                        sum += coefficients[j]
                    }
                    if sum != 0 { for j in 0..<t.width { coefficients[j] /= sum } }
                }
                let first = Int(f) + start
                if s.excludeOutside {
                    var sum = 0.0
                    for j in 0..<t.width {
                        if first + j < 0 || first + j >= inSize { coefficients[j] = 0 }
                        sum += coefficients[j]
                    }
                    if sum != 0 { for j in 0..<t.width { coefficients[j] /= sum } }
                }
                for j in 0..<t.width {
                    t.index[base + j] = max(0, min(inSize - 1, first + j))
                    t.weight[base + j] = coefficients[j]
                }
            }
            return t
        }
    }

    private struct ResizeVisitor: ArithmeticVisitor {
        let x: Tensor, plan: Plan
        func visit<T: ArithmeticElement>(_: T.Type) throws(RuntimeError) -> Tensor {
            let y = try Tensor(zeros: x.dtype, shape: plan.outShape)
            if T.self == Float.self || T.self == Float16.self {
                // Float data resamples in Float.
                let input: [Float] = T.self == Float.self ? x.array(Float.self) : x.array(Float16.self).map(Float.init)
                let result = ResizeKernels.resample(input, shape: x.shape, plan: plan)
                if T.self == Float.self {
                    y.withMutableValues(Float.self) { out in for i in 0..<min(out.count, result.count) { out[i] = result[i] } }
                } else {
                    y.withMutableValues(Float16.self) { out in for i in 0..<min(out.count, result.count) { out[i] = Float16(result[i]) } }
                }
                return y
            }
            let result = ResizeKernels.resample(x.withValues(T.self) { $0.map(\.asDouble) }, shape: x.shape, plan: plan)
            y.withMutableValues(T.self) { out in
                for i in 0..<min(out.count, result.count) { out[i] = T.from(result[i]) }
            }
            return y
        }
    }

    /// Applies the plan one axis at a time; the inner loop runs over the contiguous trailing block.
    static func resample<W: BinaryFloatingPoint>(_ input: [W], shape: [Int], plan: Plan) -> [W] {
        var data = input
        var current = shape
        // Innermost axis first, as the reference recursion does, so integer outputs truncate identically.
        for taps in plan.axes.reversed() {
            let outer = current[..<taps.axis].reduce(1, *), inner = current[(taps.axis + 1)...].reduce(1, *)
            var next = [W](repeating: 0, count: outer * taps.outSize * inner)
            let weights = taps.weight.map { W($0) }
            let extrapolation = W(plan.extrapolation)
            data.withUnsafeBufferPointer { src in
                next.withUnsafeMutableBufferPointer { dst in
                    for a in 0..<outer {
                        for o in 0..<taps.outSize {
                            let target = (a * taps.outSize + o) * inner
                            if taps.outside[o] {
                                for i in 0..<inner { dst[target + i] = extrapolation }
                                continue
                            }
                            for j in 0..<taps.width {
                                let w = weights[o * taps.width + j]
                                if w == 0 { continue }
                                let source = (a * taps.inSize + taps.index[o * taps.width + j]) * inner
                                for i in 0..<inner { dst[target + i] += w * src[source + i] }
                            }
                        }
                    }
                }
            }
            data = next
            current[taps.axis] = taps.outSize
        }
        return data
    }
}
