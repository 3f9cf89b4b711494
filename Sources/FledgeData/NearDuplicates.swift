// NearDuplicates: MinHash signatures over word shingles and locality-sensitive hashing in bands, to find
// documents whose shingle sets overlap by a Jaccard similarity at or above a threshold (Broder 1997; Leskovec,
// Rajaraman & Ullman, "Mining of Massive Datasets", ch. 3). Candidates from LSH are confirmed by the
// signatures' estimated Jaccard, so a pair below the threshold is never removed because of a band collision.

import Foundation

/// MinHash + LSH settings.
public struct NearDuplicateConfig: Codable, Sendable, Equatable {
    /// Jaccard similarity of word-shingle sets at or above which two documents are near duplicates.
    public var threshold = 0.8
    /// Words per shingle.
    public var shingleWords = 5
    /// Hash functions in a signature.
    public var permutations = 128
    public var seed: UInt64 = 1

    public init() {}

    /// Bands × rows for LSH: the split of `permutations` that minimises false positives + false negatives
    /// around `threshold` (the probability that a pair of similarity s shares a band is 1 − (1 − s^r)^b).
    public var banding: (bands: Int, rows: Int) {
        func integral(_ f: (Double) -> Double, _ a: Double, _ b: Double) -> Double {
            let steps = 200
            let h = (b - a) / Double(steps)
            return (0..<steps).reduce(0) { $0 + f(a + (Double($1) + 0.5) * h) * h }
        }
        var best = (bands: 1, rows: permutations, error: Double.infinity)
        for bands in 1...permutations {
            let rows = permutations / bands
            let collide = { (s: Double) in 1 - pow(1 - pow(s, Double(rows)), Double(bands)) }
            let falsePositive = integral(collide, 0, threshold)
            let falseNegative = integral({ 1 - collide($0) }, threshold, 1)
            if falsePositive + falseNegative < best.error { best = (bands, rows, falsePositive + falseNegative) }
        }
        return (best.bands, best.rows)
    }
}

/// MinHash signatures of documents.
public struct MinHasher: Sendable {
    public let config: NearDuplicateConfig
    private let multipliers: [UInt64]
    private let offsets: [UInt64]

    public init(_ config: NearDuplicateConfig) {
        self.config = config
        var random = SplitMix64(seed: config.seed)
        multipliers = (0..<config.permutations).map { _ in random.next() | 1 }
        offsets = (0..<config.permutations).map { _ in random.next() }
    }

    /// The hashes of the document's word shingles: words are runs of letters and digits (ASCII lower-cased;
    /// any non-ASCII byte counts as a letter), so case and punctuation do not make documents differ.
    public func shingles(_ text: [UInt8]) -> [UInt64] {
        var words: [UInt64] = []
        var hash: UInt64 = 0xCBF2_9CE4_8422_2325
        var inWord = false
        for byte in text {
            let lower = byte | 0x20
            let isWordByte = byte >= 0x80 || (lower >= 0x61 && lower <= 0x7A) || (byte >= 0x30 && byte <= 0x39)
            if isWordByte {
                hash = (hash ^ UInt64(byte < 0x80 && byte >= 0x41 ? lower : byte)) &* 0x100_0000_01B3  // FNV-1a
                inWord = true
            } else if inWord {
                words.append(hash)
                hash = 0xCBF2_9CE4_8422_2325
                inWord = false
            }
        }
        if inWord { words.append(hash) }
        let n = min(config.shingleWords, words.count)
        guard n > 0 else { return [] }
        var result: [UInt64] = []
        result.reserveCapacity(words.count - n + 1)
        for start in 0...(words.count - n) {
            var h: UInt64 = 0x2545_F491_4F6C_DD1D
            for k in start..<start + n { h = ContentHash.finalize(h ^ words[k]) &+ 0x9E37_79B9 }
            result.append(h)
        }
        return result
    }

    /// Writes the signature of `text` (one minimum per hash function) to `signature`; false when the text has
    /// no words (it then has no signature).
    public func signature(of text: [UInt8], into signature: UnsafeMutableBufferPointer<UInt32>) -> Bool {
        let shingles = shingles(text)
        guard !shingles.isEmpty else { return false }
        signature.update(repeating: UInt32.max)
        // h_i(x) = a_i·x + b_i (mod 2^64) for half the permutations; its top and bottom 32 bits are two hash
        // values (multiply-shift hashing; x is already a well-mixed 64-bit shingle hash). 8 lanes at a time.
        let half = config.permutations / 2
        let lanes = half / 8 * 8
        multipliers.withUnsafeBufferPointer { a in
            offsets.withUnsafeBufferPointer { b in
                let a8 = UnsafeRawPointer(a.baseAddress!)
                let b8 = UnsafeRawPointer(b.baseAddress!)
                let out = UnsafeMutableRawPointer(signature.baseAddress!)
                for shingle in shingles {
                    let x = SIMD8<UInt64>(repeating: shingle)
                    for i in stride(from: 0, to: lanes, by: 8) {
                        let v =
                            a8.loadUnaligned(fromByteOffset: 8 * i, as: SIMD8<UInt64>.self) &* x
                            &+ b8.loadUnaligned(fromByteOffset: 8 * i, as: SIMD8<UInt64>.self)
                        let top = SIMD8<UInt32>(truncatingIfNeeded: v &>> 32)
                        let bottom = SIMD8<UInt32>(truncatingIfNeeded: v)
                        let oldTop = out.loadUnaligned(fromByteOffset: 4 * i, as: SIMD8<UInt32>.self)
                        let oldBottom = out.loadUnaligned(fromByteOffset: 4 * (half + i), as: SIMD8<UInt32>.self)
                        out.storeBytes(of: pointwiseMin(oldTop, top), toByteOffset: 4 * i, as: SIMD8<UInt32>.self)
                        out.storeBytes(
                            of: pointwiseMin(oldBottom, bottom), toByteOffset: 4 * (half + i), as: SIMD8<UInt32>.self)
                    }
                    for i in lanes..<half {
                        let value = a[i] &* shingle &+ b[i]
                        signature[i] = min(signature[i], UInt32(truncatingIfNeeded: value >> 32))
                        signature[half + i] = min(signature[half + i], UInt32(truncatingIfNeeded: value))
                    }
                    if config.permutations % 2 == 1 {  // an odd count: the last one from its own product
                        let last = config.permutations - 1
                        let value = a[last] &* shingle &+ b[last]
                        signature[last] = min(signature[last], UInt32(truncatingIfNeeded: value >> 32))
                    }
                }
            }
        }
        return true
    }
}

/// Finds near duplicates among documents in order, keeping the first of each group.
public struct NearDuplicateIndex {
    public let config: NearDuplicateConfig
    private let bands: Int
    private let rows: Int
    /// Band key → the first kept document with that band (later ones with the same key are compared to it).
    private var buckets: [UInt64: Int32] = [:]

    public init(_ config: NearDuplicateConfig, capacity: Int = 0) {
        self.config = config
        (bands, rows) = config.banding
        buckets.reserveCapacity(capacity * bands)
    }

    /// The estimated Jaccard similarity of two signatures (the share of equal minima).
    public static func similarity(_ a: UnsafeBufferPointer<UInt32>, _ b: UnsafeBufferPointer<UInt32>) -> Double {
        var equal = 0
        for i in 0..<a.count where a[i] == b[i] { equal += 1 }
        return Double(equal) / Double(a.count)
    }

    /// Checks document `id` (its signature `signature`) against the kept documents: returns the kept document
    /// it nearly duplicates, or nil after adding it to the index as kept. `candidate(other, buffer)` writes the
    /// signature of an earlier kept document to `buffer` (the index keeps band keys only, so that its memory
    /// stays small per document; the signatures may live on disk).
    public mutating func check(
        _ signature: UnsafeBufferPointer<UInt32>, id: Int,
        candidate: (Int, UnsafeMutableBufferPointer<UInt32>) throws -> Void
    ) rethrows -> Int? {
        let width = config.permutations
        return try withUnsafeTemporaryAllocation(of: UInt64.self, capacity: bands) { keys in
            try withUnsafeTemporaryAllocation(of: UInt32.self, capacity: width) { other in
                for band in 0..<bands {
                    keys[band] = bandKey(signature, band)
                    if let kept = buckets[keys[band]] {
                        try candidate(Int(kept), other)
                        if NearDuplicateIndex.similarity(signature, UnsafeBufferPointer(other)) >= config.threshold {
                            return Int(kept)
                        }
                    }
                }
                for key in keys where buckets[key] == nil { buckets[key] = Int32(id) }
                return nil
            }
        }
    }

    /// Adds kept document `id` without comparing (to rebuild an index from the signatures of kept documents).
    public mutating func insert(_ signature: UnsafeBufferPointer<UInt32>, id: Int) {
        for band in 0..<bands {
            let key = bandKey(signature, band)
            if buckets[key] == nil { buckets[key] = Int32(id) }
        }
    }

    private func bandKey(_ signature: UnsafeBufferPointer<UInt32>, _ band: Int) -> UInt64 {
        var key = UInt64(band) &* 0x9E37_79B9_7F4A_7C15
        for r in 0..<rows { key = ContentHash.finalize(key ^ UInt64(signature[band * rows + r])) }
        return key
    }
}
