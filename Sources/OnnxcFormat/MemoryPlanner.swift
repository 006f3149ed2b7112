import OnnxcCore

/// Assigns arena offsets to intermediates from their lifetimes: two tensors share bytes when no op needs both. The
/// compiler plans every intermediate of known size (the file's memory plan); the runtime plans the rest at the
/// first run of each new input shape (`ShapePlans`). TFLite's ArenaPlanner does the same at load ("greedy by
/// size"): place the largest tensors first, each at the lowest 64-byte-aligned offset that does not overlap a
/// placed tensor whose lifetime intersects its own. The bound it achieves is the peak live set plus fragmentation,
/// usually within a few percent of it; the run allocates exactly `arenaBytes` once.
public enum MemoryPlanner {
    /// Offsets are multiples of this: a cache line, and the widest vector load (AVX-512) the kernels may use.
    public static let alignment = 64

    /// A tensor's size and the op indices (in the main graph's order) of its definition and last read.
    public struct Lifetime: Sendable {
        public var id: TensorID
        public var first: Int
        public var last: Int
        public var bytes: Int

        public init(id: TensorID, first: Int, last: Int, bytes: Int) {
            self.id = id
            self.first = first
            self.last = last
            self.bytes = bytes
        }

        func overlaps(_ other: Lifetime) -> Bool { first <= other.last && other.first <= last }
    }

    public struct Plan: Sendable {
        public var offsets: [TensorID: Int]
        public var arenaBytes: Int
    }

    public static func plan(_ lifetimes: [Lifetime]) -> Plan {
        // Largest first; ties by definition order so the plan is deterministic.
        let order = lifetimes.sorted { $0.bytes != $1.bytes ? $0.bytes > $1.bytes : ($0.first, $0.id) < ($1.first, $1.id) }
        var placed: [(lifetime: Lifetime, offset: Int, end: Int)] = []
        var offsets: [TensorID: Int] = [:]
        var arenaBytes = 0
        for tensor in order {
            let size = CheckedSize.alignUp(max(tensor.bytes, 1), to: alignment) ?? tensor.bytes
            // Busy ranges of placed tensors alive at the same time, by offset.
            let busy = placed.filter { $0.lifetime.overlaps(tensor) }.sorted { $0.offset < $1.offset }
            var offset = 0
            for range in busy {
                if offset + size <= range.offset { break }
                offset = max(offset, range.end)
            }
            let end = offset + size
            placed.append((tensor, offset, end))
            offsets[tensor.id] = offset
            arenaBytes = max(arenaBytes, end)
        }
        return Plan(offsets: offsets, arenaBytes: arenaBytes)
    }
}
