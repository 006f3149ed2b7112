/// Output comparison for tests and `onnxc verify`: same dtype and shape, values within tolerance.
public enum TensorComparison {
    /// What rtol is relative to.
    public enum Scale: Sendable {
        /// Each element's own |expected|, as numpy.allclose.
        case element
        /// The output's largest |expected|: a deep network's outputs near zero carry the rounding of the large
        /// ones (ONNX Runtime's optimized and unoptimized resnet50 logits differ by 6·10⁻⁴ of a small logit but
        /// 3·10⁻⁷ of the largest).
        case output
    }

    /// nil when `actual` matches `expected` (|a − e| ≤ atol + rtol·|e| elementwise, or rtol·max|e| with
    /// `scale: .output`; NaN matching NaN, infinities matching exactly), else a one-line description of the first
    /// difference.
    public static func difference(_ actual: Tensor, _ expected: Tensor, rtol: Double, atol: Double, scale: Scale = .element) -> String? {
        guard actual.dtype == expected.dtype else { return "type \(actual.dtype.onnxName), expected \(expected.dtype.onnxName)" }
        guard actual.shape == expected.shape else { return "shape \(actual.shape), expected \(expected.shape)" }
        if actual.dtype == .string {
            guard let a = actual.strings, let e = expected.strings, a == e else { return "string values differ" }
            return nil
        }
        if actual.dtype == .complex64 || actual.dtype == .complex128 {
            let same = actual.withBytes { a in expected.withBytes { e in a.elementsEqual(e) } }
            return same ? nil : "complex values differ"
        }
        let a = actual.doubles(), e = expected.doubles()
        let largest = scale == .output ? e.reduce(0) { $1.isFinite ? max($0, abs($1)) : $0 } : 0
        func bound(_ y: Double) -> Double { atol + rtol * (scale == .output ? largest : abs(y)) }
        var worst: (index: Int, excess: Double)?
        for i in 0..<a.count {
            let x = a[i], y = e[i]
            if x.isNaN && y.isNaN { continue }
            if x.isInfinite || y.isInfinite {
                if x != y { return "element \(i): \(x), expected \(y)" }
                continue
            }
            let excess = abs(x - y) - bound(y)
            if excess > 0 || x.isNaN || y.isNaN {
                let measured = excess.isNaN ? .infinity : excess
                if measured > (worst?.excess ?? -.infinity) { worst = (i, measured) }
            }
        }
        if let worst {
            let count = zip(a, e).filter { x, y in !(x.isNaN && y.isNaN) && !(abs(x - y) <= bound(y)) }.count
            return "\(count) of \(a.count) elements differ; worst at \(worst.index): \(a[worst.index]), expected \(e[worst.index])"
        }
        return nil
    }

    /// The largest absolute error, the largest error relative to |expected| (over elements where expected is not
    /// 0), and the largest absolute error relative to the output's largest finite |expected|, ignoring positions
    /// where both are NaN; zeros for strings and mismatched shapes.
    public static func maximumErrors(_ actual: Tensor, _ expected: Tensor) -> (absolute: Double, relative: Double, ofOutput: Double) {
        guard actual.dtype == expected.dtype, actual.shape == expected.shape, actual.dtype != .string,
              actual.dtype != .complex64, actual.dtype != .complex128 else { return (0, 0, 0) }
        var absolute = 0.0, relative = 0.0, largest = 0.0
        for (x, y) in zip(actual.doubles(), expected.doubles()) {
            if y.isFinite { largest = max(largest, abs(y)) }
            if (x.isNaN && y.isNaN) || x == y { continue }
            let error = abs(x - y)
            absolute = max(absolute, error.isNaN ? .infinity : error)
            if y != 0 { relative = max(relative, error / abs(y)) }
        }
        return (absolute, relative, largest > 0 ? absolute / largest : absolute)
    }
}
