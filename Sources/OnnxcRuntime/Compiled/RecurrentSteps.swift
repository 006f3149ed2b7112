import OnnxcCore
import OnnxcFormat

/// RNN, GRU and LSTM (and their int8 forms QRNN, QGRU, QLSTM) with constant weights: the projections — W and R
/// packed into the float GEMM's panels, or the int8 weights into the integer kernel's — are made once when the
/// model loads and shared by every run, which then only executes (packing them per run cost as much as a quarter
/// of a 100-step LSTM's time). The op runs as the generic step would, with those projections.
enum RecurrentSteps {
    static let factories: [String: StepFactories.Factory] = {
        var table: [String: StepFactories.Factory] = [:]
        let factory: StepFactories.Factory = { setup throws(RuntimeError) in try make(setup) }
        for op in ["RNN", "GRU", "LSTM"] {
            table[op] = factory
            table[KernelRegistry.key(RuntimeOps.domain, "Q" + op)] = factory
        }
        return table
    }()

    static func make(_ setup: StepSetup) throws(RuntimeError) -> (any Step)? {
        guard let kind = RecurrentKernels.cell(of: setup.node), setup.dtype(setup.input(0)) == .float,
              let w = setup.constant(1), let r = setup.constant(2) else { return nil }
        let cell = kind.cell, quantized = kind.quantized
        var wScale: Tensor?, rScale: Tensor?
        if quantized {
            let slot = cell == .lstm ? 8 : 6
            guard let ws = setup.constant(slot), let rs = setup.constant(slot + 1) else { return nil }
            (wScale, rScale) = (ws, rs)
        }
        guard let prepared = try RecurrentKernels.prepare(setup.node, cell: cell, quantized: quantized, w: w, r: r, wScale: wScale, rScale: rScale) else {
            return nil
        }
        let kernel: Kernel = { inputs, context throws(RuntimeError) in
            try RecurrentKernels.run(cell, quantized: quantized, inputs, context, prepared: prepared)
        }
        return GenericStep(node: setup.node, kernel: kernel, inputs: setup.inputs, outputs: setup.outputs,
                           slots: setup.outputs.map(setup.slot), captures: [])
    }
}
