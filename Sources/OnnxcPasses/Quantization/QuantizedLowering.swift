import OnnxcCore
public import OnnxcIR

/// Lowers QDQ groups to integer ops, for the compile path (what ORT's QDQ selector/action transformers do).
///
/// Matches, where every DequantizeLinear reads a uint8 (activations: per-tensor) or int8/int32 constant (weights,
/// biases) and every QuantizeLinear writes uint8 per tensor:
/// - DQ(x) → Conv(DQ(W), DQ(B)?) [→ Relu/Clip] → Q: `QLinearConv`; without a Q after it (only float ops read
///   it), `ai.onnxc::QLinearConv` with no output grid, which writes float32 from the int32 sums.
/// - DQ(x) → Gemm(DQ(W), DQ(C)?) / MatMul(DQ(W)) [+ DQ(B int32 [N])] [→ Relu/Clip] [→ Q]: `ai.onnxc::QGemm` (W as [N, K]).
/// - The same with x from DynamicQuantizeLinear (`-O int8-dynamic`): the float-output forms, reading the grid
///   and a float bias at run time.
/// - LSTM / GRU / RNN(DQ(W int8), DQ(R int8)) (`-O int8-dynamic`; a Reshape after a two-direction DQ too):
///   `ai.onnxc::QLSTM` / `QGRU` / `QRNN`, which quantize X and the hidden state per run.
/// - DQ(a) + DQ(b) whose inferred shapes broadcast (symbolic dims by name) [→ Relu/Clip] → Q: `ai.onnxc::QLinearAdd`.
/// - Gather(DQ(T int8, per tensor), indices): DQ(Gather(T, indices)) — an embedding table stays int8.
/// - DQ(x) → MaxPool / Reshape / Flatten / Transpose / Squeeze / Unsqueeze / Slice / Split / Resize (nearest) → Q
///   on the same grid: the op on x.
/// - DQ(x_i) → Concat → Q, all on one grid: Concat of the x_i.
/// - DQ(x) → Sigmoid / Tanh / HardSigmoid / HardSwish / LeakyRelu / Gelu / Relu / Elu / Softplus → Q:
///   `ai.onnxc::QLookup` with the 256-entry table Q(f(DQ(q))); DQ(x) · DQ(Q(Sigmoid(DQ(x)))) → Q (SiLU) too, from
///   x alone (more exact than the QDQ form, which rounds the sigmoid first).
/// - DQ(x) + − · ÷ a one-value float constant → Q: `ai.onnxc::QLookup` (x ÷ c only, not c ÷ x).
/// - DQ(x) → a chain of element-wise ops of x alone (`ElementwiseRegion`: GELU spelled out, …) → Q: one
///   `ai.onnxc::QLookup`, its table the chain run on x's 256 grid values.
/// - DQ(a) · DQ(b) → Q whose inferred shapes broadcast (not SiLU's pattern, which is a table): `ai.onnxc::QLinearMul`,
///   a gate of one value per image and channel ([N, 1, …, 1, C], channels last) as its second operand;
///   DQ(x) → ai.onnxc::NhwcGlobalAveragePool / NhwcAveragePool → Q: `ai.onnxc::NhwcQGlobalAveragePool` /
///   `NhwcQAveragePool` (these after the layout stage,
///   which is why `compile -O int8` runs this pass again then).
/// - Q(DQ(x)) on the same grid: x.
/// A Relu or Clip is absorbed only where the output grid's clamping computes it exactly (Relu: zero point 0;
/// Clip: bounds outside the grid's range). Preconditions: runtime target; QDQ as `QDQInsertion` writes it
/// (bias scale s_x·s_w). Numerics: integer sums are exact; requantization rounds once, where QDQ in float
/// rounds the float sum once: results agree to one quantization step. Tested by: QuantizedLoweringTests.
public struct QuantizedLowering: Pass {
    public let id = "lower-qdq"
    public let summary = "lower QuantizeLinear/DequantizeLinear groups to integer ops (runtime target)"

    public init() {}

    /// A per-tensor DequantizeLinear of a uint8 value: its node and inputs.
    struct Grid {
        var node: Int
        var q: String
        var scale: String
        var zero: String
        var scaleValue: Float
        var zeroValue: Int
    }

    public func run(on graph: Graph, context: PassContext) -> GraphPatch? {
        guard context.allowsRuntimeOps else { return nil }
        let index = GraphIndex(graph)
        let types = LayoutSupport.tensorTypes(graph)
        var taken = FusionSupport.takenNames(graph)
        var patch = GraphPatch()
        func free(_ nodes: [Int]) -> Bool { nodes.allSatisfy { patch.replacements[$0] == nil } }
        func constantValues(_ name: String) -> [Double]? {
            guard let t = FusionSupport.constant(name, in: graph) else { return nil }
            return (0..<t.data.elementCount).compactMap { t.data.numericValue(at: $0) }
        }
        /// The DequantizeLinear producing `value`, when it is per-tensor over a computed uint8 tensor (the zero point's
        /// type fixes the input's; a constant input would be a weight).
        func activation(_ value: String) -> Grid? {
            guard let (p, _) = index.producer(of: value) else { return nil }
            let node = graph.nodes[p]
            guard node.opType == "DequantizeLinear", node.domain.isEmpty, node.inputs.count == 3,
                  let s = constantValues(node.inputs[1]), s.count == 1, let z = FusionSupport.constant(node.inputs[2], in: graph),
                  z.dtype == .uint8, z.data.elementCount == 1, let zv = z.data.numericValue(at: 0),
                  FusionSupport.constant(node.inputs[0], in: graph) == nil else { return nil }
            return Grid(node: p, q: node.inputs[0], scale: node.inputs[1], zero: node.inputs[2], scaleValue: Float(s[0]), zeroValue: Int(zv))
        }
        /// A DequantizeLinear of DynamicQuantizeLinear's three outputs (`-O int8-dynamic`): its grid is known only
        /// at run time, so the consumer writes float (scale and zero point read per run).
        func dynamicActivation(_ value: String) -> Grid? {
            guard let (p, _) = index.producer(of: value) else { return nil }
            let node = graph.nodes[p]
            guard node.opType == "DequantizeLinear", node.domain.isEmpty, node.inputs.count == 3, let (d, o) = index.producer(of: node.inputs[0]), o == 0,
                  graph.nodes[d].opType == "DynamicQuantizeLinear", graph.nodes[d].outputs.count == 3,
                  Array(node.inputs) == graph.nodes[d].outputs else { return nil }
            return Grid(node: p, q: node.inputs[0], scale: node.inputs[1], zero: node.inputs[2], scaleValue: 0, zeroValue: -1)
        }
        /// The DequantizeLinear producing `value` from a constant of `dtype` (weights, biases).
        func constantDQ(_ value: String, _ dtype: DType) -> (node: Node, tensor: Tensor)? {
            guard let (p, _) = index.producer(of: value) else { return nil }
            let node = graph.nodes[p]
            guard node.opType == "DequantizeLinear", node.domain.isEmpty, node.inputs.count >= 2,
                  let t = FusionSupport.constant(node.inputs[0], in: graph), t.dtype == dtype else { return nil }
            if node.inputs.count > 2, !node.inputs[2].isEmpty {
                guard let z = constantValues(node.inputs[2]), z.allSatisfy({ $0 == 0 }) else { return nil }
            }
            return (node, t)
        }
        /// A recurrent op's W or R as int8 [D, G·H, K] with its float scales (one, one per row of G·H, or one per
        /// direction and row): DQ(int8) along axis 1 or per tensor, or DQ(int8 [D·G·H, K]) along axis 0 → Reshape.
        func recurrentWeight(_ value: String) -> (weight: String, scale: String)? {
            var source = value
            var dims: [Int64]?
            if let (p, _) = index.producer(of: value), graph.nodes[p].opType == "Reshape", graph.nodes[p].domain.isEmpty,
               graph.nodes[p].inputs.count == 2, let shape = constantValues(graph.nodes[p].inputs[1]), shape.count == 3, shape.allSatisfy({ $0 > 0 }) {
                source = graph.nodes[p].inputs[0]
                dims = shape.map { Int64($0) }
            }
            guard let (dq, w) = constantDQ(source, .int8), let s = FusionSupport.constant(dq.inputs[1], in: graph), s.dtype == .float else { return nil }
            let axis = FusionSupport.int(dq, "axis") ?? 1
            let scales = s.data.elementCount
            guard let target = dims ?? (w.dims.count == 3 ? w.dims : nil), target.count == 3,
                  CheckedSize.elementCount(target) == w.data.elementCount else { return nil }
            let rows = Int(target[1]), allRows = Int(target[0] * target[1])
            if dims == nil {
                guard scales == 1 || (scales == rows && (axis == 1 || axis == -2)) else { return nil }
                return (w.name, s.name)
            }
            guard scales == 1 || (scales == allRows && w.dims.count == 2 && (axis == 0 || axis == -2)),
                  let data = try? TensorData(dtype: .int8, dims: target, payload: w.data.payload) else { return nil }
            let name = FusionSupport.freshName(w.name + "_3d", &taken)
            patch.addedInitializers.append(Tensor(name: name, data: data))
            return (name, s.name)
        }
        /// The sole per-tensor uint8 QuantizeLinear reading `value`.
        func requantizer(_ value: String) -> (node: Int, grid: Grid)? {
            guard let (c, slot) = FusionSupport.soleConsumer(of: value, index), slot == 0 else { return nil }
            let node = graph.nodes[c]
            guard node.opType == "QuantizeLinear", node.domain.isEmpty, node.inputs.count == 3,
                  let s = constantValues(node.inputs[1]), s.count == 1, let z = FusionSupport.constant(node.inputs[2], in: graph),
                  z.dtype == .uint8, z.data.elementCount == 1, let zv = z.data.numericValue(at: 0), let out = node.outputs.first else { return nil }
            return (c, Grid(node: c, q: out, scale: node.inputs[1], zero: node.inputs[2], scaleValue: Float(s[0]), zeroValue: Int(zv)))
        }
        /// Whether clamping to `grid` computes activation `node` exactly: the bounds quantize to the grid's ends
        /// (0 and 255), so everything a bound cuts off saturates to the same integer anyway.
        func absorbs(_ node: Node, _ grid: Grid) -> Bool {
            func q(_ v: Double) -> Double { (Double(Float(v) / grid.scaleValue)).rounded(.toNearestOrEven) + Double(grid.zeroValue) }
            switch node.opType {
            case "Relu": return grid.zeroValue == 0
            case "Clip":
                var lo = -Double.infinity, hi = Double.infinity
                if node.inputs.count > 1, !node.inputs[1].isEmpty { guard let v = constantValues(node.inputs[1])?.first else { return false }; lo = v }
                if node.inputs.count > 2, !node.inputs[2].isEmpty { guard let v = constantValues(node.inputs[2])?.first else { return false }; hi = v }
                if case .float(let v)? = node.attribute("min") { lo = Double(v) }
                if case .float(let v)? = node.attribute("max") { hi = Double(v) }
                return (lo == -.infinity || q(lo) <= 0) && (hi == .infinity || q(hi) >= 255)
            default: return false
            }
        }
        /// The end of a quantized op: its Q (through an absorbed Relu/Clip), or nil for float output.
        func tail(of value: String) -> (removed: [Int], grid: Grid?, output: String)? {
            if let (q, grid) = requantizer(value) { return ([q], grid, grid.q) }
            if let (a, slot) = FusionSupport.soleConsumer(of: value, index), slot == 0, ["Relu", "Clip"].contains(graph.nodes[a].opType),
               graph.nodes[a].domain.isEmpty, let out = graph.nodes[a].outputs.first, let (q, grid) = requantizer(out), absorbs(graph.nodes[a], grid) {
                return ([a, q], grid, grid.q)
            }
            return ([], nil, value)
        }
        func sameGrid(_ a: Grid, _ b: Grid) -> Bool { a.scaleValue == b.scaleValue && a.zeroValue == b.zeroValue }
        /// Q(v) on `grid` as QuantizeLinear computes it: float division, round half even, saturate (NaN: the zero point).
        func quantized(_ v: Double, _ grid: Grid) -> UInt8 {
            let r = (Double(Float(v) / grid.scaleValue)).rounded(.toNearestOrEven) + Double(grid.zeroValue)
            return UInt8(r.isNaN ? Double(grid.zeroValue) : min(255, max(0, r)))
        }
        /// y_q = Q(f(DQ(x_q))) for every x_q.
        func table(_ x: Grid, _ y: Grid, _ f: (Double) -> Double) -> [UInt8] {
            (0...255).map { v in quantized(f(Double(x.scaleValue) * Double(v - x.zeroValue)), y) }
        }
        /// A uint8 constant added to the graph under a fresh name made from `base`, or nil when it cannot be built.
        func addConstant(_ bytes: [UInt8], dims: [Int64], _ base: String) -> String? {
            guard let data = try? TensorData(dtype: .uint8, dims: dims, payload: .bytes(ByteSlice(copying: bytes))) else { return nil }
            let name = FusionSupport.freshName(base, &taken)
            patch.addedInitializers.append(Tensor(name: name, data: data))
            return name
        }

        /// Add / Sub / Mul / Div of a quantized x and a one-value float constant c, requantized: a function of x
        /// alone, so one table (`QLookup`), computed in float as the QDQ model does. Div only as x / c (c / x has
        /// poles). True when `node` was replaced.
        func scalarArithmetic(_ n: Int, _ node: Node) -> Bool {
            guard node.inputs.count == 2, let out = node.outputs.first, let (q, y) = requantizer(out), free([n, q]) else { return false }
            for (slot, other) in [(0, 1), (1, 0)] {
                guard let x = activation(node.inputs[slot]), let c = FusionSupport.constant(node.inputs[other], in: graph), c.dtype == .float,
                      c.data.elementCount == 1, let value = c.data.numericValue(at: 0) else { continue }
                // The output must keep x's shape: a constant of higher rank would broadcast it up.
                guard c.dims.isEmpty || (types[node.inputs[slot]]?.shape?.dims.count).map({ c.dims.count <= $0 }) == true else { continue }
                let k = Float(value), constantFirst = slot == 1
                let f: (Float) -> Float
                switch node.opType {
                case "Add": f = { constantFirst ? k + $0 : $0 + k }
                case "Sub": f = { constantFirst ? k - $0 : $0 - k }
                case "Mul": f = { constantFirst ? k * $0 : $0 * k }
                case "Div" where !constantFirst: f = { $0 / k }
                default: continue
                }
                guard let name = addConstant(table(x, y) { Double(f(Float($0))) }, dims: [256], (node.name.isEmpty ? out : node.name) + "_table") else { return false }
                patch.replace(n, with: [Node(name: node.name, opType: "QLookup", domain: RuntimeOps.domain, inputs: [x.q, name], outputs: [y.q])])
                patch.remove(q)
                return true
            }
            return false
        }

        // DQ(x) → an element-wise chain of x alone (ElementwiseRegion) → Q: one table, from running the chain on
        // the 256 values of x's grid (the very float arithmetic of the QDQ model, so the table is its result).
        for (q, node) in graph.nodes.enumerated() where node.opType == "QuantizeLinear" && node.domain.isEmpty {
            guard let y = node.inputs.first, let (qn, out) = requantizer(y), qn == q,
                  let region = ElementwiseRegion.ending(at: y, in: graph, index: index, stop: { activation($0) != nil }),
                  let x = activation(region.input), free(region.nodes + [q]),
                  let values = region.evaluate(in: graph, on: (0...255).map { Float(x.scaleValue) * Float($0 - x.zeroValue) },
                                             opsets: context.opsets),
                  let name = addConstant(values.map { quantized(Double($0), out) }, dims: [256], y + "_table") else { continue }
            let last = graph.nodes[region.nodes[region.nodes.count - 1]]
            patch.replace(region.nodes[0], with: [Node(name: last.name, opType: "QLookup", domain: RuntimeOps.domain, inputs: [x.q, name], outputs: [out.q])])
            for m in region.nodes.dropFirst() { patch.remove(m) }
            patch.remove(q)
        }

        for (n, node) in graph.nodes.enumerated() where node.qualifiedOpType == RuntimeOps.domain + "::NhwcAveragePool" {
            // After the layout stage: window means of a quantized tensor, on the integers.
            guard let x = activation(node.inputs[0]), let out = node.outputs.first, let (q, y) = requantizer(out), free([n, q]) else { continue }
            var pool = node
            pool.opType = "NhwcQAveragePool"
            pool.inputs = [x.q, x.scale, x.zero, y.scale, y.zero]
            pool.outputs = [y.q]
            patch.replace(n, with: [pool])
            patch.remove(q)
        }
        for (n, node) in graph.nodes.enumerated() where node.qualifiedOpType == RuntimeOps.domain + "::NhwcGlobalAveragePool" {
            // After the layout stage: the channel means of a quantized tensor, on the integers.
            guard let x = activation(node.inputs[0]), let out = node.outputs.first else { continue }
            func pool(into output: String, _ y: Grid) -> Node {
                Node(name: node.name, opType: "NhwcQGlobalAveragePool", domain: RuntimeOps.domain,
                     inputs: [x.q, x.scale, x.zero, y.scale, y.zero], outputs: [output])
            }
            if let (q, y) = requantizer(out), free([n, q]) {
                patch.replace(n, with: [pool(into: y.q, y)])
                patch.remove(q)
                continue
            }
            // The layout stage's Reshape back to [N, C, 1, 1] between the pool and its Q (a classifier head): the pool
            // moves onto the integers and the Reshape carries its bytes (mobilenet_v2: DQ of 62,720 values, a float
            // pool and a Q become one uint8 pool).
            guard let (r, slot) = FusionSupport.soleConsumer(of: out, index), slot == 0, graph.nodes[r].opType == "Reshape",
                  graph.nodes[r].domain.isEmpty, let reshaped = graph.nodes[r].outputs.first, let (q, y) = requantizer(reshaped),
                  free([n, r, q]) else { continue }
            let pooled = FusionSupport.freshName(out + "_quantized", &taken)
            var reshape = graph.nodes[r]
            reshape.inputs[0] = pooled
            reshape.outputs = [y.q]
            patch.replace(n, with: [pool(into: pooled, y)])
            patch.replace(r, with: [reshape])
            patch.remove(q)
        }
        for (n, node) in graph.nodes.enumerated() where node.domain.isEmpty && patch.replacements[n] == nil {
            switch node.opType {
            case "Conv":
                let dynamic = activation(node.inputs[0]) == nil
                guard node.inputs.count >= 2, let x = activation(node.inputs[0]) ?? dynamicActivation(node.inputs[0]),
                      let (wdq, w) = constantDQ(node.inputs[1], .int8), w.dims.count >= 3,
                      let out = node.outputs.first, let end = dynamic ? ([], nil, out) : tail(of: out), free([n] + end.removed) else { continue }
                var bias = ""
                if node.inputs.count > 2, !node.inputs[2].isEmpty {
                    // int32 at s_x·s_w; a dynamic grid's bias stays float (converted per run).
                    if dynamic {
                        guard let b = FusionSupport.constant(node.inputs[2], in: graph), b.dtype == .float else { continue }
                        bias = b.name
                    } else {
                        guard let (_, b) = constantDQ(node.inputs[2], .int32) else { continue }
                        bias = b.name
                    }
                }
                // Standard QLinearConv needs w_zero_point; the float-output form is onnxc's.
                let y = end.grid
                let wZero = wdq.inputs.count > 2 ? wdq.inputs[2] : ""
                if y != nil && wZero.isEmpty { continue }
                let lowered = Node(name: node.name, opType: "QLinearConv", domain: y == nil ? RuntimeOps.domain : defaultDomain,
                                   inputs: [x.q, x.scale, x.zero, w.name, wdq.inputs[1], wZero, y?.scale ?? "", y?.zero ?? "", bias],
                                   outputs: [end.output], attributes: node.attributes)
                patch.replace(n, with: [lowered])
                for r in end.removed { patch.remove(r) }
            case "Gemm", "MatMul":
                let dynamic = activation(node.inputs[0]) == nil
                guard node.inputs.count >= 2, let x = activation(node.inputs[0]) ?? dynamicActivation(node.inputs[0]),
                      let (wdq, w) = constantDQ(node.inputs[1], .int8), w.dims.count == 2, var out = node.outputs.first else { continue }
                // A MatMul's bias Add (QDQInsertion's biasAdds): B int32 at s_x·s_w (float in the dynamic form), folded in.
                var foldedBias: (add: Int, name: String)?
                if node.opType == "MatMul", let (a, slot) = FusionSupport.soleConsumer(of: out, index), slot < 2, graph.nodes[a].opType == "Add",
                   graph.nodes[a].domain.isEmpty, graph.nodes[a].inputs.count == 2, let sum = graph.nodes[a].outputs.first {
                    let other = graph.nodes[a].inputs[1 - slot]
                    let b = dynamic ? FusionSupport.constant(other, in: graph).flatMap { $0.dtype == .float ? $0 : nil } : constantDQ(other, .int32)?.tensor
                    if let b, b.dims == [w.dims[1]] {
                        foldedBias = (a, b.name)
                        out = sum
                    }
                }
                guard let tailed = dynamic ? ([], nil, out) : tail(of: out) else { continue }
                let end = (removed: tailed.removed + (foldedBias.map { [$0.add] } ?? []), grid: tailed.grid, output: tailed.output)
                guard free([n] + end.removed) else { continue }
                if node.opType == "Gemm" {
                    guard FusionSupport.int(node, "transA") ?? 0 == 0, FusionSupport.float(node, "alpha") ?? 1 == 1,
                          FusionSupport.float(node, "beta") ?? 1 == 1 else { continue }
                }
                let transB = node.opType == "Gemm" && (FusionSupport.int(node, "transB") ?? 0) != 0
                let axis = FusionSupport.int(wdq, "axis") ?? 1
                // Per-channel scales must run along N.
                if let s = constantValues(wdq.inputs[1]), s.count > 1, axis != (transB ? 0 : 1) { continue }
                var weight = w.name
                if !transB {
                    guard let transposed = Self.transposed(w, name: FusionSupport.freshName(w.name + "_nk", &taken)) else { continue }
                    patch.addedInitializers.append(transposed)
                    weight = transposed.name
                }
                var bias = foldedBias?.name ?? ""
                if node.opType == "Gemm", node.inputs.count > 2, !node.inputs[2].isEmpty {
                    if dynamic {
                        guard let b = FusionSupport.constant(node.inputs[2], in: graph), b.dtype == .float, b.dims.count == 1 else { continue }
                        bias = b.name
                    } else {
                        guard let (_, b) = constantDQ(node.inputs[2], .int32), b.dims.count == 1 else { continue }
                        bias = b.name
                    }
                }
                let y = end.grid
                let lowered = Node(name: node.name, opType: "QGemm", domain: RuntimeOps.domain,
                                   inputs: [x.q, x.scale, x.zero, weight, wdq.inputs[1], bias, y?.scale ?? "", y?.zero ?? ""], outputs: [end.output])
                patch.replace(n, with: [lowered])
                for r in end.removed { patch.remove(r) }
            case "LSTM", "GRU", "RNN":
                // -O int8-dynamic's recurrent ops: int8 W and R (QDQInsertion.recurrentWeight) run on the integer
                // kernels, X and each step's hidden state quantized per run.
                let arity = node.opType == "LSTM" ? 8 : 6
                guard node.inputs.count >= 3, node.inputs.count <= arity, let w = recurrentWeight(node.inputs[1]),
                      let r = recurrentWeight(node.inputs[2]) else { continue }
                var inputs = node.inputs + [String](repeating: "", count: arity - node.inputs.count)
                inputs[1] = w.weight
                inputs[2] = r.weight
                patch.replace(n, with: [Node(name: node.name, opType: "Q" + node.opType, domain: RuntimeOps.domain, inputs: inputs + [w.scale, r.scale],
                                             outputs: node.outputs, attributes: node.attributes)])
            case "Sub", "Div":
                _ = scalarArithmetic(n, node)
            case "Add":
                if scalarArithmetic(n, node) { continue }
                guard node.inputs.count == 2, let a = activation(node.inputs[0]), let b = activation(node.inputs[1]),
                      let ta = types[node.inputs[0]]?.shape, let tb = types[node.inputs[1]]?.shape, ta.broadcasts(with: tb),
                      let out = node.outputs.first, let end = tail(of: out), let y = end.grid, free([n] + end.removed) else { continue }
                patch.replace(n, with: [Node(name: node.name, opType: "QLinearAdd", domain: RuntimeOps.domain,
                                             inputs: [a.q, a.scale, a.zero, b.q, b.scale, b.zero, y.scale, y.zero], outputs: [end.output])])
                for r in end.removed { patch.remove(r) }
            case "Split":
                // Every output requantized on the input's grid: the split runs on the integers.
                guard let x = activation(node.inputs[0]), !node.outputs.contains(where: \.isEmpty) else { continue }
                let ends = node.outputs.map { requantizer($0) }
                guard ends.allSatisfy({ $0.map { sameGrid(x, $0.grid) } ?? false }), free([n] + ends.compactMap { $0?.node }) else { continue }
                var moved = node
                moved.inputs[0] = x.q
                moved.outputs = ends.compactMap { $0?.grid.q }
                patch.replace(n, with: [moved])
                for end in ends { if let end { patch.remove(end.node) } }
            case "Gather" where node.inputs.count == 2:
                // An int8 table dequantized per tensor: gather the int8 rows, then widen only those.
                guard let (dq, table) = constantDQ(node.inputs[0], .int8), dq.inputs.count == 3, let out = node.outputs.first,
                      let s = constantValues(dq.inputs[1]), s.count == 1, let z = constantValues(dq.inputs[2]), z.count == 1, table.dims.count >= 1,
                      free([n]) else { continue }
                let rows = FusionSupport.freshName(out + "_int8", &taken)
                var gather = node
                gather.inputs[0] = dq.inputs[0]
                gather.outputs = [rows]
                patch.replace(n, with: [gather, Node(name: node.name + "_DequantizeLinear", opType: "DequantizeLinear",
                                                     inputs: [rows, dq.inputs[1], dq.inputs[2]], outputs: [out])])
            case "Resize" where ["", "nearest"].contains(FusionSupport.string(node, "mode") ?? ""):
                fallthrough
            case "MaxPool", "Reshape", "Flatten", "Transpose", "Squeeze", "Unsqueeze", "Slice":
                guard let x = activation(node.inputs[0]), node.outputs.count == 1 || node.outputs.dropFirst().allSatisfy({ $0.isEmpty || index.isUnused($0) }),
                      let out = node.outputs.first, let (q, y) = requantizer(out), sameGrid(x, y), free([n, q]) else { continue }
                if node.opType == "MaxPool", node.outputs.count > 1 { continue }
                var moved = node
                moved.inputs[0] = x.q
                moved.outputs = [y.q]
                patch.replace(n, with: [moved])
                patch.remove(q)
            case "Pad" where node.inputs.count >= 2:
                // Data movement on the integers (opset ≥ 11: pads as an input). A constant pad writes its value's
                // quantized form — the zero point for 0 — since a uint8 0 would dequantize to −zp·scale.
                guard let x = activation(node.inputs[0]), let out = node.outputs.first, let (q, y) = requantizer(out), sameGrid(x, y),
                      free([n, q]) else { continue }
                var moved = node
                moved.inputs[0] = x.q
                moved.outputs = [y.q]
                if (FusionSupport.string(node, "mode") ?? "constant") == "constant" {
                    var value = 0.0
                    if node.inputs.count > 2, !node.inputs[2].isEmpty {
                        guard let given = constantValues(node.inputs[2]), given.count == 1 else { continue }
                        value = given[0]
                    }
                    guard let name = addConstant([quantized(value, x)], dims: [], (node.name.isEmpty ? out : node.name) + "_pad_value") else { continue }
                    while moved.inputs.count < 3 { moved.inputs.append("") }
                    moved.inputs[2] = name
                }
                patch.replace(n, with: [moved])
                patch.remove(q)
            case "Concat":
                let grids = node.inputs.map { activation($0) }
                guard let first = grids.first ?? nil, grids.allSatisfy({ $0.map { sameGrid($0, first) } ?? false }),
                      let out = node.outputs.first, let (q, y) = requantizer(out), sameGrid(first, y), free([n, q]) else { continue }
                var moved = node
                moved.inputs = grids.compactMap { $0?.q }
                moved.outputs = [y.q]
                patch.replace(n, with: [moved])
                patch.remove(q)
            case "Sigmoid", "Tanh", "HardSigmoid", "HardSwish", "LeakyRelu", "Gelu", "Relu", "Elu", "Softplus":
                // A 256-entry table: y_q = Q(f(DQ(x_q))) for every x_q, computed here once.
                guard let x = activation(node.inputs[0]), let out = node.outputs.first, let (q, y) = requantizer(out), free([n, q]),
                      let f = Self.function(node) else { continue }
                guard let name = addConstant(table(x, y, f), dims: [256], (node.name.isEmpty ? out : node.name) + "_table") else { continue }
                patch.replace(n, with: [Node(name: node.name, opType: "QLookup", domain: RuntimeOps.domain, inputs: [x.q, name], outputs: [y.q])])
                patch.remove(q)
            case "Mul":
                if scalarArithmetic(n, node) { continue }
                // x · Sigmoid(x) (SiLU, as exporters write it) on one quantized x is a function of x alone: one table.
                guard node.inputs.count == 2, let out = node.outputs.first, let (q, y) = requantizer(out), free([n, q]) else { continue }
                // A gate of one value per image and channel (squeeze-excitation, channels last): [N, …, C] · [N, 1, …, 1, C].
                if let a = activation(node.inputs[0]), let b = activation(node.inputs[1]) {
                    let shapes = [types[node.inputs[0]]?.shape?.fixedDims, types[node.inputs[1]]?.shape?.fixedDims]
                    for (x, g, sx, sg) in [(a, b, shapes[0], shapes[1]), (b, a, shapes[1], shapes[0])] {
                        guard let sx, let sg, sx.count >= 3, sx.count == sg.count, sx.first == sg.first, sx.last == sg.last,
                              sg.dropFirst().dropLast().allSatisfy({ $0 == 1 }) else { continue }
                        patch.replace(n, with: [Node(name: node.name, opType: "QLinearMul", domain: RuntimeOps.domain,
                                                     inputs: [x.q, x.scale, x.zero, g.q, g.scale, g.zero, y.scale, y.zero], outputs: [y.q])])
                        patch.remove(q)
                        break
                    }
                    if patch.replacements[n] != nil { continue }
                }
                var silu: [UInt8]?
                var input: String?
                for (first, second) in [(node.inputs[0], node.inputs[1]), (node.inputs[1], node.inputs[0])] where silu == nil {
                    guard let x = activation(first), let s = activation(second), let (qs, _) = index.producer(of: s.q),
                          graph.nodes[qs].opType == "QuantizeLinear", let (sg, _) = index.producer(of: graph.nodes[qs].inputs[0]),
                          graph.nodes[sg].opType == "Sigmoid", graph.nodes[sg].domain.isEmpty,
                          let inner = activation(graph.nodes[sg].inputs[0]), inner.q == x.q else { continue }
                    silu = table(x, y) { $0 / (1 + exp(-$0)) }
                    input = x.q
                }
                if let silu, let input, let name = addConstant(silu, dims: [256], (node.name.isEmpty ? out : node.name) + "_silu_table") {
                    patch.replace(n, with: [Node(name: node.name, opType: "QLookup", domain: RuntimeOps.domain, inputs: [input, name], outputs: [y.q])])
                    patch.remove(q)
                    continue
                }
                // Two activations whose inferred shapes broadcast: element by element on the integers (the gate
                // kernel's float arithmetic, each element its own gate).
                guard let a = activation(node.inputs[0]), let b = activation(node.inputs[1]),
                      let ta = types[node.inputs[0]]?.shape, let tb = types[node.inputs[1]]?.shape, ta.broadcasts(with: tb) else { continue }
                patch.replace(n, with: [Node(name: node.name, opType: "QLinearMul", domain: RuntimeOps.domain,
                                             inputs: [a.q, a.scale, a.zero, b.q, b.scale, b.zero, y.scale, y.zero], outputs: [y.q])])
                patch.remove(q)
            case "QuantizeLinear":
                guard let x = activation(node.inputs[0]), let out = node.outputs.first, !index.isGraphOutput(out),
                      node.inputs.count == 3, let s = constantValues(node.inputs[1]), s.count == 1,
                      let z = constantValues(node.inputs[2]), z.count == 1, Float(s[0]) == x.scaleValue, Int(z[0]) == x.zeroValue,
                      FusionSupport.constant(node.inputs[2], in: graph)?.dtype == .uint8, free([n]) else { continue }
                patch.remove(n)
                patch.redirects[out] = x.q
            default:
                continue
            }
        }
        return patch.isEmpty ? nil : patch
    }

    /// The real function of an element-wise activation, for its lookup table (the ops' ONNX definitions, in
    /// double precision; attributes as the node has them).
    static func function(_ node: Node) -> ((Double) -> Double)? {
        let alpha = FusionSupport.float(node, "alpha").map(Double.init), beta = FusionSupport.float(node, "beta").map(Double.init)
        switch node.opType {
        case "Sigmoid": return { 1 / (1 + exp(-$0)) }
        case "Tanh": return { tanh($0) }
        case "Relu": return { max(0, $0) }
        case "HardSigmoid":
            let a = alpha ?? 0.2, b = beta ?? 0.5
            return { max(0, min(1, a * $0 + b)) }
        case "HardSwish": return { $0 * max(0, min(1, $0 / 6 + 0.5)) }
        case "LeakyRelu":
            let a = alpha ?? 0.01
            return { $0 >= 0 ? $0 : a * $0 }
        case "Elu":
            let a = alpha ?? 1
            return { $0 >= 0 ? $0 : a * (exp($0) - 1) }
        case "Softplus": return { log1p(exp(-abs($0))) + max($0, 0) }
        case "Gelu":
            if FusionSupport.string(node, "approximate") == "tanh" {
                return { 0.5 * $0 * (1 + tanh((2 / Double.pi).squareRoot() * ($0 + 0.044715 * $0 * $0 * $0))) }
            }
            return { 0.5 * $0 * (1 + erf($0 / 2.0.squareRoot())) }
        default: return nil
        }
    }

    /// An int8 [K, N] weight as [N, K].
    static func transposed(_ w: Tensor, name: String) -> Tensor? {
        guard w.dims.count == 2, let bytes = w.data.bytes else { return nil }
        let k = Int(w.dims[0]), n = Int(w.dims[1])
        var out = [UInt8](repeating: 0, count: k * n)
        bytes.withUnsafeBytes { raw in
            for i in 0..<k { for j in 0..<n { out[j * k + i] = raw[i * n + j] } }
        }
        guard let data = try? TensorData(dtype: .int8, dims: [Int64(n), Int64(k)], payload: .bytes(ByteSlice(copying: out))) else { return nil }
        return Tensor(name: name, data: data)
    }
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
