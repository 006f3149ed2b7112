/// Output comparison for tests and `onnxc verify`: same dtype and shape, values within tolerance.
public enum TensorComparison {
    /// nil when `actual` matches `expected` (|a − e| ≤ atol + rtol·|e| elementwise, NaN matching NaN,
    /// infinities matching exactly), else a one-line description of the first difference.
    public static func difference(_ actual: Tensor, _ expected: Tensor, rtol: Double, atol: Double) -> String? {
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
        var worst: (index: Int, excess: Double)?
        for i in 0..<a.count {
            let x = a[i], y = e[i]
            if x.isNaN && y.isNaN { continue }
            if x.isInfinite || y.isInfinite {
                if x != y { return "element \(i): \(x), expected \(y)" }
                continue
            }
            let excess = abs(x - y) - (atol + rtol * abs(y))
            if excess > 0 || x.isNaN || y.isNaN {
                let measured = excess.isNaN ? .infinity : excess
                if measured > (worst?.excess ?? -.infinity) { worst = (i, measured) }
            }
        }
        if let worst {
            let count = zip(a, e).filter { x, y in !(x.isNaN && y.isNaN) && !(abs(x - y) <= atol + rtol * abs(y)) }.count
            return "\(count) of \(a.count) elements differ; worst at \(worst.index): \(a[worst.index]), expected \(e[worst.index])"
        }
        return nil
    }

    /// The largest absolute error and the largest error relative to |expected| (over elements where expected is
    /// not 0), ignoring positions where both are NaN; (0, 0) for strings and mismatched shapes.
    public static func maximumErrors(_ actual: Tensor, _ expected: Tensor) -> (absolute: Double, relative: Double) {
        guard actual.dtype == expected.dtype, actual.shape == expected.shape, actual.dtype != .string,
              actual.dtype != .complex64, actual.dtype != .complex128 else { return (0, 0) }
        var absolute = 0.0, relative = 0.0
        for (x, y) in zip(actual.doubles(), expected.doubles()) where !(x.isNaN && y.isNaN) && !(x == y) {
            let error = abs(x - y)
            absolute = max(absolute, error.isNaN ? .infinity : error)
            if y != 0 { relative = max(relative, error / abs(y)) }
        }
        return (absolute, relative)
    }
}
