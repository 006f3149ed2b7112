import OnnxcCore
#if canImport(Glibc)
import Glibc
#endif

/// The planned memory of a compiled model's run: one 64-byte aligned block, and the slot (offset, size) the
/// compiler assigned to each intermediate.
///
/// Kernels need not know about it. While a node runs, the executor offers that node's output slots on the
/// calling thread (`ArenaOffer`); `TensorStorage(byteCount:)` takes the first offered slot of exactly the
/// requested size instead of allocating. After the kernel returns, the executor checks that every output sits
/// in its own slot (a kernel may have used a slot for a temporary, or returned a view of an input) and copies
/// any that does not, so a slot is only ever shared by values whose lifetimes the planner saw as disjoint.
final class Arena: @unchecked Sendable {
    let storage: ByteStorage
    let slots: [String: (offset: Int, byteCount: Int)]

    init?(byteCount: Int, slots: [String: (offset: Int, byteCount: Int)] = [:]) {
        guard byteCount > 0, byteCount <= Tensor.allocationLimit else { return nil }
        let memory = UnsafeMutableRawPointer.allocate(byteCount: byteCount, alignment: 64)
        storage = ByteStorage(base: UnsafeRawPointer(memory), count: byteCount, owner: nil, release: { memory.deallocate() })
        self.slots = slots
    }

    func base(of name: String) -> UnsafeMutableRawPointer? {
        guard let slot = slots[name], let start = storage.baseAddress else { return nil }
        return UnsafeMutableRawPointer(mutating: start + slot.offset)
    }

    func contains(_ pointer: UnsafeRawPointer) -> Bool {
        guard let start = storage.baseAddress else { return false }
        return pointer >= start && pointer < start + storage.count
    }
}

/// The output slots offered to the kernel running on this thread, consumed first come, first served.
final class ArenaOffer {
    let arena: Arena
    var free: [(base: UnsafeMutableRawPointer, byteCount: Int)]

    init(arena: Arena, outputs: [String]) {
        self.arena = arena
        free = outputs.compactMap { name in
            guard let base = arena.base(of: name), let slot = arena.slots[name] else { return nil }
            return (base, slot.byteCount)
        }
    }

    /// The offer of a compiled program's step: its outputs' slots, already resolved.
    init(arena: Arena, slots: [ArenaSlot]) {
        self.arena = arena
        let start = UnsafeMutableRawPointer(mutating: arena.storage.baseAddress)
        free = slots.compactMap { slot in start.map { ($0 + slot.offset, slot.byteCount) } }
    }

    /// Takes a slot of exactly `byteCount` bytes, if one is offered.
    func take(_ byteCount: Int) -> UnsafeMutableRawPointer? {
        guard let index = free.firstIndex(where: { $0.byteCount == byteCount }) else { return nil }
        return free.remove(at: index).base
    }

    /// The offer of the calling thread (nil outside a planned node, and on kernels' worker threads).
    static var current: ArenaOffer? {
        get {
            guard let raw = pthread_getspecific(key) else { return nil }
            return Unmanaged<ArenaOffer>.fromOpaque(raw).takeUnretainedValue()
        }
    }

    /// Runs `body` with `offer` installed on this thread, restoring the previous one (nested subgraph runs).
    static func with<R, E: Error>(_ offer: ArenaOffer?, _ body: () throws(E) -> R) throws(E) -> R {
        let previous = pthread_getspecific(key)
        let retained = offer.map { Unmanaged.passRetained($0) }
        pthread_setspecific(key, retained?.toOpaque())
        defer {
            pthread_setspecific(key, previous)
            retained?.release()
        }
        return try body()
    }

    private static let key: pthread_key_t = {
        var key = pthread_key_t()
        pthread_key_create(&key, nil)
        return key
    }()
}
