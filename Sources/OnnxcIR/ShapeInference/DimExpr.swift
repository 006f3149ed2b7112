public import OnnxcCore

/// A symbolic dimension as a small polynomial with integer coefficients over atoms: symbols (`batch`) and
/// floor divisions by a positive constant (`(h+1)/2`). It is kept in a canonical form so that equal
/// expressions print equally, which is how shape inference compares symbolic dims: `batch*3` from a Reshape
/// and `batch*3` from a Concat are the same dim.
///
/// It is deliberately modest and exact: `+`, `-`, `*` and division by a constant are closed; division by
/// another expression only succeeds when it is exact term by term. Any coefficient overflow yields nil, which
/// callers turn into an unknown dim rather than a wrong one.
public struct DimExpr: Hashable, Sendable, CustomStringConvertible {
    /// A factor of a monomial.
    public indirect enum Atom: Hashable, Sendable, Comparable {
        case symbol(String)
        /// `floor(numerator / divisor)` with `divisor > 1`.
        case floorDiv(DimExpr, Int64)

        public static func < (a: Atom, b: Atom) -> Bool { a.sortKey < b.sortKey }

        var sortKey: String {
            switch self {
            case .symbol(let name): "0" + name
            case .floorDiv(let e, let d): "1" + e.description + "/" + String(d)
            }
        }
    }

    /// Non-constant terms: a sorted list of atoms (a monomial) to its non-zero coefficient.
    public private(set) var terms: [[Atom]: Int64]
    public private(set) var constant: Int64

    public init(_ constant: Int64) {
        self.terms = [:]
        self.constant = constant
    }

    public init(symbol: String) {
        self.terms = [[.symbol(symbol)]: 1]
        self.constant = 0
    }

    init(terms: [[Atom]: Int64], constant: Int64) {
        self.terms = terms.filter { $0.value != 0 }
        self.constant = constant
    }

    /// The value when the expression is a plain integer.
    public var constantValue: Int64? { terms.isEmpty ? constant : nil }

    /// Longest printed form kept symbolic; longer expressions become unknown dims so dumps stay readable.
    public static let maximumLength = 96

    // MARK: Conversion to and from dims

    /// Parses a dim: fixed sizes become constants, symbolic names are parsed as expressions (a name that is
    /// not a well-formed expression is one opaque symbol), unknown dims have no expression.
    public init?(_ dim: Dim) {
        switch dim {
        case .fixed(let value): self.init(value)
        case .symbolic(let text):
            if let parsed = DimExprParser.parse(text) { self = parsed } else { self.init(symbol: text) }
        case .unknown: return nil
        }
    }

    /// A constant becomes a fixed dim; anything else a symbolic one, unless it is too long to be useful.
    public var dim: Dim {
        if let value = constantValue { return .fixed(value) }
        let text = description
        return text.count <= DimExpr.maximumLength ? .symbolic(text) : .unknown
    }

    // MARK: Arithmetic (nil on overflow)

    public static func + (a: DimExpr, b: DimExpr) -> DimExpr? {
        guard let c = checked(a.constant.addingReportingOverflow(b.constant)) else { return nil }
        var terms = a.terms
        for (monomial, coefficient) in b.terms {
            guard let sum = checked((terms[monomial] ?? 0).addingReportingOverflow(coefficient)) else { return nil }
            terms[monomial] = sum
        }
        return DimExpr(terms: terms, constant: c)
    }

    public static func - (a: DimExpr, b: DimExpr) -> DimExpr? {
        guard let negated = b.scaled(by: -1) else { return nil }
        return a + negated
    }

    public func scaled(by factor: Int64) -> DimExpr? {
        guard let c = DimExpr.checked(constant.multipliedReportingOverflow(by: factor)) else { return nil }
        var result: [[Atom]: Int64] = [:]
        for (monomial, coefficient) in terms {
            guard let scaled = DimExpr.checked(coefficient.multipliedReportingOverflow(by: factor)) else { return nil }
            result[monomial] = scaled
        }
        return DimExpr(terms: result, constant: c)
    }

    public static func * (a: DimExpr, b: DimExpr) -> DimExpr? {
        if let k = b.constantValue { return a.scaled(by: k) }
        if let k = a.constantValue { return b.scaled(by: k) }
        // Distribute: (Σ aᵢ)(Σ bⱼ), with the constants as empty monomials.
        let left = a.terms.map { ($0.key, $0.value) } + [([Atom](), a.constant)]
        let right = b.terms.map { ($0.key, $0.value) } + [([Atom](), b.constant)]
        var terms: [[Atom]: Int64] = [:]
        var constant: Int64 = 0
        for (ma, ca) in left where ca != 0 {
            for (mb, cb) in right where cb != 0 {
                guard let product = checked(ca.multipliedReportingOverflow(by: cb)) else { return nil }
                let monomial = (ma + mb).sorted()
                if monomial.isEmpty {
                    guard let sum = checked(constant.addingReportingOverflow(product)) else { return nil }
                    constant = sum
                } else {
                    guard let sum = checked((terms[monomial] ?? 0).addingReportingOverflow(product)) else { return nil }
                    terms[monomial] = sum
                }
            }
        }
        return DimExpr(terms: terms, constant: constant)
    }

    /// `floor(self / divisor)` for a positive constant divisor. Terms whose coefficients the divisor divides
    /// leave the division exactly (dims are integers, so `floor((q·d + r)/d) = q + floor(r/d)`); only the
    /// remainder stays under a `floorDiv` atom.
    public func floorDivided(by divisor: Int64) -> DimExpr? {
        guard divisor > 0 else { return nil }
        if divisor == 1 { return self }
        if let value = constantValue { return DimExpr(floorDiv(value, divisor)) }
        var quotient: [[Atom]: Int64] = [:]
        var remainder: [[Atom]: Int64] = [:]
        for (monomial, coefficient) in terms {
            let q = floorDiv(coefficient, divisor)
            let r = floorMod(coefficient, divisor)
            if q != 0 { quotient[monomial] = q }
            if r != 0 { remainder[monomial] = r }
        }
        let cq = floorDiv(constant, divisor)
        let cr = floorMod(constant, divisor)
        var result = DimExpr(terms: quotient, constant: cq)
        if remainder.count == 1, let (monomial, coefficient) = remainder.first, coefficient == 1, monomial.count == 1,
           case .floorDiv(let inner, let a) = monomial[0],
           let shifted = DimExpr(a).scaled(by: cr).flatMap({ inner + $0 }),
           let combined = DimExpr.checked(a.multipliedReportingOverflow(by: divisor)),
           let nested = shifted.floorDivided(by: combined), let sum = result + nested {
            // Nested divisions merge exactly: floor((floor(e/a) + c)/d) = floor((e + a·c)/(a·d)), so a chain of
            // stride-2 layers reads `(h+7)/8` rather than `(((h+1)/2+1)/2+1)/2`.
            return sum
        }
        if !remainder.isEmpty {
            // floor(g·x / (g·d)) = floor(x / d): divide out the common factor of the remainder and the divisor.
            let g = remainder.values.reduce(gcd(cr, divisor)) { gcd($0, $1) }
            var reduced = remainder
            if g > 1 { for (m, c) in remainder { reduced[m] = c / g } }
            let atom = Atom.floorDiv(DimExpr(terms: reduced, constant: g > 1 ? cr / g : cr), g > 1 ? divisor / g : divisor)
            guard let sum = result + DimExpr(terms: [[atom]: 1], constant: 0) else { return nil }
            result = sum
        }
        return result
    }

    /// `ceil(self / divisor)` = `floor((self + divisor - 1) / divisor)` for a positive divisor.
    public func ceilDivided(by divisor: Int64) -> DimExpr? {
        guard divisor > 0, let bumped = self + DimExpr(divisor - 1) else { return nil }
        return bumped.floorDivided(by: divisor)
    }

    /// `self / other` when the division is exact: by a constant that divides every coefficient, by itself,
    /// or by a single term whose atoms every term of `self` contains. Otherwise nil (unknown).
    public func exactlyDivided(by other: DimExpr) -> DimExpr? {
        if other == self, other != DimExpr(0) { return DimExpr(1) }
        if let k = other.constantValue {
            guard k != 0 else { return nil }
            if k == 1 { return self }
            guard k != -1, constant % k == 0, terms.values.allSatisfy({ $0 % k == 0 }) else {
                // The caller knows the division is exact (a reshape's element count), so floor is exact too.
                return k > 0 ? floorDivided(by: k) : nil
            }
            var result: [[Atom]: Int64] = [:]
            for (m, c) in terms { result[m] = c / k }
            return DimExpr(terms: result, constant: constant / k)
        }
        guard other.constant == 0, other.terms.count == 1, let (divisorMonomial, divisorCoefficient) = other.terms.first,
              constant == 0 else { return nil }
        var result: [[Atom]: Int64] = [:]
        var resultConstant: Int64 = 0
        for (monomial, coefficient) in terms {
            guard divisorCoefficient != -1, coefficient % divisorCoefficient == 0, let rest = monomial.removingAll(divisorMonomial) else { return nil }
            // `batch*60 / batch` leaves a constant.
            if rest.isEmpty { resultConstant = coefficient / divisorCoefficient } else { result[rest] = coefficient / divisorCoefficient }
        }
        return DimExpr(terms: result, constant: resultConstant)
    }

    /// The value with every symbol bound (nil when one is missing or on overflow): how tests check that the
    /// simplifications are exact.
    public func evaluated(_ values: [String: Int64]) -> Int64? {
        var total = constant
        for (monomial, coefficient) in terms {
            var product = coefficient
            for atom in monomial {
                let factor: Int64
                switch atom {
                case .symbol(let name):
                    guard let v = values[name] else { return nil }
                    factor = v
                case .floorDiv(let e, let d):
                    guard let v = e.evaluated(values) else { return nil }
                    factor = floorDiv(v, d)
                }
                guard let p = DimExpr.checked(product.multipliedReportingOverflow(by: factor)) else { return nil }
                product = p
            }
            guard let t = DimExpr.checked(total.addingReportingOverflow(product)) else { return nil }
            total = t
        }
        return total
    }

    // MARK: Printing

    /// Canonical text: symbol terms in sorted order, then the constant (`batch*3`, `seq+1`, `(h+1)/2`).
    public var description: String {
        let ordered = terms.sorted { key($0.key) < key($1.key) }
        var out = ""
        for (monomial, coefficient) in ordered {
            let magnitude = coefficient.magnitude
            let factors = monomial.map { atom -> String in
                switch atom {
                case .symbol(let name): return name
                case .floorDiv(let e, let d):
                    let inner = e.terms.count == 1 && e.constant == 0 && (e.terms.first?.key.count ?? 0) == 1
                        && (e.terms.first?.value ?? 0) == 1 ? e.description : "(\(e.description))"
                    // Parenthesized inside a product so that `w*(h+1)/2` cannot be misread as `(w*(h+1))/2`.
                    return monomial.count > 1 || magnitude != 1 ? "(\(inner)/\(d))" : "\(inner)/\(d)"
                }
            }
            var term = factors.joined(separator: "*")
            if magnitude != 1 { term += "*\(magnitude)" }
            if coefficient < 0 { out += "-" } else if !out.isEmpty { out += "+" }
            out += term
        }
        if out.isEmpty { return String(constant) }
        if constant > 0 { out += "+\(constant)" } else if constant < 0 { out += "-\(constant.magnitude)" }
        return out
    }

    private func key(_ monomial: [Atom]) -> String { monomial.map(\.sortKey).joined(separator: "*") }

    static func checked(_ result: (partialValue: Int64, overflow: Bool)) -> Int64? {
        result.overflow ? nil : result.partialValue
    }
}

/// Floor division of integers (Swift's `/` truncates toward zero). `b` must be positive, so nothing overflows.
func floorDiv(_ a: Int64, _ b: Int64) -> Int64 {
    let q = a / b
    return (a % b != 0 && a < 0) ? q - 1 : q
}

/// Greatest common divisor of magnitudes (0 when both are 0); Int64.min's magnitude is capped, never trapped on.
func gcd(_ a: Int64, _ b: Int64) -> Int64 {
    var x = a.magnitude, y = b.magnitude
    while y != 0 { (x, y) = (y, x % y) }
    return Int64(clamping: x)
}

/// The remainder matching `floorDiv`, in `0..<b` for a positive `b`.
func floorMod(_ a: Int64, _ b: Int64) -> Int64 {
    let r = a % b
    return r < 0 ? r + b : r
}

extension Array where Element == DimExpr.Atom {
    /// This multiset minus `other`, or nil when `other` is not contained in it.
    func removingAll(_ other: [DimExpr.Atom]) -> [DimExpr.Atom]? {
        var rest = self
        for atom in other {
            guard let index = rest.firstIndex(of: atom) else { return nil }
            rest.remove(at: index)
        }
        return rest
    }
}

/// Reads the text `DimExpr.description` writes: integers, names, `+ - * /` and parentheses, where `/` must be
/// followed by a positive integer. Anything else fails, and the caller treats the text as one opaque name.
enum DimExprParser {
    static func parse(_ text: String) -> DimExpr? {
        var parser = State(chars: Array(text.unicodeScalars).filter { $0 != " " })
        guard let result = parser.sum(depth: 0), parser.position == parser.chars.count else { return nil }
        return result
    }

    private struct State {
        let chars: [Unicode.Scalar]
        var position = 0

        var peek: Unicode.Scalar? { position < chars.count ? chars[position] : nil }

        /// Bounded recursion: a hostile dim_param of nested parentheses must not exhaust the stack.
        mutating func sum(depth: Int) -> DimExpr? {
            guard depth < 16 else { return nil }
            var negate = false
            if peek == "-" { negate = true; position += 1 }
            guard var result = product(depth: depth) else { return nil }
            if negate { guard let n = result.scaled(by: -1) else { return nil }; result = n }
            while let c = peek, c == "+" || c == "-" {
                position += 1
                guard let rhs = product(depth: depth) else { return nil }
                guard let next = c == "+" ? result + rhs : result - rhs else { return nil }
                result = next
            }
            return result
        }

        mutating func product(depth: Int) -> DimExpr? {
            guard var result = factor(depth: depth) else { return nil }
            while let c = peek, c == "*" || c == "/" {
                position += 1
                guard let rhs = factor(depth: depth) else { return nil }
                if c == "*" {
                    guard let next = result * rhs else { return nil }
                    result = next
                } else {
                    guard let d = rhs.constantValue, d > 0, let next = result.floorDivided(by: d) else { return nil }
                    result = next
                }
            }
            return result
        }

        mutating func factor(depth: Int) -> DimExpr? {
            guard let c = peek else { return nil }
            if c == "(" {
                position += 1
                guard let inner = sum(depth: depth + 1), peek == ")" else { return nil }
                position += 1
                return inner
            }
            let start = position
            while let c = peek, !"+-*/() ".unicodeScalars.contains(c) { position += 1 }
            guard position > start else { return nil }
            let word = String(String.UnicodeScalarView(chars[start..<position]))
            if let first = word.unicodeScalars.first, ("0"..."9").contains(first) {
                return Int64(word).map { DimExpr($0) }  // `3a` is neither a number nor a name
            }
            return DimExpr(symbol: word)
        }
    }
}

/// Dim-level arithmetic used by the op rules: unknown in, unknown out.
enum DimMath {
    static func add(_ a: Dim, _ b: Dim) -> Dim { combine(a, b, +) }
    static func sub(_ a: Dim, _ b: Dim) -> Dim { combine(a, b, -) }
    static func mul(_ a: Dim, _ b: Dim) -> Dim { combine(a, b, *) }

    static func add(_ a: Dim, _ k: Int64) -> Dim { combine(a, .fixed(k), +) }
    static func mul(_ a: Dim, _ k: Int64) -> Dim { combine(a, .fixed(k), *) }

    static func floorDiv(_ a: Dim, _ k: Int64) -> Dim {
        guard let e = DimExpr(a), let r = e.floorDivided(by: k) else { return .unknown }
        return r.dim
    }

    static func ceilDiv(_ a: Dim, _ k: Int64) -> Dim {
        guard let e = DimExpr(a), let r = e.ceilDivided(by: k) else { return .unknown }
        return r.dim
    }

    /// `a / b` when exact (see `DimExpr.exactlyDivided`), else unknown.
    static func exactDiv(_ a: Dim, _ b: Dim) -> Dim {
        guard let x = DimExpr(a), let y = DimExpr(b), let r = x.exactlyDivided(by: y) else { return .unknown }
        return r.dim
    }

    static func sum(_ dims: some Sequence<Dim>) -> Dim {
        var result = Dim.fixed(0)
        for d in dims { result = add(result, d) }
        return result
    }

    static func product(_ dims: some Sequence<Dim>) -> Dim {
        var result = Dim.fixed(1)
        for d in dims { result = mul(result, d) }
        return result
    }

    private static func combine(_ a: Dim, _ b: Dim, _ op: (DimExpr, DimExpr) -> DimExpr?) -> Dim {
        // Fixed dims take the fast path; overflow gives unknown, never a trap.
        guard let x = DimExpr(a), let y = DimExpr(b), let r = op(x, y) else { return .unknown }
        return r.dim
    }
}
