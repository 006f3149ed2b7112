internal import CKernels
import OnnxcCore
import OnnxcFormat

/// Steps for the ops that meet channel windows (`TensorWindow`) most: a Concat along the last axis whose operands
/// were written in its result's slot costs nothing, a Split along it publishes its parts where they lie, and an
/// elementwise op reads and writes windows directly. Each exists only for nodes with a window among their tensors
/// (`StepSetup.touchesWindows`) and hands any run it does not cover (another axis, broadcasting, other dtypes)
/// to the registered kernel, which sees dense copies.
enum WindowSteps {
    static let factories: [String: StepFactories.Factory] = [
        "Concat": { setup in ConcatStep(setup) },
        "Split": { setup in SplitStep(setup) },
        "Add": { setup in BinaryStep(setup, CK_BINARY_ADD) },
        "Sub": { setup in BinaryStep(setup, CK_BINARY_SUB) },
        "Mul": { setup in BinaryStep(setup, CK_BINARY_MUL) },
        "Div": { setup in BinaryStep(setup, CK_BINARY_DIV) },
    ]

    /// The registered kernel's step for runs the window form does not cover.
    static func fallback(_ setup: StepSetup) -> GenericStep? {
        guard setup.touchesWindows, let kernel = KernelRegistry.kernel(domain: setup.node.domain, opType: setup.node.opType) else { return nil }
        return GenericStep(node: setup.node, kernel: kernel, inputs: setup.inputs, outputs: setup.outputs,
                           slots: setup.outputs.map(setup.slot), captures: [])
    }

    /// Whether `axis` (ONNX's, possibly negative) is the last of `rank` dims.
    static func isLast(_ axis: Int64, rank: Int) -> Bool { rank > 0 && (axis == -1 || axis == Int64(rank - 1)) }

    struct ConcatStep: Step {
        let node: RuntimeNode
        let inputs: [TensorID]
        let y: TensorID
        let axis: Int64
        let slot: ArenaSlot?
        let window: WindowSlot?
        let fallback: GenericStep

        init?(_ setup: StepSetup) {
            guard let fallback = WindowSteps.fallback(setup), !setup.inputs.isEmpty, setup.inputs.allSatisfy({ $0 >= 0 }) else { return nil }
            node = setup.node
            inputs = setup.inputs
            y = setup.output(0)
            axis = setup.node.attributes.int("axis", 0)
            slot = setup.slot(y)
            window = setup.window(y)
            self.fallback = fallback
        }

        func run(_ frame: Frame) throws(RuntimeError) {
            var parts: [TensorWindow] = []
            parts.reserveCapacity(inputs.count)
            for id in inputs {
                guard let part = try? frame.strided(id, self) else { return try fallback.run(frame) }
                parts.append(part)
            }
            let first = parts[0]
            let leading = first.shape.dropLast()
            guard WindowSteps.isLast(axis, rank: first.shape.count), first.dtype.storageBytes > 0,
                  parts.allSatisfy({ $0.dtype == first.dtype && $0.shape.count == first.shape.count && $0.shape.dropLast() == leading }) else {
                return try fallback.run(frame)
            }
            let width = parts.reduce(0) { $0 + $1.width }
            do {
                let out = try frame.output(window: window, slot: slot, y, first.dtype, Array(leading) + [width])
                var channel = 0
                for part in parts {
                    // An operand its producer wrote in place is already there (`copy` skips the same bytes).
                    part.copy(to: out.window.part(channel: channel, width: part.width))
                    channel += part.width
                }
                frame.publish(y, out)
            } catch {
                throw .atNode(node: node.displayName, op: node.opType, error)
            }
        }
    }

    struct SplitStep: Step {
        let node: RuntimeNode
        let x: TensorID
        let outputs: [TensorID]
        let axis: Int64
        /// The parts' compiled shapes (their last dims are the split sizes).
        let shapes: [[Int]]
        let slots: [ArenaSlot?]
        let windows: [WindowSlot?]
        let fallback: GenericStep

        init?(_ setup: StepSetup) {
            guard let fallback = WindowSteps.fallback(setup) else { return nil }
            var shapes: [[Int]] = []
            for id in setup.outputs {
                guard let shape = setup.staticShape(id), !shape.isEmpty else { return nil }
                shapes.append(shape)
            }
            node = setup.node
            x = setup.input(0)
            outputs = setup.outputs
            axis = setup.node.attributes.int("axis", 0)
            self.shapes = shapes
            slots = setup.outputs.map(setup.slot)
            windows = setup.outputs.map(setup.window)
            self.fallback = fallback
        }

        func run(_ frame: Frame) throws(RuntimeError) {
            let input = try frame.strided(x, self)
            let leading = input.shape.dropLast()
            guard WindowSteps.isLast(axis, rank: input.shape.count), input.dtype.storageBytes > 0,
                  shapes.allSatisfy({ $0.count == input.shape.count && $0.dropLast() == leading }),
                  shapes.reduce(0, { $0 + ($1.last ?? 0) }) == input.width else {
                return try fallback.run(frame)
            }
            do {
                var channel = 0
                for (index, id) in outputs.enumerated() {
                    let width = shapes[index].last ?? 0
                    defer { channel += width }
                    guard id >= 0 else { continue }
                    let out = try frame.output(window: windows[index], slot: slots[index], id, input.dtype, shapes[index])
                    // A part planned where it lies in the input is published as is (`copy` skips the same bytes).
                    input.part(channel: channel, width: width).copy(to: out.window)
                    frame.publish(id, out)
                }
            } catch {
                throw .atNode(node: node.displayName, op: node.opType, error)
            }
        }
    }

    /// Add, Sub, Mul or Div of same-shape float32 operands (`ck_binary_rows_f32`, the arithmetic of the broadcasting
    /// kernel), any of them a window.
    struct BinaryStep: Step {
        let node: RuntimeNode
        let a: TensorID, b: TensorID, y: TensorID
        let operation: Int32
        let slot: ArenaSlot?
        let window: WindowSlot?
        let fallback: GenericStep

        init?(_ setup: StepSetup, _ operation: ck_binary_op) {
            guard let fallback = WindowSteps.fallback(setup), setup.inputs.count == 2, setup.inputs.allSatisfy({ $0 >= 0 }) else { return nil }
            node = setup.node
            a = setup.input(0)
            b = setup.input(1)
            y = setup.output(0)
            self.operation = Int32(operation.rawValue)
            slot = setup.slot(y)
            window = setup.window(y)
            self.fallback = fallback
        }

        func run(_ frame: Frame) throws(RuntimeError) {
            guard let l = try? frame.strided(a, self), let r = try? frame.strided(b, self), l.dtype == .float, r.dtype == .float,
                  l.shape == r.shape else {
                return try fallback.run(frame)
            }
            do {
                let out = try frame.output(window: window, slot: slot, y, .float, l.shape)
                guard ck_binary_rows_f32(operation, l.rows, l.width, l.floats, l.rowStride, r.floats, r.rowStride,
                                         out.window.floats, out.window.rowStride) != 0 else {
                    return try fallback.run(frame)
                }
                frame.publish(y, out)
            } catch {
                throw .atNode(node: node.displayName, op: node.opType, error)
            }
        }
    }
}
