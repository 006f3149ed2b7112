import Foundation
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
            return outputs(try dispatchArithmetic(x.dtype, op: "Resize", ResizeVisitor(x: x, plan: plan)))
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
            return outputs(try dispatchArithmetic(x.dtype, op: "Upsample", ResizeVisitor(x: x, plan: plan)))
        },
    ]

    enum Mode { case nearest, linear, cubic }
    enum CoordinateMode { case halfPixel, halfPixelSymmetric, pytorchHalfPixel, alignCorners, asymmetric, tfCropAndResize }
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
            case "tf_half_pixel_for_nn": coordinateMode = .halfPixel  // opset 11 only; differs only for nearest
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
            for axis in 0..<rank {
                let identity = outShape[axis] == shape[axis] && scales[axis] == 1 && settings.coordinateMode != .tfCropAndResize
                if identity { continue }
                self.axes.append(Self.taps(axis: axis, inSize: shape[axis], outSize: outShape[axis], scale: scales[axis], roi: (roi[axis], roi[rank + axis]), settings))
            }
        }

        private static func taps(axis: Int, inSize: Int, outSize: Int, scale: Double, roi: (Double, Double), _ s: Settings) -> AxisTaps {
            var t = AxisTaps()
            t.axis = axis
            t.inSize = inSize
            t.outSize = outSize
            let outWidth = scale * Double(inSize)
            let antialiasScale = min(scale, 1)
            let start: Int
            switch s.mode {
            case .nearest: start = 0; t.width = 1
            case .linear: start = s.antialias ? Int((-1 / antialiasScale).rounded(.down)) + 1 : 0; t.width = 2 - 2 * start
            case .cubic: start = s.antialias ? Int((-2 / antialiasScale).rounded(.down)) + 1 : -1; t.width = 2 - 2 * start
            }
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
                case .halfPixelSymmetric:
                    let adjustment = Double(outSize) / outWidth
                    original = Double(inSize) / 2 * (1 - adjustment) + (x + 0.5) / scale - 0.5
                }
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
        for taps in plan.axes {
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
