/// The arithmetic of linear quantization, as ONNX Runtime's quantizer and the TFLite spec define it:
/// real = scale · (q − zero_point). Activations are uint8 asymmetric per tensor, weights int8 symmetric (zero
/// point 0, [−127, 127], so that −w is representable and a product never needs −128·−128) per output channel,
/// biases int32 at scale s_x·s_w. Every range includes 0 so that zero padding and ReLU's 0 are exact.
public enum QuantizationParameters {
    /// The uint8 grid of an activation tensor.
    public struct Activation: Sendable, Equatable {
        public var scale: Float
        public var zeroPoint: UInt8

        public init(scale: Float, zeroPoint: UInt8) {
            self.scale = scale
            self.zeroPoint = zeroPoint
        }

        /// The smallest and largest real values the grid holds.
        public var representable: (low: Double, high: Double) {
            (Double(scale) * (0 - Double(zeroPoint)), Double(scale) * (255 - Double(zeroPoint)))
        }

        public func quantize(_ x: Float) -> UInt8 {
            let q = (Double(x) / Double(scale)).rounded(.toNearestOrEven) + Double(zeroPoint)
            return UInt8(min(255, max(0, q.isNaN ? 0 : q)))
        }

        public func dequantize(_ q: UInt8) -> Float { Float(Double(scale) * (Double(q) - Double(zeroPoint))) }
    }

    /// ORT's compute_scale_zp for uint8: the range is widened to include 0; a degenerate range (all values 0)
    /// gets scale 1 so that nothing divides by zero downstream.
    public static func activation(low: Double, high: Double) -> Activation {
        let lo = min(low.isFinite ? low : 0, 0), hi = max(high.isFinite ? high : 0, 0)
        guard hi > lo else { return Activation(scale: 1, zeroPoint: 0) }
        var scale = Float((hi - lo) / 255)
        if !(scale > 0) || !scale.isFinite { scale = Float.leastNormalMagnitude }
        let zero = (0 - lo / Double(scale)).rounded(.toNearestOrEven)
        return Activation(scale: scale, zeroPoint: UInt8(min(255, max(0, zero))))
    }

    /// The largest magnitude an int8 weight takes: symmetric, so −128 is never used.
    public static let weightLimit: Double = 127

    /// Symmetric per-channel int8 weights. `channel(i)` maps a flat element index to its channel; an all-zero
    /// channel gets scale 1 (its weights are 0 either way).
    public static func weights(_ values: [Double], channels: Int, channel: (Int) -> Int) -> (q: [Int8], scales: [Float]) {
        var maximum = [Double](repeating: 0, count: channels)
        for (i, v) in values.enumerated() {
            let c = channel(i)
            maximum[c] = max(maximum[c], abs(v.isFinite ? v : 0))
        }
        let scales = maximum.map { m -> Float in
            let s = Float(m / weightLimit)
            return s > 0 && s.isFinite ? s : 1
        }
        var q = [Int8](repeating: 0, count: values.count)
        for (i, v) in values.enumerated() {
            let r = (v / Double(scales[channel(i)])).rounded(.toNearestOrEven)
            q[i] = Int8(min(weightLimit, max(-weightLimit, r.isNaN ? 0 : r)))
        }
        return (q, scales)
    }

    /// int32 biases at scale s_x·s_w[c] (zero point 0). A bias too large for int32 at that scale is clamped and
    /// counted, so the caller can report it (it means a weight scale so small that the layer is nearly zero).
    public static func bias(_ values: [Double], inputScale: Float, weightScales: [Float]) -> (q: [Int32], scales: [Float], clamped: Int) {
        var clamped = 0
        var scales: [Float] = []
        var q: [Int32] = []
        for (c, v) in values.enumerated() {
            let s = Float(Double(inputScale) * Double(weightScales[weightScales.count == 1 ? 0 : c]))
            let scale = s > 0 && s.isFinite ? s : 1
            let r = (v / Double(scale)).rounded(.toNearestOrEven)
            let limit = Double(Int32.max)
            if abs(r) > limit { clamped += 1 }
            q.append(Int32(min(limit, max(-limit, r.isNaN ? 0 : r))))
            scales.append(scale)
        }
        return (q, scales, clamped)
    }
}
