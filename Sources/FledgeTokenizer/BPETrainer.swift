// BPETrainer: learns byte-level BPE merges from text, like Hugging Face's BpeTrainer. Input is streamed in
// chunks and pre-tokenized; words are counted in parallel, so memory is bounded by the word table, not the
// corpus. Merging keeps pair counts up to date incrementally (only words containing the merged pair are
// touched) and picks the most frequent pair from a max-heap with lazy invalidation. Ties go to the pair
// with the smaller ids and words are processed in sorted order: the result is the same for any thread count.

import Foundation

/// Settings of BPE training.
public struct BPETrainingConfig: Sendable {
    /// Target vocabulary size, special tokens and the 256 byte tokens included.
    public var vocabularySize: Int
    /// Pairs seen fewer times than this are never merged.
    public var minimumFrequency: Int = 2
    public var preTokenizer: PreTokenizer = .gpt2
    /// Special tokens, given ids 0, 1, … in this order (as Hugging Face does).
    public var specialTokens: [String] = ["<pad>", "<unk>", "<bos>", "<eos>"]
    /// Character-level BPE: the special token that stands for unseen characters (nil: the one whose name
    /// contains "unk", ignoring case).
    public var unknownToken: String?
    /// Worker threads for counting (default: all cores).
    public var threads: Int = ProcessInfo.processInfo.activeProcessorCount

    public init(vocabularySize: Int = BPETrainingConfig.defaultVocabularySize) { self.vocabularySize = vocabularySize }

    /// The vocabulary `fledge tokenizer train` makes for BPE unless told otherwise.
    public static let defaultVocabularySize = 8192
}

/// Progress of a training run, reported to a callback.
public enum BPETrainingProgress: Sendable {
    case counted(bytes: Int, words: Int)
    case merged(merges: Int, total: Int)
}

/// Trains byte-level BPE tokenizers.
public struct BPETrainer {
    public let config: BPETrainingConfig

    public init(config: BPETrainingConfig) { self.config = config }

    /// Trains on the text files at `urls`, streaming them.
    public func train(files urls: [URL], progress: (BPETrainingProgress) -> Void = { _ in }) throws -> BPETokenizer {
        var counts = WordCounts()
        var bytesRead = 0
        try forEachLineChunk(of: urls) { bytes in
            counts.merge(countWords(bytes))
            bytesRead += bytes.count
            progress(.counted(bytes: bytesRead, words: counts.table.count))
        }
        return try train(counts: counts, progress: progress)
    }

    /// Trains on text that `feed` hands over in chunks (each ending at a line or document boundary), for inputs
    /// that are not plain files (a Parquet column); nothing is kept but the word counts.
    public func train(
        feed: (_ emit: ([UInt8]) throws -> Void) throws -> Void, progress: (BPETrainingProgress) -> Void = { _ in }
    ) throws -> BPETokenizer {
        try withoutActuallyEscaping(progress) { progress in
            var counts = WordCounts()
            var bytesRead = 0
            try feed { bytes in
                counts.merge(countWords(bytes))
                bytesRead += bytes.count
                progress(.counted(bytes: bytesRead, words: counts.table.count))
            }
            return try train(counts: counts, progress: progress)
        }
    }

    /// Trains on in-memory texts.
    public func train(texts: [String], progress: (BPETrainingProgress) -> Void = { _ in }) throws -> BPETokenizer {
        var counts = WordCounts()
        for text in texts { counts.merge(countWords(Array(text.utf8))) }
        return try train(counts: counts, progress: progress)
    }

    func countWords(_ bytes: [UInt8]) -> WordCounts {
        FledgeTokenizer.countWords(bytes, preTokenizer: config.preTokenizer, threads: config.threads)
    }

    /// Learns merges from word counts.
    /// The index of the unknown token among `specials`: `named` exactly, else ignoring case; without a name,
    /// the first whose name contains "unk" in any case ([UNK], <unk>, <UNK>).
    public static func unknownIndex(_ named: String?, in specials: [String]) -> Int? {
        if let named {
            return specials.firstIndex(of: named) ?? specials.firstIndex { $0.lowercased() == named.lowercased() }
        }
        return specials.firstIndex { $0.lowercased().contains("unk") }
    }

    func train(counts: WordCounts, progress: (BPETrainingProgress) -> Void) throws -> BPETokenizer {
        let specials = config.specialTokens
        guard !counts.table.isEmpty else {
            throw TokenizerError("the training input contains no text", hint: "pass non-empty text files.")
        }
        let characterLevel = config.preTokenizer == .whitespace
        var alphabet = BPEAlphabet.bytes
        if characterLevel {
            guard let unknown = Self.unknownIndex(config.unknownToken, in: specials) else {
                throw TokenizerError(
                    config.unknownToken.map {
                        "the unknown token \($0.debugDescription) is not among the special tokens \(specials)"
                    }
                        ?? "character-level BPE needs an unknown token among the special tokens \(specials)",
                    hint: "add one, e.g. --special-tokens \"<pad>,<unk>,<bos>,<eos>\", or name it with --unk-token.")
            }
            alphabet = .characters(unknown: Int32(unknown))
        }
        // Ids: special tokens, then the initial alphabet in the order of its characters (as HF sorts it),
        // then one id per merge. Byte-level: the 256 bytes; character-level: every character seen.
        var tokenBytes: [[UInt8]] = specials.map { Array($0.utf8) }
        let sortedWords = counts.table.sorted { $0.key.lexicographicallyPrecedes($1.key) }
        var words: [[Int32]]
        if characterLevel {
            var characters = Set<Unicode.Scalar>()
            for word in sortedWords { characters.formUnion(String(decoding: word.key, as: UTF8.self).unicodeScalars) }
            var charID: [Unicode.Scalar: Int32] = [:]
            for scalar in characters.sorted(by: { $0.value < $1.value }) {
                charID[scalar] = Int32(tokenBytes.count)
                tokenBytes.append(Array(String(scalar).utf8))
            }
            words = sortedWords.map { String(decoding: $0.key, as: UTF8.self).unicodeScalars.map { charID[$0]! } }
        } else {
            let byteOrder = (0..<256).sorted { ByteLevel.characters[$0] < ByteLevel.characters[$1] }
            var byteID = [Int32](repeating: 0, count: 256)
            for byte in byteOrder {
                byteID[byte] = Int32(tokenBytes.count)
                tokenBytes.append([UInt8(byte)])
            }
            words = sortedWords.map { $0.key.map { byteID[Int($0)] } }
        }
        guard config.vocabularySize >= tokenBytes.count else {
            throw TokenizerError(
                "vocabulary size \(config.vocabularySize) is smaller than the \(tokenBytes.count - specials.count) \(characterLevel ? "characters" : "byte tokens") of the alphabet plus \(specials.count) special tokens",
                hint: "use --vocab-size \(tokenBytes.count) or more (typical: 4096–32000).")
        }
        let frequency: [Int] = sortedWords.map(\.value)
        var pairCounts: [UInt64: Int] = [:]
        var pairWords: [UInt64: Set<Int32>] = [:]
        for (w, word) in words.enumerated() where word.count > 1 {
            for i in 0..<word.count - 1 {
                let key = Self.key(word[i], word[i + 1])
                pairCounts[key, default: 0] += frequency[w]
                pairWords[key, default: []].insert(Int32(w))
            }
        }
        var heap = PairHeap()
        for (key, count) in pairCounts where count > 0 { heap.push(count: count, key: key) }
        var merges: [(left: Int32, right: Int32)] = []
        let wanted = config.vocabularySize - tokenBytes.count
        while merges.count < wanted, let top = heap.pop() {
            let current = pairCounts[top.key] ?? 0
            if current != top.count {
                // Stale entry: its count changed since it was pushed.
                if current > 0 { heap.push(count: current, key: top.key) }
                continue
            }
            if current < config.minimumFrequency { break }
            let (left, right) = (
                Int32(truncatingIfNeeded: top.key >> 32), Int32(truncatingIfNeeded: top.key & 0xFFFF_FFFF)
            )
            let merged = Int32(tokenBytes.count)
            tokenBytes.append(tokenBytes[Int(left)] + tokenBytes[Int(right)])
            merges.append((left, right))
            var changed = Set<UInt64>()
            for w in (pairWords[top.key] ?? []).sorted() {
                let f = frequency[Int(w)]
                var word = words[Int(w)]
                var i = 0
                while i < word.count - 1 {
                    guard word[i] == left && word[i + 1] == right else {
                        i += 1
                        continue
                    }
                    // Remove the pairs around the occurrence, merge, add the new neighbours' pairs.
                    if i > 0 { Self.adjust(&pairCounts, &changed, Self.key(word[i - 1], left), -f) }
                    if i + 2 < word.count { Self.adjust(&pairCounts, &changed, Self.key(right, word[i + 2]), -f) }
                    word[i] = merged
                    word.remove(at: i + 1)
                    if i > 0 {
                        let key = Self.key(word[i - 1], merged)
                        Self.adjust(&pairCounts, &changed, key, f)
                        pairWords[key, default: []].insert(w)
                    }
                    if i + 1 < word.count {
                        let key = Self.key(merged, word[i + 1])
                        Self.adjust(&pairCounts, &changed, key, f)
                        pairWords[key, default: []].insert(w)
                    }
                    i += 1
                }
                words[Int(w)] = word
            }
            pairCounts[top.key] = 0
            pairWords[top.key] = nil
            for key in changed.sorted() where (pairCounts[key] ?? 0) > 0 && key != top.key {
                heap.push(count: pairCounts[key]!, key: key)
            }
            if merges.count % 256 == 0 { progress(.merged(merges: merges.count, total: wanted)) }
        }
        progress(.merged(merges: merges.count, total: wanted))
        let specialTokens = SpecialTokens(specials.enumerated().map { ($0.element, Int32($0.offset)) })
        return try BPETokenizer(
            tokenBytes: tokenBytes, merges: merges, preTokenizer: config.preTokenizer, specialTokens: specialTokens,
            alphabet: alphabet)
    }

    @inline(__always) static func key(_ a: Int32, _ b: Int32) -> UInt64 { UInt64(UInt32(a)) << 32 | UInt64(UInt32(b)) }

    @inline(__always)
    static func adjust(_ counts: inout [UInt64: Int], _ changed: inout Set<UInt64>, _ key: UInt64, _ delta: Int) {
        counts[key, default: 0] += delta
        changed.insert(key)
    }
}

/// Reads text files in chunks of about 8 MB, each ending at a line break (so no word is cut in two), and
/// calls `body` with each: memory stays bounded by the chunk and what `body` keeps.
public func forEachLineChunk(of urls: [URL], _ body: ([UInt8]) throws -> Void) throws {
    for url in urls {
        guard let handle = FileHandle(forReadingAtPath: url.path) else {
            throw TokenizerError(
                "cannot read \(url.path)", hint: "check the path and permissions of the training input.")
        }
        defer { try? handle.close() }
        var carry: [UInt8] = []
        while true {
            let chunk = handle.readData(ofLength: 8 << 20)
            var bytes = carry + chunk
            carry = []
            if !chunk.isEmpty, let cut = bytes.lastIndex(of: UInt8(ascii: "\n")) {
                carry = Array(bytes[(cut + 1)...])
                bytes.removeSubrange((cut + 1)...)
            }
            if !bytes.isEmpty { try body(bytes) }
            if chunk.isEmpty { break }
        }
    }
}

/// Pre-tokenizes `bytes` on `requested` threads (split at line breaks) and counts the words.
func countWords(_ bytes: [UInt8], preTokenizer: PreTokenizer, threads requested: Int) -> WordCounts {
    let threads = max(1, min(requested, bytes.count / 65_536 + 1))
    var cuts = [0]
    for t in 1..<threads {
        var cut = max(cuts.last!, bytes.count * t / threads)
        while cut < bytes.count && bytes[cut] != UInt8(ascii: "\n") { cut += 1 }
        cuts.append(min(bytes.count, cut))
    }
    cuts.append(bytes.count)
    let parts = UnsafeMutableBufferPointer<WordCounts>.allocate(capacity: threads)
    parts.initialize(repeating: WordCounts())
    defer { parts.deinitialize().deallocate() }
    let cutPoints = cuts
    bytes.withUnsafeBufferPointer { all in
        let job = CountingJob(text: all, cuts: cutPoints, results: parts, preTokenizer: preTokenizer)
        DispatchQueue.concurrentPerform(iterations: threads) { t in job.run(t) }
    }
    var total = parts[0]
    for t in 1..<threads { total.merge(parts[t]) }
    return total
}

/// Counts the words of slice t of `text` into `results[t]`; slices are disjoint, so threads never share.
private struct CountingJob: @unchecked Sendable {
    let text: UnsafeBufferPointer<UInt8>
    let cuts: [Int]
    let results: UnsafeMutableBufferPointer<WordCounts>
    let preTokenizer: PreTokenizer

    func run(_ t: Int) {
        let slice = UnsafeBufferPointer(rebasing: text[cuts[t]..<cuts[t + 1]])
        var local = WordCounts()
        preTokenizer.split(slice) { range in local.add(UnsafeBufferPointer(rebasing: slice[range])) }
        results[t] = local
    }
}

/// Word (piece bytes) → occurrences.
struct WordCounts {
    var table: [[UInt8]: Int] = [:]

    mutating func add(_ word: UnsafeBufferPointer<UInt8>) { table[Array(word), default: 0] += 1 }

    mutating func merge(_ other: WordCounts) {
        for (word, count) in other.table { table[word, default: 0] += count }
    }
}

/// A binary max-heap of (count, pair); among equal counts the smaller pair key comes first.
struct PairHeap {
    private var items: [(count: Int, key: UInt64)] = []

    private static func above(_ a: (count: Int, key: UInt64), _ b: (count: Int, key: UInt64)) -> Bool {
        a.count != b.count ? a.count > b.count : a.key < b.key
    }

    mutating func push(count: Int, key: UInt64) {
        items.append((count, key))
        var i = items.count - 1
        while i > 0 {
            let parent = (i - 1) / 2
            guard Self.above(items[i], items[parent]) else { break }
            items.swapAt(i, parent)
            i = parent
        }
    }

    mutating func pop() -> (count: Int, key: UInt64)? {
        guard !items.isEmpty else { return nil }
        items.swapAt(0, items.count - 1)
        let top = items.removeLast()
        var i = 0
        while true {
            let (l, r) = (2 * i + 1, 2 * i + 2)
            var best = i
            if l < items.count && Self.above(items[l], items[best]) { best = l }
            if r < items.count && Self.above(items[r], items[best]) { best = r }
            if best == i { break }
            items.swapAt(i, best)
            i = best
        }
        return top
    }
}
