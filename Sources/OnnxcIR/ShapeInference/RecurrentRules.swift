import OnnxcCore

/// LSTM, GRU and RNN: Y is [seq, directions, batch, hidden] (layout 0) or [batch, seq, directions, hidden]
/// (layout 1); Y_h and Y_c are [directions, batch, hidden] or [batch, directions, hidden]. onnxc's int8 forms
/// (ai.onnxc::QLSTM, QGRU, QRNN: int8 W and R) have the same shapes.
enum RecurrentRules {
    static let table: [String: InferenceRule] = ["LSTM": rnn, "GRU": rnn, "RNN": rnn]

    static let rnn: InferenceRule = { ctx in
        let dtype = ctx.dtype(0)
        let unknown = [ValueType?](repeating: InferenceSupport.tensor(dtype, nil), count: ctx.outputCount)
        guard let x = ctx.shape(0) else { return unknown }
        guard x.rank == 3 else { throw InferenceError("\(ctx.node.opType) input X must be 3-D, got \(x)") }
        let layout = ctx.int("layout", default: 0)
        let seq = layout == 0 ? x.dims[0] : x.dims[1], batch = layout == 0 ? x.dims[1] : x.dims[0]
        let directions: Dim = .fixed(ctx.string("direction") == "bidirectional" ? 2 : 1)
        var hidden: Dim = ctx.int("hidden_size").map(Dim.fixed) ?? .unknown
        if let w = ctx.shape(1), w.rank == 3 {
            _ = try InferenceSupport.unify(w.dims[0], directions, "\(ctx.node.opType) weight \(w) does not match the direction count")
            _ = try InferenceSupport.unify(w.dims[2], x.dims[2], "\(ctx.node.opType) weight \(w) does not match input size of \(x)")
            if hidden == .unknown, let gates = w.dims[1].fixedValue {
                let perHidden: Int64 = ctx.node.opType.hasSuffix("LSTM") ? 4 : ctx.node.opType.hasSuffix("GRU") ? 3 : 1
                hidden = gates % perHidden == 0 ? .fixed(gates / perHidden) : .unknown
            }
        }
        let y = layout == 0 ? Shape([seq, directions, batch, hidden]) : Shape([batch, seq, directions, hidden])
        let state = layout == 0 ? Shape([directions, batch, hidden]) : Shape([batch, directions, hidden])
        return (0..<ctx.outputCount).map { i in InferenceSupport.tensor(dtype, i == 0 ? y : state) }
    }
}
