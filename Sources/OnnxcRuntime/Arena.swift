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
        self.slots = slots
        // Arenas of a few megabytes and more are mapped on 2 MiB boundaries with transparent huge pages asked for:
        // the first run then takes one page fault per 2 MiB instead of one per 4 KiB (yolo_tiny's 2.9 MB arena: 730
        // faults, about a millisecond in a virtual machine, become 2).
        let huge = Arena.hugePageBytes
        if byteCount >= huge, let rounded = CheckedSize.alignUp(byteCount, to: huge), let mapped = Arena.mapHuge(rounded) {
            storage = ByteStorage(base: UnsafeRawPointer(mapped), count: byteCount, owner: nil, release: { _ = munmap(mapped, rounded) })
            return
        }
        let memory = UnsafeMutableRawPointer.allocate(byteCount: byteCount, alignment: 64)
        storage = ByteStorage(base: UnsafeRawPointer(memory), count: byteCount, owner: nil, release: { memory.deallocate() })
    }

    static let hugePageBytes = 2 << 20

    /// An anonymous mapping of `bytes` (a multiple of 2 MiB) starting on a 2 MiB boundary, huge pages advised.
    private static func mapHuge(_ bytes: Int) -> UnsafeMutableRawPointer? {
        // Map 2 MiB more than needed and trim both ends to the aligned range.
        let span = bytes + hugePageBytes
        guard let raw = mmap(nil, span, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0), raw != MAP_FAILED else { return nil }
        let start = Int(bitPattern: raw), aligned = (start + hugePageBytes - 1) / hugePageBytes * hugePageBytes
        if aligned > start { _ = munmap(raw, aligned - start) }
        let tail = start + span - (aligned + bytes)
        if tail > 0, let end = UnsafeMutableRawPointer(bitPattern: aligned + bytes) { _ = munmap(end, tail) }
        guard let base = UnsafeMutableRawPointer(bitPattern: aligned) else { return nil }
        _ = madvise(base, bytes, MADV_HUGEPAGE)
        return base
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
