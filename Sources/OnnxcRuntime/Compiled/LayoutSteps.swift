import CKernels
import OnnxcCore
import OnnxcFormat

/// Steps that only move data: Transpose (the layout transposes of a channels-last model are batched 2-D
/// transposes, a tiled copy), and the ops whose output is their input under another shape (Reshape, Flatten,
/// Squeeze, Unsqueeze, Identity), which the compiler plans into their input's arena slot so they cost nothing.
enum LayoutSteps {
    static let factories: [String: StepFactories.Factory] = [
        "Transpose": { setup in TransposeStep(setup) },
        "Reshape": { setup in ViewStep(setup) },
        "Flatten": { setup in ViewStep(setup) },
        "Squeeze": { setup in ViewStep(setup) },
        "Unsqueeze": { setup in ViewStep(setup) },
        "Identity": { setup in ViewStep(setup) },
    ]

    struct TransposeStep: Step {
        let node: RuntimeNode
        let x: TensorID, y: TensorID
        let perm: [Int]
        let slot: ArenaSlot?

        /// Nil without an explicit, valid perm (the generic kernel handles the reversal default and errors).
        init?(_ setup: StepSetup) {
            guard let given = setup.node.attributes.ints("perm"), Set(given) == Set(0..<Int64(given.count)) else { return nil }
            node = setup.node
            x = setup.input(0)
            y = setup.output(0)
            perm = given.map { Int($0) }
            slot = setup.slot(y)
        }

        func run(_ frame: Frame) throws(RuntimeError) {
            let input = try frame.tensor(x, self)
            guard input.rank == perm.count else {
                throw .atNode(node: node.displayName, op: node.opType, .invalidArgument("Transpose: perm \(perm) does not match rank \(input.rank)"))
            }
            let shape = perm.map { input.shape[$0] }
            if input.dtype != .string, input.dtype.storageBytes == 4, let (batch, rows, columns) = ShapeKernels.batchedTranspose(input.shape, perm),
               [batch, rows, columns].allSatisfy({ $0 <= Int(Int32.max) }) {
                let out = try frame.output(slot, y, input.dtype, shape)
                input.withBytes { source in
                    out.withMutableBytes { target in
                        guard let from = source.baseAddress, let to = target.baseAddress else { return }
                        ChannelsLast.transpose(batch: batch, rows: rows, columns: columns, x: from, y: to)
                    }
                }
                frame.values[Int(y)] = .tensor(out)
                return
            }
            if input.dtype != .string, input.dtype.storageBytes > 0, let (batch, rows, columns, inner) = ShapeKernels.blockTranspose(input.shape, perm),
               let blockBytes = input.dtype.byteCount(elements: inner) {
                // Blocks of `inner` elements: per (batch, source row) one strided copy of its `columns` blocks, or per
                // (batch, column) one of its `rows` blocks — whichever makes fewer calls.
                let out = try frame.output(slot, y, input.dtype, shape)
                input.withBytes { source in
                    out.withMutableBytes { target in
                        guard let from = source.baseAddress, let to = target.baseAddress else { return }
                        let plane = rows * columns * blockBytes
                        for b in 0..<batch {
                            if rows <= columns {
                                for r in 0..<rows {
                                    BlockCopy.rows(columns, rowBytes: blockBytes, from: from + b * plane + r * columns * blockBytes, stride: blockBytes,
                                                   to: to + b * plane + r * blockBytes, stride: rows * blockBytes)
                                }
                            } else {
                                for c in 0..<columns {
                                    BlockCopy.rows(rows, rowBytes: blockBytes, from: from + b * plane + c * blockBytes, stride: columns * blockBytes,
                                                   to: to + b * plane + c * rows * blockBytes, stride: blockBytes)
                                }
                            }
                        }
                    }
                }
                frame.values[Int(y)] = .tensor(out)
                return
            }
            if input.dtype == .uint8 || input.dtype == .int8, let (batch, rows, columns) = ShapeKernels.batchedTranspose(input.shape, perm),
               [batch, rows, columns].allSatisfy({ $0 <= Int(Int32.max) }) {
                let out = try frame.output(slot, y, input.dtype, shape)
                input.withBytes { source in
                    out.withMutableBytes { target in
                        guard let from = source.baseAddress, let to = target.baseAddress else { return }
                        ck_transpose_batched_u8(Int32(batch), Int32(rows), Int32(columns), from.assumingMemoryBound(to: UInt8.self),
                                                to.assumingMemoryBound(to: UInt8.self))
                    }
                }
                frame.values[Int(y)] = .tensor(out)
                return
            }
            do {
                frame.values[Int(y)] = .tensor(try ShapeKernels.permuted(input, perm))
            } catch {
                throw .atNode(node: node.displayName, op: node.opType, error)
            }
        }
    }

    /// The input's elements under the output's compiled shape: a view when the output shares its input's memory
    /// safely (the same arena slot, or memory outside the arena), else a copy into the output's slot.
    struct ViewStep: Step {
        let node: RuntimeNode
        let x: TensorID, y: TensorID
        let shape: [Int]
        let slot: ArenaSlot?
        let inputSlot: ArenaSlot?

        /// Nil when the output's shape is only known at run time (the generic kernel computes it).
        init?(_ setup: StepSetup) {
            guard let shape = setup.staticShape(setup.output(0)), setup.input(0) >= 0 else { return nil }
            node = setup.node
            x = setup.input(0)
            y = setup.output(0)
            self.shape = shape
            slot = setup.slot(y)
            inputSlot = setup.slot(x)
        }

        func run(_ frame: Frame) throws(RuntimeError) {
            let input = try frame.tensor(x, self)
            do throws(RuntimeError) {
                guard input.dtype != .string, input.packing == nil else {
                    frame.values[Int(y)] = .tensor(try input.reshaped(shape))
                    return
                }
                let inArena = input.unsafeBaseAddress.map { frame.arena?.contains($0) ?? false } ?? false
                let own = frame.slot(slot, y)
                if !inArena || (own != nil && own == frame.slot(inputSlot, x)) {
                    if inArena { frame.arenaStatistics.inPlace += 1 }
                    frame.values[Int(y)] = .tensor(try input.reshaped(shape))
                    return
                }
                let out = try frame.output(slot, y, input.dtype, shape)
                guard out.count == input.count else { throw .invalidShape("cannot view \(input.shape) as \(shape)") }
                input.withBytes { source in
                    out.withMutableBytes { target in
                        guard let from = source.baseAddress, let to = target.baseAddress else { return }
                        to.copyMemory(from: from, byteCount: min(source.count, target.count))
                    }
                }
                frame.values[Int(y)] = .tensor(out)
            } catch {
                throw .atNode(node: node.displayName, op: node.opType, error)
            }
        }
    }
}
