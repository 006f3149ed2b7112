/// onnxc's own operator domain: ops the runtime executes that standard ONNX cannot express at the model's
/// opset (fused Conv/Gemm/MatMul epilogues, attention). Only the compile path creates them; `onnxc optimize`
/// never writes them, so its output stays standard ONNX.
public enum RuntimeOps {
    public static let domain = "ai.onnxc"
    public static let version: Int64 = 1
}
