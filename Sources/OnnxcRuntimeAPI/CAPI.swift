// The C interface declared in Sources/COnnxcRuntime/include/onnxc_runtime.h. Every entry point catches
// every error, records it for onnxc_last_error and returns NULL or -1: nothing may unwind into C.

public import COnnxcRuntime
import OnnxcCore
import OnnxcFormat
import OnnxcRuntime
#if canImport(Glibc)
import Glibc
#endif

/// What an `onnxc_model *` points to.
final class APIModel {
    let model: CompiledModel
    let inputNames: [UnsafeMutablePointer<CChar>]
    let outputNames: [UnsafeMutablePointer<CChar>]
    /// Declared shapes, -1 for dims known only at run time.
    let inputShapes: [UnsafeMutableBufferPointer<Int64>]
    let outputShapes: [UnsafeMutableBufferPointer<Int64>]

    init(_ model: CompiledModel) {
        self.model = model
        inputNames = model.inputs.map { strdup($0.name) }
        outputNames = model.outputs.map { strdup($0.name) }
        func shapes(_ infos: [RuntimeValueInfo]) -> [UnsafeMutableBufferPointer<Int64>] {
            infos.map { info in
                let dims = info.shape ?? []
                let buffer = UnsafeMutableBufferPointer<Int64>.allocate(capacity: max(dims.count, 1))
                for (i, d) in dims.enumerated() { buffer[i] = d.map(Int64.init) ?? -1 }
                return buffer
            }
        }
        inputShapes = shapes(model.inputs)
        outputShapes = shapes(model.outputs)
    }

    deinit {
        for name in inputNames + outputNames { free(name) }
        for shape in inputShapes + outputShapes { shape.deallocate() }
    }

    func info(_ infos: [RuntimeValueInfo], _ names: [UnsafeMutablePointer<CChar>], _ shapes: [UnsafeMutableBufferPointer<Int64>],
              _ index: Int, _ out: UnsafeMutablePointer<onnxc_tensor>?) -> Int32 {
        guard infos.indices.contains(index), let out else {
            LastError.set("no input or output \(index)")
            return -1
        }
        out.pointee = onnxc_tensor(name: UnsafePointer(names[index]), dtype: infos[index].dtype?.rawValue ?? 0,
                                   rank: infos[index].shape.map { Int32($0.count) } ?? -1,
                                   shape: UnsafePointer(shapes[index].baseAddress), data: nil, byte_count: 0)
        return 0
    }
}

/// What an `onnxc_result *` points to: the outputs, kept alive until `onnxc_result_free`.
final class APIResult {
    struct Output {
        let name: UnsafeMutablePointer<CChar>
        let tensor: Tensor
        let shape: UnsafeMutableBufferPointer<Int64>
    }

    let outputs: [Output]

    init(_ outputs: [(String, Tensor)]) {
        self.outputs = outputs.map { name, tensor in
            let shape = UnsafeMutableBufferPointer<Int64>.allocate(capacity: max(tensor.rank, 1))
            for (i, d) in tensor.shape.enumerated() { shape[i] = Int64(d) }
            return Output(name: strdup(name), tensor: tensor, shape: shape)
        }
    }

    deinit {
        for output in outputs {
            free(output.name)
            output.shape.deallocate()
        }
    }
}

/// The per-thread message behind onnxc_last_error.
enum LastError {
    private static let key: pthread_key_t = {
        var key = pthread_key_t()
        pthread_key_create(&key) { free($0) }
        return key
    }()

    static func set(_ message: String) {
        free(pthread_getspecific(key))
        pthread_setspecific(key, strdup(message))
    }

    static func clear() { set("") }

    static var current: UnsafePointer<CChar>? { pthread_getspecific(key).map { UnsafePointer($0.assumingMemoryBound(to: CChar.self)) } }

    static func describe(_ error: any Error) -> String {
        if let error = error as? any UserFacingError {
            return [error.what, error.location.map { "(where: \($0))" }, error.hint.map { "— \($0)" }].compactMap { $0 }.joined(separator: " ")
        }
        return "\(error)"
    }
}

private func load(_ compiled: () throws -> CompiledModel) -> OpaquePointer? {
    do {
        let model = APIModel(try compiled())
        LastError.clear()
        return OpaquePointer(Unmanaged.passRetained(model).toOpaque())
    } catch {
        LastError.set(LastError.describe(error))
        return nil
    }
}

private func model(_ pointer: OpaquePointer?) -> APIModel? {
    pointer.map { Unmanaged<APIModel>.fromOpaque(UnsafeRawPointer($0)).takeUnretainedValue() }
}

private func result(_ pointer: OpaquePointer?) -> APIResult? {
    pointer.map { Unmanaged<APIResult>.fromOpaque(UnsafeRawPointer($0)).takeUnretainedValue() }
}

@_cdecl("onnxc_model_load")
public func onnxc_model_load(_ path: UnsafePointer<CChar>?) -> OpaquePointer? {
    guard let path else {
        LastError.set("onnxc_model_load: path is NULL")
        return nil
    }
    let file = String(cString: path)
    return load { try CompiledModel(contentsOf: file) }
}

@_cdecl("onnxc_model_load_bytes")
public func onnxc_model_load_bytes(_ bytes: UnsafeRawPointer?, _ size: Int) -> OpaquePointer? {
    guard let bytes, size > 0 else {
        LastError.set("onnxc_model_load_bytes: no bytes given")
        return nil
    }
    // Copied into 64-byte aligned memory so constants can still be used in place.
    let memory = UnsafeMutableRawPointer.allocate(byteCount: size, alignment: 64)
    memory.copyMemory(from: bytes, byteCount: size)
    let storage = ByteStorage(base: UnsafeRawPointer(memory), count: size, owner: nil, release: { memory.deallocate() })
    return load { try CompiledModel(program: try OXCReader.read(storage)) }
}

@_cdecl("onnxc_model_free")
public func onnxc_model_free(_ pointer: OpaquePointer?) {
    guard let pointer else { return }
    Unmanaged<APIModel>.fromOpaque(UnsafeRawPointer(pointer)).release()
}

@_cdecl("onnxc_model_input_count")
public func onnxc_model_input_count(_ pointer: OpaquePointer?) -> Int { model(pointer)?.inputNames.count ?? 0 }

@_cdecl("onnxc_model_output_count")
public func onnxc_model_output_count(_ pointer: OpaquePointer?) -> Int { model(pointer)?.outputNames.count ?? 0 }

@_cdecl("onnxc_model_input_name")
public func onnxc_model_input_name(_ pointer: OpaquePointer?, _ index: Int) -> UnsafePointer<CChar>? {
    guard let names = model(pointer)?.inputNames, names.indices.contains(index) else { return nil }
    return UnsafePointer(names[index])
}

@_cdecl("onnxc_model_output_name")
public func onnxc_model_output_name(_ pointer: OpaquePointer?, _ index: Int) -> UnsafePointer<CChar>? {
    guard let names = model(pointer)?.outputNames, names.indices.contains(index) else { return nil }
    return UnsafePointer(names[index])
}

enum APIFailure: Error, CustomStringConvertible {
    case message(String)
    var description: String { if case .message(let m) = self { return m }; return "" }
}

@_cdecl("onnxc_model_input_info")
public func onnxc_model_input_info(_ pointer: OpaquePointer?, _ index: Int, _ out: UnsafeMutablePointer<onnxc_tensor>?) -> Int32 {
    guard let loaded = model(pointer) else {
        LastError.set("onnxc_model_input_info: model is NULL")
        return -1
    }
    return loaded.info(loaded.model.inputs, loaded.inputNames, loaded.inputShapes, index, out)
}

@_cdecl("onnxc_model_output_info")
public func onnxc_model_output_info(_ pointer: OpaquePointer?, _ index: Int, _ out: UnsafeMutablePointer<onnxc_tensor>?) -> Int32 {
    guard let loaded = model(pointer) else {
        LastError.set("onnxc_model_output_info: model is NULL")
        return -1
    }
    return loaded.info(loaded.model.outputs, loaded.outputNames, loaded.outputShapes, index, out)
}

@_cdecl("onnxc_run")
public func onnxc_run(_ pointer: OpaquePointer?, _ inputs: UnsafePointer<onnxc_tensor>?, _ count: Int) -> OpaquePointer? {
    do {
        guard let loaded = model(pointer) else { throw APIFailure.message("onnxc_run: model is NULL") }
        guard count == 0 || inputs != nil else { throw APIFailure.message("onnxc_run: inputs is NULL but count is \(count)") }
        var values: [String: Value] = [:]
        for i in 0..<count {
            guard let input = inputs?[i], let cName = input.name else { throw APIFailure.message("onnxc_run: input \(i) has no name") }
            let name = String(cString: cName)
            guard let dtype = DType(rawValue: input.dtype), dtype != .string, dtype != .undefined else {
                throw APIFailure.message("onnxc_run: input \(name) has data type \(input.dtype), which the C interface does not take")
            }
            guard input.rank >= 0, input.rank <= 64, input.rank == 0 || input.shape != nil else {
                throw APIFailure.message("onnxc_run: input \(name) has rank \(input.rank) without a shape")
            }
            let shape = (0..<Int(input.rank)).map { Int(input.shape?[$0] ?? 0) }
            let tensor = try Tensor(zeros: dtype, shape: shape)
            guard tensor.byteCount == input.byte_count else {
                throw APIFailure.message("onnxc_run: input \(name) of shape \(shape) needs \(tensor.byteCount) bytes, got \(input.byte_count)")
            }
            if tensor.byteCount > 0 {
                guard let data = input.data else { throw APIFailure.message("onnxc_run: input \(name) has no data") }
                tensor.withMutableBytes { $0.baseAddress?.copyMemory(from: data, byteCount: input.byte_count) }
            }
            values[name] = .tensor(tensor)
        }
        let outputs = try loaded.model.run(values)
        var ordered: [(String, Tensor)] = []
        for info in loaded.model.outputs {
            guard let tensor = outputs[info.name]?.tensor else { throw APIFailure.message("output \(info.name) is not a tensor") }
            ordered.append((info.name, tensor))
        }
        LastError.clear()
        return OpaquePointer(Unmanaged.passRetained(APIResult(ordered)).toOpaque())
    } catch {
        LastError.set(LastError.describe(error))
        return nil
    }
}

@_cdecl("onnxc_result_count")
public func onnxc_result_count(_ pointer: OpaquePointer?) -> Int { result(pointer)?.outputs.count ?? 0 }

@_cdecl("onnxc_result_output")
public func onnxc_result_output(_ pointer: OpaquePointer?, _ index: Int, _ out: UnsafeMutablePointer<onnxc_tensor>?) -> Int32 {
    guard let outputs = result(pointer)?.outputs, outputs.indices.contains(index), let out else {
        LastError.set("onnxc_result_output: no output \(index)")
        return -1
    }
    let output = outputs[index]
    out.pointee = onnxc_tensor(name: UnsafePointer(output.name), dtype: output.tensor.dtype.rawValue, rank: Int32(output.tensor.rank),
                               shape: UnsafePointer(output.shape.baseAddress), data: output.tensor.unsafeBaseAddress,
                               byte_count: output.tensor.byteCount)
    return 0
}

@_cdecl("onnxc_result_free")
public func onnxc_result_free(_ pointer: OpaquePointer?) {
    guard let pointer else { return }
    Unmanaged<APIResult>.fromOpaque(UnsafeRawPointer(pointer)).release()
}

@_cdecl("onnxc_last_error")
public func onnxc_last_error() -> UnsafePointer<CChar>? {
    if let message = LastError.current { return message }
    LastError.clear()
    return LastError.current
}
