/// One dimension of a tensor shape: a known size, a named symbol shared across the graph (`batch`), or unknown.
public enum Dim: Hashable, Sendable, CustomStringConvertible {
    case fixed(Int64)
    case symbolic(String)
    case unknown

    public var description: String {
        switch self {
        case .fixed(let value): String(value)
        case .symbolic(let name): name
        case .unknown: "?"
        }
    }

    public var fixedValue: Int64? {
        if case .fixed(let value) = self { return value }
        return nil
    }
}

/// A tensor shape of known rank whose dims may be symbolic. An unknown rank is `Shape?` = nil at the use site.
public struct Shape: Hashable, Sendable, CustomStringConvertible {
    public var dims: [Dim]

    public init(_ dims: [Dim]) { self.dims = dims }

    public init(fixed: [Int64]) { self.dims = fixed.map(Dim.fixed) }

    public var rank: Int { dims.count }

    /// The sizes when every dim is known, else nil.
    public var fixedDims: [Int64]? {
        var result: [Int64] = []
        result.reserveCapacity(dims.count)
        for dim in dims {
            guard let value = dim.fixedValue else { return nil }
            result.append(value)
        }
        return result
    }

    /// `[batch,3,224,224]`; a scalar prints as `[]`.
    public var description: String { "[" + dims.map(\.description).joined(separator: ",") + "]" }

    /// True when the two shapes broadcast (NumPy) whatever values their symbols take: right-aligned, every pair of
    /// dims is the same size or symbol, or one of them is 1.
    public func broadcasts(with other: Shape) -> Bool {
        zip(dims.reversed(), other.dims.reversed()).allSatisfy { a, b in
            a == .fixed(1) || b == .fixed(1) || (a == b && a != .unknown)
        }
    }

    /// True when the two shapes could describe the same tensor: same rank, and no two known dims differ.
    public func isCompatible(with other: Shape) -> Bool {
        guard rank == other.rank else { return false }
        for (a, b) in zip(dims, other.dims) {
            if let x = a.fixedValue, let y = b.fixedValue, x != y { return false }
        }
        return true
    }
}

/// Overflow-checked arithmetic on untrusted sizes: every size read from a file goes through here before it
/// decides an allocation, so a hostile dim becomes an error, never a trap.
public enum CheckedSize {
    /// The element count of `dims`, or nil when a dim is negative or the product overflows `Int`. Inlinable, so
    /// callers get it specialized: unspecialized, its iterator's metadata costs a conformance scan at first use.
    @inlinable
    public static func elementCount<S: Sequence>(_ dims: S) -> Int? where S.Element == Int64 {
        var count = 1
        for dim in dims {
            guard dim >= 0, let value = Int(exactly: dim) else { return nil }
            let (product, overflow) = count.multipliedReportingOverflow(by: value)
            if overflow { return nil }
            count = product
        }
        return count
    }

    /// `a · b` or nil on overflow.
    public static func multiply(_ a: Int, _ b: Int) -> Int? {
        let (product, overflow) = a.multipliedReportingOverflow(by: b)
        return overflow ? nil : product
    }

    /// `a + b` or nil on overflow.
    public static func add(_ a: Int, _ b: Int) -> Int? {
        let (sum, overflow) = a.addingReportingOverflow(b)
        return overflow ? nil : sum
    }

    /// Rounds `value` up to a multiple of `alignment` (a power of two), or nil on overflow.
    public static func alignUp(_ value: Int, to alignment: Int) -> Int? {
        guard let bumped = add(value, alignment - 1) else { return nil }
        return bumped & ~(alignment - 1)
    }
}
