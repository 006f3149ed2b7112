#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import OnnxcCore

/// Operators that fit no other family: string processing, detection post-processing, text vectorizing,
/// signal processing and geometry helpers.
enum MiscKernels {
    static let table: [String: Kernel] = [
        "StringNormalizer": { inputs, context throws(RuntimeError) in try stringNormalizer(inputs, context) },
        "StringConcat": { inputs, context throws(RuntimeError) in
            let a = try strings(inputs, 0, context), b = try strings(inputs, 1, context)
            let shape = try Broadcast.shape([a.shape, b.shape])
            let count = shape.reduce(1, *)
            let sa = a.strings ?? [], sb = b.strings ?? []
            var out: [String] = []
            out.reserveCapacity(count)
            if a.shape == b.shape {
                for i in 0..<count { out.append(sa[i] + sb[i]) }
            } else {
                let offsets = Broadcast.offsets(of: [a.shape, b.shape], target: shape)
                for i in 0..<count { out.append(sa[offsets[0][i]] + sb[offsets[1][i]]) }
            }
            return outputs(Tensor(strings: out, shape: shape))
        },
        "StringSplit": { inputs, context throws(RuntimeError) in try stringSplit(inputs, context) },
        "RegexFullMatch": { inputs, context throws(RuntimeError) in
            let x = try strings(inputs, 0, context)
            let pattern = context.attributes.string("pattern", "")
            // The standard library's regex engine (RE2's syntax is a subset of what it accepts), set to RE2's
            // meaning: code points rather than grapheme clusters, ASCII \w \d \s, and \b between a word and a
            // non-word character (Unicode's default word boundaries see no break in "google.com"). wholeMatch
            // anchors the pattern at both ends, so alternations backtrack to a full match (`a|ab` on "ab").
            let regex: Regex<AnyRegexOutput>
            do {
                regex = try Regex(pattern).matchingSemantics(.unicodeScalar).asciiOnlyCharacterClasses().wordBoundaryKind(.simple)
            } catch {
                throw .invalidArgument("RegexFullMatch: invalid pattern \(pattern)")
            }
            var matches: [Bool] = []
            for s in x.strings ?? [] {
                do { matches.append(try regex.wholeMatch(in: s) != nil) } catch {
                    throw .invalidArgument("RegexFullMatch: pattern \(pattern) failed on an input")
                }
            }
            return outputs(try Tensor(matches, shape: x.shape))
        },
        "NonMaxSuppression": { inputs, context throws(RuntimeError) in try nonMaxSuppression(inputs, context) },
        "TfIdfVectorizer": { inputs, context throws(RuntimeError) in try tfIdf(inputs, context) },
        "CenterCropPad": { inputs, context throws(RuntimeError) in try centerCropPad(inputs, context) },
        "AffineGrid": { inputs, context throws(RuntimeError) in try affineGrid(inputs, context) },
        "DFT": { inputs, context throws(RuntimeError) in try dft(inputs, context) },
        "STFT": { inputs, context throws(RuntimeError) in try stft(inputs, context) },
        "MelWeightMatrix": { inputs, context throws(RuntimeError) in try melWeightMatrix(inputs, context) },
    ]

    private static func strings(_ inputs: [Value?], _ index: Int, _ context: KernelContext) throws(RuntimeError) -> Tensor {
        let t = try context.tensor(inputs, index)
        guard t.dtype == .string else { throw .unsupportedType(op: context.node.opType, dtype: t.dtype.onnxName) }
        return t
    }

    // MARK: - Strings

    /// Follows onnxruntime: stopwords are whole elements (removed from the output), the locale's case mapping
    /// is Unicode's default one.
    private static func stringNormalizer(_ inputs: [Value?], _ context: KernelContext) throws(RuntimeError) -> [Value?] {
        let x = try strings(inputs, 0, context)
        let twoDim = x.rank == 2
        guard x.rank == 1 || (twoDim && x.shape[0] == 1) else {
            throw .invalidShape("StringNormalizer: input must be [C] or [1, C], not \(x.shape)")
        }
        let action = context.attributes.string("case_change_action", "NONE")
        guard ["NONE", "LOWER", "UPPER"].contains(action) else {
            throw .invalidArgument("StringNormalizer: unknown case_change_action \(action)")
        }
        let caseSensitive = context.attributes.int("is_case_sensitive", 0) != 0
        let stopwords = context.attributes.strings("stopwords") ?? []
        let stops = Set(caseSensitive ? stopwords : stopwords.map { $0.lowercased() })
        var out: [String] = []
        for s in x.strings ?? [] {
            if !stops.isEmpty && stops.contains(caseSensitive ? s : s.lowercased()) { continue }
            switch action {
            case "LOWER": out.append(s.lowercased())
            case "UPPER": out.append(s.uppercased())
            default: out.append(s)
            }
        }
        // Everything removed: a single empty string keeps the output non-empty, as the spec's shape rule wants.
        if out.isEmpty && x.count > 0 { out = [""] }
        return outputs(Tensor(strings: out, shape: twoDim ? [1, out.count] : [out.count]))
    }

    /// Python `str.split` semantics: no (or empty) delimiter splits on whitespace runs and drops empty pieces.
    private static func stringSplit(_ inputs: [Value?], _ context: KernelContext) throws(RuntimeError) -> [Value?] {
        let x = try strings(inputs, 0, context)
        let delimiter = context.attributes.string("delimiter", "")
        let maxSplit = context.attributes.int("maxsplit").map { Int($0) }
        if let maxSplit, maxSplit < 0 { throw .invalidArgument("StringSplit: maxsplit must be non-negative") }
        var pieces: [[String]] = []
        var widest = 0
        for s in x.strings ?? [] {
            var parts: [String] = []
            if delimiter.isEmpty {
                var splits = 0
                var rest = Substring(s)
                while true {
                    rest = rest.drop { $0.isWhitespace }
                    if rest.isEmpty { break }
                    if let maxSplit, splits >= maxSplit {
                        // The spec strips leading and trailing whitespace from the unsplit remainder too.
                        parts.append(String(rest.reversed().drop { $0.isWhitespace }.reversed()))
                        break
                    }
                    let word = rest.prefix { !$0.isWhitespace }
                    parts.append(String(word))
                    rest = rest.dropFirst(word.count)
                    splits += 1
                }
            } else {
                var rest = Substring(s)
                var splits = 0
                while let range = rest.firstRange(of: delimiter), maxSplit.map({ splits < $0 }) ?? true {
                    parts.append(String(rest[..<range.lowerBound]))
                    rest = rest[range.upperBound...]
                    splits += 1
                }
                parts.append(String(rest))
            }
            widest = max(widest, parts.count)
            pieces.append(parts)
        }
        var flat: [String] = []
        flat.reserveCapacity(pieces.count * widest)
        for parts in pieces {
            flat.append(contentsOf: parts)
            flat.append(contentsOf: [String](repeating: "", count: widest - parts.count))
        }
        let counts = try Tensor(pieces.map { Int64($0.count) }, shape: x.shape)
        return [.tensor(Tensor(strings: flat, shape: x.shape + [widest])), .tensor(counts)]
    }

    // MARK: - NonMaxSuppression

    private static func nonMaxSuppression(_ inputs: [Value?], _ context: KernelContext) throws(RuntimeError) -> [Value?] {
        let boxes = try context.tensor(inputs, 0)
        let scores = try context.tensor(inputs, 1)
        guard boxes.rank == 3, boxes.shape[2] == 4, scores.rank == 3,
              scores.shape[0] == boxes.shape[0], scores.shape[2] == boxes.shape[1] else {
            throw .invalidShape("NonMaxSuppression: boxes \(boxes.shape) and scores \(scores.shape) do not match [N, B, 4] and [N, C, B]")
        }
        let maxPerClass = try context.optionalTensor(inputs, 2).flatMap { $0.int64s().first } ?? 0
        let iouThreshold = try context.optionalTensor(inputs, 3).flatMap { $0.doubles().first } ?? 0
        let scoreThreshold = try context.optionalTensor(inputs, 4).flatMap { $0.doubles().first }
        guard iouThreshold >= 0 && iouThreshold <= 1 else { throw .invalidArgument("NonMaxSuppression: iou_threshold must be in [0, 1]") }
        let centerPoint = context.attributes.int("center_point_box", 0) != 0
        let batches = boxes.shape[0], classes = scores.shape[1], count = boxes.shape[1]
        let b = boxes.doubles(), s = scores.doubles()
        var selected: [Int64] = []
        if maxPerClass > 0 {
            // Corners as (y1, x1, y2, x2) with y1 <= y2, x1 <= x2.
            var corners = [Double](repeating: 0, count: b.count)
            for i in 0..<(batches * count) {
                let p = i * 4
                if centerPoint {
                    let (xc, yc, w, h) = (b[p], b[p + 1], b[p + 2], b[p + 3])
                    corners[p] = yc - h / 2; corners[p + 1] = xc - w / 2; corners[p + 2] = yc + h / 2; corners[p + 3] = xc + w / 2
                } else {
                    corners[p] = min(b[p], b[p + 2]); corners[p + 1] = min(b[p + 1], b[p + 3])
                    corners[p + 2] = max(b[p], b[p + 2]); corners[p + 3] = max(b[p + 1], b[p + 3])
                }
            }
            func iou(_ i: Int, _ j: Int) -> Double {
                let p = i * 4, q = j * 4
                let areaI = (corners[p + 2] - corners[p]) * (corners[p + 3] - corners[p + 1])
                let areaJ = (corners[q + 2] - corners[q]) * (corners[q + 3] - corners[q + 1])
                guard areaI > 0, areaJ > 0 else { return 0 }
                let h = max(0, min(corners[p + 2], corners[q + 2]) - max(corners[p], corners[q]))
                let w = max(0, min(corners[p + 3], corners[q + 3]) - max(corners[p + 1], corners[q + 1]))
                let inter = h * w
                return inter / (areaI + areaJ - inter)
            }
            for n in 0..<batches {
                for c in 0..<classes {
                    let base = (n * classes + c) * count
                    var candidates: [Int] = []
                    for box in 0..<count where scoreThreshold.map({ s[base + box] > $0 }) ?? true { candidates.append(box) }
                    candidates.sort { (i: Int, j: Int) -> Bool in
                        let si = s[base + i], sj = s[base + j]
                        return si > sj || (si == sj && i < j)
                    }
                    var kept: [Int] = []
                    for box in candidates {
                        if Int64(kept.count) >= maxPerClass { break }
                        if kept.allSatisfy({ iou(n * count + $0, n * count + box) <= iouThreshold }) {
                            kept.append(box)
                            selected += [Int64(n), Int64(c), Int64(box)]
                        }
                    }
                }
            }
        }
        return outputs(try Tensor(selected, shape: [selected.count / 3, 3]))
    }

    // MARK: - TfIdfVectorizer

    private static func tfIdf(_ inputs: [Value?], _ context: KernelContext) throws(RuntimeError) -> [Value?] {
        let x = try context.tensor(inputs, 0)
        let a = context.attributes
        let mode = a.string("mode", "TF")
        guard ["TF", "IDF", "TFIDF"].contains(mode) else { throw .invalidArgument("TfIdfVectorizer: unknown mode \(mode)") }
        let minGram = Int(a.int("min_gram_length", 1)), maxGram = Int(a.int("max_gram_length", 1))
        let maxSkip = Int(a.int("max_skip_count", 0))
        guard minGram >= 1, maxGram >= minGram, maxSkip >= 0 else {
            throw .invalidArgument("TfIdfVectorizer: need 1 <= min_gram_length <= max_gram_length and max_skip_count >= 0")
        }
        let counts = (a.ints("ngram_counts") ?? []).map { Int($0) }
        let indexes = (a.ints("ngram_indexes") ?? []).map { Int($0) }
        let weights = a.floats("weights") ?? []
        guard let outputSize = indexes.max().map({ $0 + 1 }), indexes.allSatisfy({ $0 >= 0 }) else {
            throw .invalidArgument("TfIdfVectorizer needs non-negative ngram_indexes")
        }
        if !weights.isEmpty && weights.count < outputSize { throw .invalidArgument("TfIdfVectorizer: weights are fewer than the outputs") }
        let rows: Int, columns: Int
        switch x.rank {
        case 0, 1: rows = 1; columns = x.count
        case 2: rows = x.shape[0]; columns = x.shape[1]
        default: throw .invalidShape("TfIdfVectorizer: input must be [C] or [N, C], not \(x.shape)")
        }
        var frequencies = [Int](repeating: 0, count: try checkedCount([rows, outputSize], op: "TfIdfVectorizer"))
        func count<Token: Hashable>(pool: [Token], tokens: [Token]) throws(RuntimeError) {
            // Pool n-grams in order get consecutive ids; ngram_indexes maps an id to its output column.
            var table: [[Token]: Int] = [:]
            var id = 0
            for (i, start) in counts.enumerated() {
                let n = i + 1
                let end = i + 1 < counts.count ? counts[i + 1] : pool.count
                guard start >= 0, start <= end, end <= pool.count else { throw .invalidArgument("TfIdfVectorizer: ngram_counts \(counts) do not fit the pool") }
                var p = start
                while p + n <= end {
                    guard id < indexes.count else { throw .invalidArgument("TfIdfVectorizer: more n-grams than ngram_indexes") }
                    // The first occurrence of a repeated pool n-gram wins, as in the reference implementation.
                    if n >= minGram && n <= maxGram, table[Array(pool[p..<(p + n)])] == nil { table[Array(pool[p..<(p + n)])] = indexes[id] }
                    id += 1
                    p += n
                }
            }
            var gram: [Token] = []
            gram.reserveCapacity(maxGram)
            for r in 0..<rows {
                let row = r * columns
                for n in minGram...maxGram {
                    // Unigrams have no gaps to skip: count them once.
                    let skips = n == 1 ? 0 : maxSkip
                    for skip in 0...skips {
                        let distance = skip + 1
                        var start = 0
                        while start + (n - 1) * distance < columns {
                            gram.removeAll(keepingCapacity: true)
                            for k in 0..<n { gram.append(tokens[row + start + k * distance]) }
                            if let column = table[gram] { frequencies[r * outputSize + column] += 1 }
                            start += 1
                        }
                    }
                }
            }
        }
        if x.dtype == .string {
            try count(pool: a.strings("pool_strings") ?? [], tokens: x.strings ?? [])
        } else if x.dtype == .int32 || x.dtype == .int64 {
            try count(pool: a.ints("pool_int64s") ?? [], tokens: x.int64s())
        } else {
            throw .unsupportedType(op: "TfIdfVectorizer", dtype: x.dtype.onnxName)
        }
        var y = [Float](repeating: 0, count: frequencies.count)
        for i in frequencies.indices {
            let f = frequencies[i], w = weights.isEmpty ? 1 : weights[i % outputSize]
            switch mode {
            case "TF": y[i] = Float(f)
            case "IDF": y[i] = f > 0 ? w : 0
            default: y[i] = Float(f) * w
            }
        }
        return outputs(try Tensor(y, shape: x.rank == 2 ? [rows, outputSize] : [outputSize]))
    }

    // MARK: - CenterCropPad

    private static func centerCropPad(_ inputs: [Value?], _ context: KernelContext) throws(RuntimeError) -> [Value?] {
        let x = try context.tensor(inputs, 0)
        let target = try context.tensor(inputs, 1).int64s()
        let rank = x.rank
        var axes = Array(0..<rank)
        if let raw = context.attributes.ints("axes") {
            axes = []
            for axis in raw { axes.append(try Broadcast.axis(axis, rank: rank, op: "CenterCropPad")) }
            guard Set(axes).count == axes.count else { throw .invalidArgument("CenterCropPad: axes \(raw) repeat an axis") }
        }
        guard target.count == axes.count, target.allSatisfy({ $0 >= 0 }) else {
            throw .invalidArgument("CenterCropPad: shape \(target) must give a non-negative size for each of the \(axes.count) axes")
        }
        var shape = x.shape
        // Per axis: where the kept window starts in the input and in the output, and its length.
        var inStart = [Int](repeating: 0, count: rank), outStart = [Int](repeating: 0, count: rank)
        var window = x.shape
        for (axis, size) in zip(axes, target.map { Int($0) }) {
            let dim = x.shape[axis]
            shape[axis] = size
            if size < dim {
                inStart[axis] = (dim - size) / 2
                window[axis] = size
            } else {
                outStart[axis] = (size - dim) / 2
                window[axis] = dim
            }
        }
        let total = try checkedCount(shape, op: "CenterCropPad")
        let rows = window.reduce(1, *) / max(window.last ?? 1, 1)
        let inStrides = Broadcast.strides(x.shape), outStrides = Broadcast.strides(shape)
        // Copy the window row by row (rows run along the last axis).
        func forEachRow(_ body: (Int, Int, Int) -> Void) {
            guard rank > 0 else { body(0, 0, 1); return }
            let inner = window[rank - 1]
            guard window.allSatisfy({ $0 > 0 }) else { return }
            var index = [Int](repeating: 0, count: rank)
            for _ in 0..<rows {
                var src = 0, dst = 0
                for d in 0..<rank {
                    src += (index[d] + inStart[d]) * inStrides[d]
                    dst += (index[d] + outStart[d]) * outStrides[d]
                }
                body(src, dst, inner)
                var d = rank - 2
                while d >= 0 {
                    index[d] += 1
                    if index[d] < window[d] { break }
                    index[d] = 0
                    d -= 1
                }
            }
        }
        if x.dtype == .string {
            let source = x.strings ?? []
            var out = [String](repeating: "", count: total)
            forEachRow { src, dst, n in for k in 0..<n { out[dst + k] = source[src + k] } }
            return outputs(Tensor(strings: out, shape: shape))
        }
        let width = x.dtype.storageBytes
        let result = try Tensor(zeros: x.dtype, shape: shape)
        x.withBytes { source in
            result.withMutableBytes { target in
                guard let s = source.baseAddress, let t = target.baseAddress else { return }
                forEachRow { src, dst, n in
                    if width == 0 {
                        SequenceKernels.copyNibbles(source, src, target, dst, n)
                    } else {
                        (t + dst * width).copyMemory(from: s + src * width, byteCount: n * width)
                    }
                }
            }
        }
        return outputs(result)
    }

    // MARK: - AffineGrid

    private static func affineGrid(_ inputs: [Value?], _ context: KernelContext) throws(RuntimeError) -> [Value?] {
        let theta = try context.tensor(inputs, 0)
        let size = try context.tensor(inputs, 1).int64s().map { Int($0) }
        let alignCorners = context.attributes.int("align_corners", 0) != 0
        guard size.count == 4 || size.count == 5, size.allSatisfy({ $0 >= 0 }) else {
            throw .invalidArgument("AffineGrid: size must be [N, C, H, W] or [N, C, D, H, W], not \(size)")
        }
        let spatial = size.count - 2
        let n = size[0]
        guard theta.shape == [n, spatial, spatial + 1] else {
            throw .invalidShape("AffineGrid: theta has shape \(theta.shape), expected \([n, spatial, spatial + 1])")
        }
        let dims = Array(size[2...])
        _ = try checkedCount(size[..<1] + dims + [spatial], op: "AffineGrid")
        func base(_ length: Int) -> [Double] {
            (0..<length).map { i in
                if alignCorners { return length == 1 ? -1 : -1 + 2 * Double(i) / Double(length - 1) }
                return (2 * Double(i) + 1) / Double(length) - 1
            }
        }
        // Coordinates are ordered x (last axis) first, as grid_sample reads them.
        let coordinates = dims.reversed().map(base)
        let points = dims.reduce(1, *)
        let t = theta.doubles()
        var out = [Double](repeating: 0, count: n * points * spatial)
        var index = [Int](repeating: 0, count: spatial)
        for p in 0..<points {
            var rest = p
            for d in stride(from: spatial - 1, through: 0, by: -1) {
                index[d] = rest % dims[d]
                rest /= dims[d]
            }
            for batch in 0..<n {
                for row in 0..<spatial {
                    let m = (batch * spatial + row) * (spatial + 1)
                    var v = t[m + spatial]
                    for k in 0..<spatial { v += t[m + k] * coordinates[k][index[spatial - 1 - k]] }
                    out[(batch * points + p) * spatial + row] = v
                }
            }
        }
        return outputs(try floatTensor(out, dtype: theta.dtype, shape: [n] + dims + [spatial], op: "AffineGrid"))
    }

    // MARK: - DFT, STFT, MelWeightMatrix

    private static func dft(_ inputs: [Value?], _ context: KernelContext) throws(RuntimeError) -> [Value?] {
        let x = try context.tensor(inputs, 0)
        let rank = x.rank
        guard rank >= 2, x.shape[rank - 1] == 1 || x.shape[rank - 1] == 2 else {
            throw .invalidShape("DFT: input must end in a dimension of 1 (real) or 2 (complex), not \(x.shape)")
        }
        var rawAxis: Int64
        if context.opset >= 20 {
            rawAxis = try context.optionalTensor(inputs, 2).flatMap { $0.int64s().first } ?? -2
        } else {
            rawAxis = context.attributes.int("axis", 1)
        }
        if rawAxis < 0 { rawAxis += Int64(rank) }
        guard rawAxis >= 0 && rawAxis < Int64(rank - 1) else { throw .invalidArgument("DFT: axis \(rawAxis) is not a signal axis of shape \(x.shape)") }
        let axis = Int(rawAxis)
        let length = try context.optionalTensor(inputs, 1).flatMap { $0.int64s().first }.map { Int($0) } ?? x.shape[axis]
        guard length > 0 else { throw .invalidArgument("DFT: dft_length must be positive") }
        let inverse = context.attributes.int("inverse", 0) != 0
        let onesided = context.attributes.int("onesided", 0) != 0
        let bins = onesided ? length / 2 + 1 : length
        var shape = x.shape
        shape[axis] = bins
        shape[rank - 1] = 2
        _ = try checkedCount(shape, op: "DFT")
        _ = try checkedCount([length], op: "DFT")
        let complexIn = x.shape[rank - 1] == 2
        let values = x.doubles()
        let outer = x.shape[..<axis].reduce(1, *)
        let inner = x.shape[(axis + 1)..<(rank - 1)].reduce(1, *)
        let dim = x.shape[axis]
        let transform = Fourier(length: length, inverse: inverse)
        var out = [Double](repeating: 0, count: shape.reduce(1, *))
        var re = [Double](repeating: 0, count: length), im = [Double](repeating: 0, count: length)
        for o in 0..<outer {
            for i in 0..<inner {
                for j in 0..<length {
                    if j < dim {
                        let e = ((o * dim + j) * inner + i) * (complexIn ? 2 : 1)
                        re[j] = values[e]
                        im[j] = complexIn ? values[e + 1] : 0
                    } else {
                        re[j] = 0
                        im[j] = 0
                    }
                }
                let (fr, fi) = transform(re, im)
                for k in 0..<bins {
                    let e = ((o * bins + k) * inner + i) * 2
                    out[e] = fr[k]
                    out[e + 1] = fi[k]
                }
            }
        }
        return outputs(try floatTensor(out, dtype: x.dtype, shape: shape, op: "DFT"))
    }

    private static func stft(_ inputs: [Value?], _ context: KernelContext) throws(RuntimeError) -> [Value?] {
        let signal = try context.tensor(inputs, 0)
        guard signal.rank == 3, signal.shape[2] == 1 || signal.shape[2] == 2 else {
            throw .invalidShape("STFT: signal must be [batch, length, 1 or 2], not \(signal.shape)")
        }
        guard let step = try context.tensor(inputs, 1).int64s().first, step > 0 else { throw .invalidArgument("STFT: frame_step must be positive") }
        let window = try context.optionalTensor(inputs, 2)
        var frameLength = try context.optionalTensor(inputs, 3).flatMap { $0.int64s().first }.map { Int($0) }
        if frameLength == nil { frameLength = window?.count ?? signal.shape[1] }
        guard let frameLength, frameLength > 0, frameLength <= signal.shape[1] else {
            throw .invalidArgument("STFT: frame_length must be in 1...\(signal.shape[1])")
        }
        let weights = window?.doubles() ?? [Double](repeating: 1, count: frameLength)
        guard weights.count == frameLength else { throw .invalidShape("STFT: window has \(weights.count) values, frame_length is \(frameLength)") }
        let complexIn = signal.shape[2] == 2
        let onesided = context.attributes.int("onesided", 1) != 0 && !complexIn
        let bins = onesided ? frameLength / 2 + 1 : frameLength
        let batch = signal.shape[0], length = signal.shape[1]
        let frames = 1 + (length - frameLength) / Int(step)
        let values = signal.doubles()
        let transform = Fourier(length: frameLength, inverse: false)
        var out = [Double](repeating: 0, count: batch * frames * bins * 2)
        var re = [Double](repeating: 0, count: frameLength), im = [Double](repeating: 0, count: frameLength)
        for b in 0..<batch {
            for f in 0..<frames {
                for j in 0..<frameLength {
                    let e = (b * length + f * Int(step) + j) * (complexIn ? 2 : 1)
                    re[j] = values[e] * weights[j]
                    im[j] = complexIn ? values[e + 1] * weights[j] : 0
                }
                let (fr, fi) = transform(re, im)
                for k in 0..<bins {
                    let e = ((b * frames + f) * bins + k) * 2
                    out[e] = fr[k]
                    out[e + 1] = fi[k]
                }
            }
        }
        return outputs(try floatTensor(out, dtype: signal.dtype, shape: [batch, frames, bins, 2], op: "STFT"))
    }

    /// Follows the ONNX reference implementation (whose mel spacing the node tests encode).
    private static func melWeightMatrix(_ inputs: [Value?], _ context: KernelContext) throws(RuntimeError) -> [Value?] {
        func scalar(_ i: Int) throws(RuntimeError) -> Double {
            guard let v = try context.tensor(inputs, i).doubles().first else { throw .invalidArgument("MelWeightMatrix: input \(i) is empty") }
            return v
        }
        let bins = try scalar(0), dft = try scalar(1), sampleRate = try scalar(2)
        let lower = try scalar(3), upper = try scalar(4)
        guard bins >= 1, bins < 16_777_216, dft >= 1, dft < 1e12, sampleRate > 0, sampleRate.isFinite,
              lower >= 0, upper > lower, upper.isFinite else {
            throw .invalidArgument("MelWeightMatrix: needs positive num_mel_bins, dft_length, sample_rate and 0 <= lower < upper")
        }
        let melBins = Int(bins), dftLength = Int(dft)
        let spectrogramBins = dftLength / 2 + 1
        let lowMel = 2595 * log10(1 + lower / 700), highMel = 2595 * log10(1 + upper / 700)
        let melStep = (highMel - lowMel) / Double(melBins + 2)
        let edges = (0..<(melBins + 2)).map { i -> Int in
            let hz = 700 * (pow(10, (Double(i) * melStep + lowMel) / 2595) - 1)
            // Clamped: edges past the last spectrogram bin only matter as "beyond the end".
            return Int(min(max((Double(dftLength + 1) * hz / sampleRate).rounded(.down), 0), Double(spectrogramBins + 1)))
        }
        var out = [Double](repeating: 0, count: try checkedCount([spectrogramBins, melBins], op: "MelWeightMatrix"))
        func set(_ row: Int, _ column: Int, _ v: Double) { if row >= 0 && row < spectrogramBins { out[row * melBins + column] = v } }
        for i in 0..<melBins {
            let low = edges[i], center = edges[i + 1], high = edges[i + 2]
            if center == low {
                set(center, i, 1)
            } else if center > low {
                for j in low...center { set(j, i, Double(j - low) / Double(center - low)) }
            }
            if high > center {
                for j in center..<high { set(j, i, Double(high - j) / Double(high - center)) }
            }
        }
        let raw = context.attributes.int("output_datatype", 1)
        guard let dtype = DType(rawValue: Int32(truncatingIfNeeded: raw)) else { throw .invalidArgument("MelWeightMatrix: unknown output_datatype \(raw)") }
        return outputs(try numericTensor(out, dtype: dtype, shape: [spectrogramBins, melBins], op: "MelWeightMatrix"))
    }

    // MARK: - Helpers

    /// The element count of an output shape taken from input values, or an error instead of an overflow trap.
    private static func checkedCount(_ shape: [Int], op: String) throws(RuntimeError) -> Int {
        guard let count = CheckedSize.elementCount(shape.map(Int64.init)), count <= 1 << 34 else {
            throw .invalidShape("\(op): output shape \(shape) is too large")
        }
        return count
    }

    private static func floatTensor(_ values: [Double], dtype: DType, shape: [Int], op: String) throws(RuntimeError) -> Tensor {
        switch dtype {
        case .float, .double, .float16, .bfloat16: return try numericTensor(values, dtype: dtype, shape: shape, op: op)
        default: throw .unsupportedType(op: op, dtype: dtype.onnxName)
        }
    }

    /// Doubles narrowed to `dtype` (float types round, integer types truncate and saturate).
    private static func numericTensor(_ values: [Double], dtype: DType, shape: [Int], op: String) throws(RuntimeError) -> Tensor {
        struct Narrow: ArithmeticVisitor {
            let values: [Double], shape: [Int]
            func visit<T: ArithmeticElement>(_: T.Type) throws(RuntimeError) -> Tensor { try Tensor(values.map { T.from($0) }, shape: shape) }
        }
        if dtype == .bfloat16 {
            let result = try Tensor(zeros: .bfloat16, shape: shape)
            guard values.count == result.count else { throw .invalidShape("\(values.count) values for shape \(shape)") }
            result.withMutableBytes { raw in
                for (i, v) in values.enumerated() {
                    let bits = Float(v).bitPattern
                    // Round to nearest even on the dropped 16 bits; NaN stays NaN.
                    let rounded = Float(v).isNaN ? UInt16(0x7FC0) : UInt16(truncatingIfNeeded: (bits &+ 0x7FFF &+ ((bits >> 16) & 1)) >> 16)
                    raw.storeBytes(of: rounded, toByteOffset: i * 2, as: UInt16.self)
                }
            }
            return result
        }
        return try dispatchArithmetic(dtype, op: op, Narrow(values: values, shape: shape))
    }
}

/// A discrete Fourier transform of one length: radix-2 FFT for powers of two, a direct sum with a twiddle
/// table otherwise. `inverse` uses the positive exponent and divides by the length.
private struct Fourier {
    let length: Int
    let inverse: Bool
    let cosines: [Double]
    let sines: [Double]

    init(length: Int, inverse: Bool) {
        self.length = length
        self.inverse = inverse
        let sign: Double = inverse ? 1 : -1
        cosines = (0..<length).map { Glibc.cos(2 * Double.pi * Double($0) / Double(length)) }
        sines = (0..<length).map { sign * Glibc.sin(2 * Double.pi * Double($0) / Double(length)) }
    }

    func callAsFunction(_ re: [Double], _ im: [Double]) -> ([Double], [Double]) {
        var outRe = [Double](repeating: 0, count: length), outIm = [Double](repeating: 0, count: length)
        if length & (length - 1) == 0 {
            // Bit-reversal permutation, then iterative butterflies.
            var bits = 0
            while (1 << bits) < length { bits += 1 }
            for i in 0..<length {
                var r = 0
                for b in 0..<bits where i & (1 << b) != 0 { r |= 1 << (bits - 1 - b) }
                outRe[r] = re[i]
                outIm[r] = im[i]
            }
            var size = 2
            while size <= length {
                let half = size / 2, step = length / size
                var start = 0
                while start < length {
                    for k in 0..<half {
                        let wr = cosines[k * step], wi = sines[k * step]
                        let a = start + k, b = a + half
                        let tr = outRe[b] * wr - outIm[b] * wi, ti = outRe[b] * wi + outIm[b] * wr
                        outRe[b] = outRe[a] - tr; outIm[b] = outIm[a] - ti
                        outRe[a] += tr; outIm[a] += ti
                    }
                    start += size
                }
                size *= 2
            }
        } else {
            for k in 0..<length {
                var sr = 0.0, si = 0.0
                var t = 0
                for j in 0..<length {
                    let wr = cosines[t], wi = sines[t]
                    sr += re[j] * wr - im[j] * wi
                    si += re[j] * wi + im[j] * wr
                    t += k
                    if t >= length { t -= length }
                }
                outRe[k] = sr
                outIm[k] = si
            }
        }
        if inverse {
            let scale = 1 / Double(length)
            for k in 0..<length { outRe[k] *= scale; outIm[k] *= scale }
        }
        return (outRe, outIm)
    }
}
