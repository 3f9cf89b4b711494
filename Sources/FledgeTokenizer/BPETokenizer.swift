// BPETokenizer: byte-level BPE as in GPT-2 (Sennrich et al. 2016; Radford et al. 2019). Text is cut by a
// PreTokenizer, each piece's UTF-8 bytes start as byte tokens, and the ranked merges are applied lowest rank
// first until none applies. Any input, invalid UTF-8 included, encodes and decodes back exactly.
// Not here: training (BPETrainer.swift), files (BPETokenizer+Files.swift), special tokens (SpecialTokens.swift).

#if canImport(Glibc)
    import Glibc
#endif

/// What the merges start from: the 256 bytes (byte-level BPE, GPT-2), or the characters seen in training
/// with an unknown token for the rest (Hugging Face's plain BPE with a Whitespace pre-tokenizer).
public enum BPEAlphabet: Sendable, Equatable {
    case bytes
    case characters(unknown: Int32)
}

/// A BPE tokenizer: vocabulary (id ↔ bytes), ranked merges, a pre-tokenizer, special tokens.
public final class BPETokenizer: @unchecked Sendable {
    /// Bytes of every token id (special tokens hold their text's UTF-8).
    public let tokenBytes: [[UInt8]]
    /// Ranked merges: merges[rank] = (left, right) ids; their result is `mergedID[rank]`.
    public let merges: [(left: Int32, right: Int32)]
    public let preTokenizer: PreTokenizer
    public let specialTokens: SpecialTokens
    public let alphabet: BPEAlphabet

    /// (left << 32 | right) → (rank << 32 | merged id).
    let mergeTable: [UInt64: UInt64]
    /// Id of each single byte (character mode: of each ASCII character, else the unknown id).
    let byteTokens: [Int32]
    let idsByBytes: [[UInt8]: Int32]

    /// Number of ids, special tokens included.
    public var vocabularySize: Int { tokenBytes.count }

    /// Builds a tokenizer from token byte strings and ranked merges (by id). Every byte value must have a
    /// token, and every merge's result must be in the vocabulary.
    public init(
        tokenBytes: [[UInt8]], merges: [(left: Int32, right: Int32)], preTokenizer: PreTokenizer,
        specialTokens: SpecialTokens = SpecialTokens(), alphabet: BPEAlphabet = .bytes
    ) throws {
        var ids: [[UInt8]: Int32] = [:]
        for (id, bytes) in tokenBytes.enumerated() where ids[bytes] == nil { ids[bytes] = Int32(id) }
        var byteTokens = [Int32](repeating: -1, count: 256)
        for byte in 0..<256 {
            if case .characters(let unknown) = alphabet {
                guard unknown >= 0, Int(unknown) < tokenBytes.count else {
                    throw TokenizerError(
                        "the unknown token id \(unknown) is outside the vocabulary",
                        hint: "set unk_token to a token of the vocabulary.")
                }
                byteTokens[byte] = byte < 0x80 ? ids[[UInt8(byte)]] ?? unknown : unknown
                continue
            }
            guard let id = ids[[UInt8(byte)]] else {
                throw TokenizerError(
                    "the vocabulary has no token for byte 0x\(String(byte, radix: 16))",
                    hint: "a byte-level BPE vocabulary must contain all 256 single bytes.")
            }
            byteTokens[byte] = id
        }
        var table: [UInt64: UInt64] = [:]
        table.reserveCapacity(merges.count)
        for (rank, merge) in merges.enumerated() {
            guard merge.left >= 0, merge.right >= 0, Int(merge.left) < tokenBytes.count,
                Int(merge.right) < tokenBytes.count,
                let merged = ids[tokenBytes[Int(merge.left)] + tokenBytes[Int(merge.right)]]
            else {
                throw TokenizerError(
                    "merge \(rank) (\(merge.left), \(merge.right)) produces a token that is not in the vocabulary",
                    hint: "the merges and the vocabulary come from different tokenizers.")
            }
            let key = UInt64(UInt32(merge.left)) << 32 | UInt64(UInt32(merge.right))
            if table[key] == nil { table[key] = UInt64(rank) << 32 | UInt64(UInt32(merged)) }
        }
        self.tokenBytes = tokenBytes
        self.merges = merges
        self.preTokenizer = preTokenizer
        self.specialTokens = specialTokens
        self.alphabet = alphabet
        self.mergeTable = table
        self.byteTokens = byteTokens
        self.idsByBytes = ids
    }

    /// Appends the BPE ids of one piece (no special tokens inside) to `output`.
    func encodePiece(_ piece: UnsafeBufferPointer<UInt8>, into output: inout [Int32], scratch: inout [Int32]) {
        scratch.removeAll(keepingCapacity: true)
        switch alphabet {
        case .bytes:
            for byte in piece { scratch.append(byteTokens[Int(byte)]) }
        case .characters(let unknown):
            // One token per character: its id if the vocabulary has it, else the unknown token.
            var i = 0
            while i < piece.count {
                let lead = piece[i]
                let length = lead < 0x80 ? 1 : lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : lead >= 0xC0 ? 2 : 1
                let end = min(piece.count, i + length)
                scratch.append(length == 1 ? byteTokens[Int(lead)] : idsByBytes[Array(piece[i..<end])] ?? unknown)
                i = end
            }
        }
        // Repeatedly merge the lowest-ranked adjacent pair, left to right among equals.
        while scratch.count > 1 {
            var bestRank = UInt64.max
            var bestIndex = -1
            var bestID: Int32 = 0
            for i in 0..<scratch.count - 1 {
                let key = UInt64(UInt32(scratch[i])) << 32 | UInt64(UInt32(scratch[i + 1]))
                if let value = mergeTable[key], value >> 32 < bestRank {
                    bestRank = value >> 32
                    bestIndex = i
                    bestID = Int32(truncatingIfNeeded: value & 0xFFFF_FFFF)
                }
            }
            if bestIndex < 0 { break }
            // Merge every non-overlapping occurrence of this pair (they share the rank).
            let (left, right) = (scratch[bestIndex], scratch[bestIndex + 1])
            var write = bestIndex
            var read = bestIndex
            while read < scratch.count {
                if read + 1 < scratch.count && scratch[read] == left && scratch[read + 1] == right {
                    scratch[write] = bestID
                    read += 2
                } else {
                    scratch[write] = scratch[read]
                    read += 1
                }
                write += 1
            }
            scratch.removeLast(scratch.count - write)
        }
        output.append(contentsOf: scratch)
    }

    /// Token ids of `text`. Special-token strings in the text are ordinary text unless `allowSpecial` is true.
    public func encode(_ text: String, allowSpecial: Bool = false) -> [Int32] {
        var cache = MergeCache()
        return encode(text, allowSpecial: allowSpecial, cache: &cache)
    }

    /// Token ids of `text`, reusing `cache` for pieces seen before.
    public func encode(_ text: String, allowSpecial: Bool = false, cache: inout MergeCache) -> [Int32] {
        encode(bytes: Array(text.utf8), allowSpecial: allowSpecial, cache: &cache)
    }

    /// Token ids of arbitrary bytes (invalid UTF-8 included); `decodeBytes` gives the same bytes back.
    public func encode(bytes: [UInt8], allowSpecial: Bool = false) -> [Int32] {
        var cache = MergeCache()
        return encode(bytes: bytes, allowSpecial: allowSpecial, cache: &cache)
    }

    /// Token ids of arbitrary bytes, reusing `cache`.
    public func encode(bytes: [UInt8], allowSpecial: Bool = false, cache: inout MergeCache) -> [Int32] {
        var output: [Int32] = []
        output.reserveCapacity(bytes.count / 3 + 1)
        bytes.withUnsafeBufferPointer { all in
            specialTokens.encode(all, allowSpecial: allowSpecial, into: &output) { text, output in
                preTokenizer.split(text) { range in
                    cache.encode(UnsafeBufferPointer(rebasing: text[range]), tokenizer: self, into: &output)
                }
            }
        }
        return output
    }

    /// The bytes of `ids` joined (character mode: tokens joined by spaces, as HF decodes a BPE model without
    /// a decoder). Throws for an id outside the vocabulary.
    public func decodeBytes(_ ids: [Int32]) throws -> [UInt8] {
        var bytes: [UInt8] = []
        for (position, id) in ids.enumerated() {
            if case .characters = alphabet, position > 0 { bytes.append(0x20) }
            guard id >= 0, Int(id) < tokenBytes.count else {
                throw TokenizerError(
                    "token id \(id) at position \(position) is outside the vocabulary (0..<\(tokenBytes.count))",
                    hint: "decode ids produced by this tokenizer (or a model trained with it).")
            }
            bytes.append(contentsOf: tokenBytes[Int(id)])
        }
        return bytes
    }

    /// The text of `ids` (invalid UTF-8 becomes U+FFFD; use `decodeBytes` for the exact bytes).
    public func decode(_ ids: [Int32]) throws -> String { String(decoding: try decodeBytes(ids), as: UTF8.self) }
}

/// Remembers the ids of pieces already encoded (words repeat: the cache skips most merging).
public struct MergeCache {
    /// An open-addressing table of entry numbers + 1 (0: empty), twice `capacity` slots rounded to a power of
    /// two; each entry's hash, and its key bytes and ids in two arenas (entry e's run ends at `keyEnds[e]` /
    /// `idEnds[e]`, and starts where entry e − 1's ends). A lookup hashes the piece in place: no allocation,
    /// no SipHash (a Dictionary keyed by byte arrays spent most of its time on both).
    private var slots: [Int32] = []
    private var hashes: [UInt64] = []
    private var keyEnds: [Int32] = []
    private var keyBytes: [UInt8] = []
    private var idEnds: [Int32] = []
    private var ids: [Int32] = []
    var scratch: [Int32] = []
    /// Most entries kept; the cache is cleared when it fills.
    public var capacity = 200_000
    /// Longer pieces are encoded every time (they rarely repeat and would crowd the arenas).
    static let longestCached = 256

    public init() {}

    /// Entries held.
    public var count: Int { hashes.count }

    private mutating func clear() {
        let size = max(16, 1 << (Int.bitWidth - (2 * max(1, capacity) - 1).leadingZeroBitCount))
        if slots.count == size {
            slots.withUnsafeMutableBufferPointer { $0.update(repeating: 0) }
        } else {
            slots = [Int32](repeating: 0, count: size)
        }
        hashes.removeAll(keepingCapacity: true)
        keyEnds.removeAll(keepingCapacity: true)
        keyBytes.removeAll(keepingCapacity: true)
        idEnds.removeAll(keepingCapacity: true)
        ids.removeAll(keepingCapacity: true)
    }

    /// A 64-bit hash of the bytes: 8-byte words folded by multiply-rotate, then a finaliser (murmur3's fmix64).
    @inline(__always) static func hash(_ bytes: UnsafeBufferPointer<UInt8>) -> UInt64 {
        var h: UInt64 = 0x9E37_79B9_7F4A_7C15 ^ UInt64(bytes.count)
        let raw = UnsafeRawPointer(bytes.baseAddress!)
        var i = 0
        while i + 8 <= bytes.count {
            let word = raw.loadUnaligned(fromByteOffset: i, as: UInt64.self)
            h = ((h ^ word) &* 0x87C3_7B91_1142_53D5)
            h = (h << 31) | (h >> 33)
            i += 8
        }
        var tail: UInt64 = 0
        var shift: UInt64 = 0
        while i < bytes.count {
            tail |= UInt64(bytes[i]) << shift
            shift += 8
            i += 1
        }
        h = (h ^ tail) &* 0x4CF5_AD43_2745_937F
        h ^= h >> 33
        h &*= 0xFF51_AFD7_ED55_8CCD
        h ^= h >> 33
        h &*= 0xC4CE_B9FE_1A85_EC53
        return h ^ (h >> 33)
    }

    mutating func encode(_ piece: UnsafeBufferPointer<UInt8>, tokenizer: BPETokenizer, into output: inout [Int32]) {
        if piece.count == 1 {
            output.append(tokenizer.byteTokens[Int(piece[0])])
            return
        }
        guard piece.count <= MergeCache.longestCached else {
            tokenizer.encodePiece(piece, into: &output, scratch: &scratch)
            return
        }
        if slots.isEmpty || hashes.count >= capacity { clear() }
        let hash = MergeCache.hash(piece)
        let mask = slots.count - 1
        var slot = Int(truncatingIfNeeded: hash) & mask
        while true {
            let entry = Int(slots[slot]) - 1
            if entry < 0 { break }
            if hashes[entry] == hash {
                let keyStart = entry == 0 ? 0 : Int(keyEnds[entry - 1])
                let keyEnd = Int(keyEnds[entry])
                let same =
                    keyEnd - keyStart == piece.count
                    && keyBytes.withUnsafeBufferPointer {
                        memcmp($0.baseAddress! + keyStart, piece.baseAddress!, piece.count) == 0
                    }
                if same {
                    let idStart = entry == 0 ? 0 : Int(idEnds[entry - 1])
                    output.append(contentsOf: ids[idStart..<Int(idEnds[entry])])
                    return
                }
            }
            slot = (slot + 1) & mask
        }
        let start = output.count
        tokenizer.encodePiece(piece, into: &output, scratch: &scratch)
        hashes.append(hash)
        keyBytes.append(contentsOf: piece)
        keyEnds.append(Int32(keyBytes.count))
        ids.append(contentsOf: output[start...])
        idEnds.append(Int32(ids.count))
        slots[slot] = Int32(hashes.count)
    }
}
