import CKernels
import OnnxcCore
import OnnxcFormat

/// Steps for int8 models: per-tensor QuantizeLinear/DequantizeLinear (the float islands' borders) with the
/// grid read once at load. Other forms (per-axis, blocked, int8/int4/float8 targets) run on the generic step.
enum QuantizedSteps {
    static let factories: [String: StepFactories.Factory] = [
        "QuantizeLinear": { setup throws(RuntimeError) in Grid(setup, dequantize: false).map { QuantizeStep(setup, $0) } },
        "DequantizeLinear": { setup throws(RuntimeError) in Grid(setup, dequantize: true).map { DequantizeStep(setup, $0) } },
    ]

    /// A per-tensor uint8 grid from constant scale and zero point inputs.
    struct Grid {
        let scale: Float
        let zeroPoint: Int32

        init?(_ setup: StepSetup, dequantize: Bool) {
            guard setup.node.attributes.int("block_size", 0) == 0, let s = setup.constant(1), s.dtype == .float, s.count == 1,
                  let z = setup.constant(2), z.dtype == .uint8, z.count == 1 else { return nil }
            if dequantize, setup.dtype(setup.input(0)) != .uint8 { return nil }
            if !dequantize, setup.dtype(setup.input(0)) != .float { return nil }
            scale = s.array(Float.self)[0]
            zeroPoint = Int32(z.array(UInt8.self)[0])
        }
    }

    struct QuantizeStep: Step {
        let node: RuntimeNode
        let x: TensorID, y: TensorID
        let grid: Grid
        let slot: ArenaSlot?

        init(_ setup: StepSetup, _ grid: Grid) {
            node = setup.node
            x = setup.input(0)
            y = setup.output(0)
            self.grid = grid
            slot = setup.slot(y)
        }

        func run(_ frame: Frame) throws(RuntimeError) {
            let input = try frame.tensor(x, self)
            guard input.dtype == .float else { throw .atNode(node: node.displayName, op: node.opType, .unsupportedType(op: node.opType, dtype: input.dtype.onnxName)) }
            let out = try frame.output(slot, y, .uint8, input.shape)
            input.withValues(Float.self) { xb in
                out.withMutableValues(UInt8.self) { yb in
                    guard let xp = xb.baseAddress, let yp = yb.baseAddress else { return }
                    ck_quantize_u8(xb.count, xp, grid.scale, grid.zeroPoint, yp)
                }
            }
            frame.values[Int(y)] = .tensor(out)
        }
    }

    struct DequantizeStep: Step {
        let node: RuntimeNode
        let x: TensorID, y: TensorID
        let grid: Grid
        let slot: ArenaSlot?

        init(_ setup: StepSetup, _ grid: Grid) {
            node = setup.node
            x = setup.input(0)
            y = setup.output(0)
            self.grid = grid
            slot = setup.slot(y)
        }

        func run(_ frame: Frame) throws(RuntimeError) {
            let input = try frame.tensor(x, self)
            guard input.dtype == .uint8 else { throw .atNode(node: node.displayName, op: node.opType, .unsupportedType(op: node.opType, dtype: input.dtype.onnxName)) }
            let out = try frame.output(slot, y, .float, input.shape)
            input.withValues(UInt8.self) { xb in
                out.withMutableValues(Float.self) { yb in
                    guard let xp = xb.baseAddress, let yp = yb.baseAddress else { return }
                    ck_dequantize_u8(xb.count, xp, grid.scale, grid.zeroPoint, yp)
                }
            }
            frame.values[Int(y)] = .tensor(out)
        }
    }
}
