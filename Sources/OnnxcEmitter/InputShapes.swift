public import OnnxcCore
public import OnnxcIR

/// `--input-shape NAME=1x3x224x224`: pins a model input's dims so that every size downstream is known at
/// compile time (and so planned into the arena). A pinned input accepts only that shape at run time.
public enum InputShapes {
    public enum Failure: Error, Sendable, UserFacingError {
        case unknownInput(String, known: [String])
        case rankMismatch(String, declared: Int, given: Int)
        case conflictingDim(String, axis: Int, declared: Int64, given: Int64)
        case malformed(String)

        public var what: String {
            switch self {
            case .unknownInput(let name, let known): "--input-shape names \(name), but the model's inputs are \(known.joined(separator: ", "))"
            case .rankMismatch(let name, let declared, let given): "--input-shape \(name) has \(given) dims; the model declares \(declared)"
            case .conflictingDim(let name, let axis, let declared, let given): "--input-shape \(name) sets dim \(axis) to \(given); the model fixes it at \(declared)"
            case .malformed(let text): "--input-shape \(text) is not NAME=D1xD2x… with positive integer dims"
            }
        }

        public var location: String? { nil }
        public var hint: String? { "give every dim, e.g. --input-shape input=1x3x224x224; `onnxc info MODEL` lists the inputs" }
    }

    /// Parses `NAME=1x3x224x224` (a scalar is `NAME=`).
    public static func parse(_ text: String) throws(Failure) -> (String, [Int64]) {
        guard let equals = text.lastIndex(of: "="), equals != text.startIndex else { throw .malformed(text) }
        let name = String(text[..<equals]), spec = text[text.index(after: equals)...]
        if spec.isEmpty { return (name, []) }
        var dims: [Int64] = []
        for part in spec.split(separator: "x", omittingEmptySubsequences: false) {
            guard let value = Int64(part), value >= 0 else { throw .malformed(text) }
            dims.append(value)
        }
        return (name, dims)
    }

    public static func pin(_ model: Model, _ shapes: [String: [Int64]]) throws(Failure) -> Model {
        var result = model
        let names = model.graph.inputs.map(\.name)
        for (name, dims) in shapes.sorted(by: { $0.key < $1.key }) {
            guard let index = names.firstIndex(of: name) else { throw .unknownInput(name, known: names) }
            var info = result.graph.inputs[index]
            guard case .tensor(var tensor)? = info.type?.kind else { throw .unknownInput(name, known: names) }
            if let declared = tensor.shape {
                guard declared.rank == dims.count else { throw .rankMismatch(name, declared: declared.rank, given: dims.count) }
                for (axis, dim) in declared.dims.enumerated() {
                    if let fixed = dim.fixedValue, fixed != dims[axis] { throw .conflictingDim(name, axis: axis, declared: fixed, given: dims[axis]) }
                }
            }
            tensor.shape = Shape(dims.map { .fixed($0) })
            info.type?.kind = .tensor(tensor)
            result.graph.inputs[index] = info
        }
        return result
    }
}
