import OnnxcCore

/// Runs one node: inputs in the node's order (nil for an omitted optional input), outputs in the node's
/// order (nil leaves an optional output unset).
public typealias Kernel = @Sendable (_ inputs: [Value?], _ context: KernelContext) throws(RuntimeError) -> [Value?]

/// What a kernel may use besides its inputs: its node (attributes, opset) and subgraph execution.
public struct KernelContext {
    public let node: RuntimeNode
    let scope: Scope
    let executor: Executor

    public var attributes: Attributes { node.attributes }
    public var opset: Int { node.opset }

    /// Runs `graph` with `inputs` bound to its declared inputs, seeing this node's scope as its outer scope.
    public func run(_ graph: RuntimeGraph, inputs: [Value]) throws(RuntimeError) -> [Value] {
        try executor.execute(graph, inputs: inputs, parent: scope)
    }
}

/// The kernel table: (domain, op type) → kernel, merged from one table per op family.
public enum KernelRegistry {
    public static func key(_ domain: String, _ opType: String) -> String { domain.isEmpty ? opType : "\(domain)::\(opType)" }

    /// Each family lives in its own file under Kernels/ and exports a `table`; the first family with a key wins.
    /// They are not merged into one table: a fresh process's load paid ~0.13 ms for the merge, and a compiled
    /// model looks up only the few ops without a step of their own.
    static let families: [[String: Kernel]] = [
        ElementwiseKernels.table,
        ActivationKernels.table,
        ReductionKernels.table,
        LinearAlgebraKernels.table,
        ConvolutionKernels.table,
        PoolingKernels.table,
        NormalizationKernels.table,
        ShapeKernels.table,
        IndexingKernels.table,
        ResizeKernels.table,
        RecurrentKernels.table,
        ControlFlowKernels.table,
        CastKernels.table,
        QuantizationKernels.table,
        SequenceKernels.table,
        GeneratorKernels.table,
        MiscKernels.table,
        LossKernels.table,
        TrainingKernels.table,
        MLKernels.table,
        DeformableConvolutionKernels.table,
        FusedKernels.table,
        AttentionKernels.table,
        ChannelsLastKernels.table,
    ]

    public static func kernel(domain: String, opType: String) -> Kernel? {
        let wanted = key(domain, opType)
        for family in families {
            if let kernel = family[wanted] { return kernel }
        }
        return nil
    }
}

// MARK: - Helpers kernels share

extension KernelContext {
    /// A required tensor input, or a clear error naming the slot.
    public func tensor(_ inputs: [Value?], _ index: Int) throws(RuntimeError) -> Tensor {
        guard index < inputs.count, let value = inputs[index] else {
            throw .invalidArgument("\(node.opType) needs input \(index), which is missing")
        }
        guard case .tensor(let tensor) = value else { throw .invalidArgument("\(node.opType) input \(index) must be a tensor") }
        return tensor
    }

    /// An optional tensor input: nil when omitted.
    public func optionalTensor(_ inputs: [Value?], _ index: Int) throws(RuntimeError) -> Tensor? {
        guard index < inputs.count, let value = inputs[index] else { return nil }
        switch value {
        case .tensor(let tensor): return tensor
        case .none: return nil
        case .sequence: throw .invalidArgument("\(node.opType) input \(index) must be a tensor, not a sequence")
        }
    }
}

/// Wraps tensors as kernel outputs.
public func outputs(_ tensors: Tensor...) -> [Value?] { tensors.map { .tensor($0) } }
