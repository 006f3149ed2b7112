/// The named pass pipelines, as ordered lists. Order matters: folding exposes no-ops, chains and duplicates;
/// eliminations expose dead code; the driver repeats the list to a fixed point.
public enum Pipelines {
    /// -O1, canonicalize: folding and eliminations. Standard ONNX in, standard ONNX out, at the same opset.
    static var canonicalize: [any Pass] {
        [
            ConstantFolding(),                 // evaluate what is constant, including static Shape/Size
            SymbolicShapeResolution(),         // shape arithmetic over symbolic dims: static parts → constants, Reshape 0/-1
            IdentityElimination(),             // read through Identity and inference Dropout
            NoOpElimination(),                 // Cast to self, Reshape to self, Add 0, Mul 1, one-input Concat, …
            CastChainElimination(),            // Cast(Cast(x)) when the inner cast is exact
            ConsecutiveTransposeFusion(),      // Transpose∘Transpose, identity results removed
            ConsecutiveReshapeFusion(),        // Reshape/Squeeze/Unsqueeze/Flatten chains
            TransposeIntoGemm(),               // Transpose([1,0]) into Gemm's transA/transB
            TransposeToReshape(),              // a Transpose that moves only size-1 axes is a Reshape (a view)
            CommonSubexpressionElimination(),  // merge equal nodes and equal constants
            DeadCodeElimination(),             // drop what nothing reads, and unused initializers
        ]
    }

    /// -O2 adds fusions that standard ONNX expresses; the canonicalize passes then clean up (old weights).
    static var fuse: [any Pass] {
        [
            PadIntoConvPool(),        // zero Pad into Conv/AveragePool pads
            ConvBatchNormFusion(),    // BatchNormalization into the Conv/ConvTranspose before it
            ConvAddMulFusion(),       // per-channel Add/Sub/Mul/Div into Conv weights and bias
            MatMulBatchNormFusion(),  // BatchNormalization after a 2-D MatMul into a Gemm
            MatMulAddFusion(),        // 2-D MatMul + bias into Gemm
            LayerNormFusion(),        // decomposed layer normalization into LayerNormalization (opset ≥ 17; ai.onnxc below it for the runtime)
            GeluFusion(),             // Erf- and Tanh-based GELU into Gelu (opset ≥ 20; ai.onnxc::Gelu for the runtime)
            HardSwishFusion(),        // x·HardSigmoid(x) and x·Clip(x+3, 0, 6)/6 into HardSwish (opset ≥ 14)
        ]
    }

    /// -O2 for the runtime target (the compile path) adds fusions into `ai.onnxc` ops, after the standard
    /// fusions so that they see Gemm, LayerNormalization and Gelu rather than their decompositions.
    static var execution: [any Pass] {
        [
            AttentionFusion(),        // MatMul-scale-mask-Softmax-MatMul into ai.onnxc::Attention (first: it needs the plain MatMuls)
            SiluFusion(),             // x·Sigmoid(x) into ai.onnxc::Silu (before fuse-activation, which absorbs it)
            ActivationFusion(),       // Conv/Gemm/MatMul [+ bias] + activation into ai.onnxc::Fused*
        ]
    }

    /// The runtime's layout stage, after the -O2 pipeline has settled (a driver of its own, with shapes
    /// re-inferred after every change): channels-last convolutions and pools, then the Transposes between
    /// them pushed down and cancelled. What is left is cleaned up by `layoutCleanup` once this has settled
    /// (see `layoutDrivers`).
    public static var layout: [any Pass] {
        [
            ChannelsLastConversion(),          // float32 2-D Conv/FusedConv and pools to ai.onnxc::Nhwc* between Transposes
            CommonSubexpressionElimination(),  // one Transpose of a value that several convolutions read (a branching input)
            TransposePushing(),                // Transposes below element-wise ops, Concat, Split, Slice, Pad, Resize, …
            ConsecutiveTransposeFusion(),      // inverse pairs cancel
            DeadCodeElimination(),
        ]
    }

    /// The clean-up after the layout stage, in a driver of its own: run in the same rounds, transpose-to-reshape
    /// turned Transposes that push-transposes had yet to cancel into Reshapes, which it cannot push past (an SE
    /// block's [N, C, 1, 1] gate: its Mul then kept the trunk in NCHW, two full-size Transposes per block).
    public static var layoutCleanup: [any Pass] {
        [
            TransposeToReshape(),              // [N,1,1,C] → [N,C,1,1] is a view
            ConsecutiveReshapeFusion(),
            DeadCodeElimination(),
        ]
    }

    /// Rounds for the layout stage: each moves a Transpose past one more op.
    public static let layoutRounds = 64

    /// The drivers of the layout stage, to run in order on a model with inferred shapes: `layout` to its fixed
    /// point, then `layoutCleanup`; both re-infer shapes after every change. Passes in `disabled` are left out.
    public static func layoutDrivers(options: PassOptions, disabled: Set<String> = []) -> [PassManager] {
        [
            PassManager(passes: layout.filter { !disabled.contains($0.id) }, options: options, rounds: layoutRounds, reinfersShapes: true),
            PassManager(passes: layoutCleanup.filter { !disabled.contains($0.id) }, options: options, reinfersShapes: true),
        ]
    }

    /// `compile -O int8`, after QDQ insertion and before the -O2 runtime pipeline: QDQ groups to integer ops
    /// (shapes re-inferred after every change: the Add lowering compares operand shapes), and after the layout stage
    /// residual Adds into the convolutions before them.
    public static func quantizedLowering(disabled: Set<String> = []) -> PassManager {
        PassManager(passes: ([QuantizedLowering(), QuantizedResidualFusion(), DeadCodeElimination()] as [any Pass]).filter { !disabled.contains($0.id) },
                    options: PassOptions(target: .runtime), reinfersShapes: true)
    }

    /// Every pass onnxc has, for `onnxc passes` and `--disable-pass` validation.
    public static var all: [any Pass] { canonicalize + fuse + execution + [ChannelsLastConversion(), TransposePushing(), QuantizedLowering(), QuantizedResidualFusion()] }

    /// -O0: nothing; -O1: canonicalize; -O2: canonicalize, then fusions (plus the runtime fusions for the
    /// runtime target), then canonicalize's clean-up again via the fixed-point loop.
    public static func passes(level: Int, target: OptimizationTarget = .onnx, disabled: Set<String> = []) -> [any Pass] {
        let selected: [any Pass] = switch level {
        case ...0: []
        case 1: canonicalize
        default: canonicalize + fuse + (target == .runtime ? execution : [])
        }
        return selected.filter { !disabled.contains($0.id) }
    }
}
