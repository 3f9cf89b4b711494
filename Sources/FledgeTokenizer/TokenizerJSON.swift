// TokenizerJSON: Hugging Face `tokenizer.json` for byte-level BPE (model "BPE" with a "ByteLevel"
// pre-tokenizer, or the cl100k pattern as Sequence[Split(Regex), ByteLevel(use_regex: false)]), so that HF
// `tokenizers`/`transformers` load Fledge's files and Fledge loads theirs. Format: the tokenizers library's
// serialisation (`Tokenizer.to_str()`), version "1.0". Parts Fledge cannot honour (normalizers, other
// models or pre-tokenizers) are refused with the field named, never silently ignored.

import FledgeFiles
import Foundation

/// Reading and writing Hugging Face tokenizer.json files.
public enum TokenizerJSON {
    static let cl100kPattern =
        #"'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]++[\r\n]*|\s*[\r\n]|\s+(?!\S)|\s+"#

    /// The tokenizer.json text of a byte-level BPE tokenizer.
    public static func data(for tokenizer: BPETokenizer) throws -> Data {
        var vocab: [String: Int] = [:]
        let specialIDs = Set(tokenizer.specialTokens.tokens.map(\.id))
        var unknownToken: Any = NSNull()
        var spell: ([UInt8]) -> String = ByteLevel.encode
        if case .characters(let unknown) = tokenizer.alphabet {
            // Character-level vocabularies are written as plain strings.
            spell = { String(decoding: $0, as: UTF8.self) }
            unknownToken = String(decoding: tokenizer.tokenBytes[Int(unknown)], as: UTF8.self)
        }
        for (id, bytes) in tokenizer.tokenBytes.enumerated() {
            vocab[specialIDs.contains(Int32(id)) ? String(decoding: bytes, as: UTF8.self) : spell(bytes)] = id
        }
        let merges = tokenizer.merges.map {
            [spell(tokenizer.tokenBytes[Int($0.left)]), spell(tokenizer.tokenBytes[Int($0.right)])]
        }
        let addedTokens: [[String: Any]] = tokenizer.specialTokens.tokens.sorted { $0.id < $1.id }.map {
            [
                "id": Int($0.id), "content": $0.text, "single_word": false, "lstrip": false, "rstrip": false,
                "normalized": false, "special": true,
            ]
        }
        let byteLevel: [String: Any] = [
            "type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true,
        ]
        let preTokenizer: Any
        switch tokenizer.preTokenizer {
        case .gpt2:
            preTokenizer = byteLevel
        case .cl100k:
            preTokenizer = [
                "type": "Sequence",
                "pretokenizers": [
                    ["type": "Split", "pattern": ["Regex": cl100kPattern], "behavior": "Isolated", "invert": false],
                    ["type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": false],
                ],
            ]
        case .whitespace:
            guard case .characters = tokenizer.alphabet else {
                throw TokenizerError(
                    "a byte-level BPE tokenizer with the whitespace pre-tokenizer has no tokenizer.json form",
                    hint: "use the gpt2 or cl100k pre-tokenizer for byte-level BPE.")
            }
            preTokenizer = ["type": "Whitespace"]
        }
        let byteLevelDecoder: [String: Any] = [
            "type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true,
        ]
        let decoder: Any = tokenizer.alphabet == .bytes ? byteLevelDecoder : NSNull()
        let object: [String: Any] = [
            "version": "1.0", "truncation": NSNull(), "padding": NSNull(), "added_tokens": addedTokens,
            "normalizer": NSNull(), "pre_tokenizer": preTokenizer, "post_processor": NSNull(),
            "decoder": decoder,
            "model": [
                "type": "BPE", "dropout": NSNull(), "unk_token": unknownToken, "continuing_subword_prefix": NSNull(),
                "end_of_word_suffix": NSNull(), "fuse_unk": false, "byte_fallback": false, "ignore_merges": false,
                "vocab": vocab, "merges": merges,
            ],
        ]
        return try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .prettyPrinted])
    }

    /// Loads a byte-level BPE tokenizer.json.
    public static func load(_ url: URL) throws -> BPETokenizer {
        try load(try readFile(url.path), path: url.path)
    }

    /// Parses tokenizer.json `data` (`path` names it in errors).
    public static func load(_ data: Data, path: String) throws -> BPETokenizer {
        func fail(_ field: String, _ problem: String, _ hint: String) -> TokenizerError {
            TokenizerError("\(path): field '\(field)' \(problem)", hint: hint)
        }
        guard let root = try? JSONSerialization.jsonObject(with: escapingByteOrderMarks(data)) as? [String: Any] else {
            throw TokenizerError("\(path) is not a JSON object", hint: "pass a Hugging Face tokenizer.json file.")
        }
        guard let model = root["model"] as? [String: Any] else {
            throw fail(
                "model", "is missing", "pass a complete tokenizer.json (as written by tokenizers' Tokenizer.save).")
        }
        let type = model["type"] as? String ?? "BPE"
        guard type == "BPE" else {
            throw fail(
                "model.type", "is \(type.debugDescription), which this loader does not support",
                "use a BPE tokenizer.json (WordLevel files load with WordLevelTokenizer).")
        }
        if let normalizer = root["normalizer"] as? [String: Any] {
            throw fail(
                "normalizer",
                "is \((normalizer["type"] as? String ?? "?").debugDescription); Fledge applies no normalizers",
                "normalise text before tokenizing and remove the normalizer, or use a tokenizer without one.")
        }
        let preTokenizer = try preTokenizerKind(root["pre_tokenizer"], fail: fail)
        guard let vocab = model["vocab"] as? [String: Int] else {
            throw fail("model.vocab", "is missing or not an object of token → id", "pass a BPE tokenizer.json.")
        }
        let (specials, specialTexts) = try addedTokens(root, vocabularyCount: vocab.count, fail: fail)
        let size = try checkedSize(vocab: vocab, specials: specialTexts, fail: fail)
        var tokenBytes = [[UInt8]?](repeating: nil, count: size)
        let characterLevel = preTokenizer == .whitespace
        for (token, id) in vocab {
            guard id >= 0 else {
                throw fail("model.vocab", "has a negative id for \(token.debugDescription)", "ids start at 0.")
            }
            if let special = specialTexts[id], special != token {
                let index = specials.firstIndex { Int($0.id) == id }!
                throw fail(
                    "added_tokens[\(index)]",
                    "gives id \(id) to \(special.debugDescription), but model.vocab has \(token.debugDescription) at that id",
                    "an added token must take a free id, or the id of the same text in the vocabulary.")
            }
            if characterLevel {
                tokenBytes[id] = Array(token.utf8)
            } else if let special = specialTexts[id] {
                tokenBytes[id] = Array(special.utf8)
            } else if let bytes = ByteLevel.decode(token) {
                tokenBytes[id] = bytes
            } else {
                throw fail(
                    "model.vocab", "has token \(token.debugDescription) outside the byte-level alphabet",
                    "this loader reads byte-level BPE vocabularies (GPT-2 style).")
            }
        }
        for (id, text) in specialTexts where tokenBytes[id] == nil { tokenBytes[id] = Array(text.utf8) }
        var alphabet = BPEAlphabet.bytes
        if characterLevel {
            guard let unknown = model["unk_token"] as? String, let id = vocab[unknown] else {
                throw fail(
                    "model.unk_token", "is missing or not in the vocabulary",
                    "a BPE tokenizer with the Whitespace pre-tokenizer needs an unk_token (e.g. \"[UNK]\").")
            }
            alphabet = .characters(unknown: Int32(id))
        }
        guard let missing = tokenBytes.firstIndex(where: { $0 == nil }) else {
            return try build(
                tokenBytes.map { $0! }, vocab: vocab, model: model, preTokenizer: preTokenizer, specials: specials,
                alphabet: alphabet, fail: fail)
        }
        throw fail(
            "model.vocab", "has no token with id \(missing) (ids must be 0..<\(size) without gaps)",
            "the file is damaged; re-save it with tokenizers.")
    }

    /// The `added_tokens` entries (special tokens), each checked: an object with an integer id in range and a
    /// non-empty content, no id or content twice. A malformed entry is an error, never silently dropped.
    static func addedTokens(
        _ root: [String: Any], vocabularyCount: Int, fail: (String, String, String) -> TokenizerError
    ) throws -> (specials: [(text: String, id: Int32)], texts: [Int: String]) {
        guard let value = root["added_tokens"], !(value is NSNull) else { return ([], [:]) }
        guard let entries = value as? [Any] else {
            throw fail(
                "added_tokens", "is not a list", "write added_tokens as a list of {\"id\", \"content\"} objects.")
        }
        var specials: [(text: String, id: Int32)] = []
        var texts: [Int: String] = [:]
        let limit = vocabularyCount + entries.count
        for (index, entry) in entries.enumerated() {
            guard let object = entry as? [String: Any], let id = JSONNumber.exactInteger(object["id"]),
                let content = object["content"] as? String, !content.isEmpty
            else {
                throw fail(
                    "added_tokens[\(index)]", "lacks an integer id or a non-empty content",
                    "each added token needs \"id\" (an integer) and \"content\" (its text).")
            }
            guard id >= 0, id < limit else {
                throw fail(
                    "added_tokens[\(index)].id", "is \(id), outside 0..<\(limit) (the vocabulary and added tokens)",
                    "ids must run from 0 without gaps.")
            }
            if let other = texts[id], other != content {
                throw fail(
                    "added_tokens[\(index)]",
                    "gives id \(id) to \(content.debugDescription), which \(other.debugDescription) already has",
                    "each added token needs its own id.")
            }
            if let twice = specials.first(where: { $0.text == content && Int($0.id) != id }) {
                throw fail(
                    "added_tokens[\(index)]", "repeats \(content.debugDescription) (already id \(twice.id))",
                    "list each special token once.")
            }
            specials.append((content, Int32(id)))
            texts[id] = content
        }
        return (specials, texts)
    }

    /// The vocabulary size the ids imply, checked against the number of entries before anything is allocated
    /// (an id of 2^62 must not size an array).
    static func checkedSize(
        vocab: [String: Int], specials: [Int: String], fail: (String, String, String) -> TokenizerError
    ) throws -> Int {
        let entries = vocab.count + specials.count
        let largest = max(vocab.values.max() ?? -1, specials.keys.max() ?? -1)
        guard largest < min(entries, TokenizerLimits.maximumVocabulary) else {
            let token = vocab.first { $0.value == largest }?.key ?? specials[largest] ?? "?"
            throw fail(
                "model.vocab",
                "gives \(token.debugDescription) the id \(largest), but the file has only \(entries) tokens",
                "ids must run from 0 without gaps; the file is damaged or not a tokenizer.json.")
        }
        return largest + 1
    }

    private static func build(
        _ tokenBytes: [[UInt8]], vocab: [String: Int], model: [String: Any], preTokenizer: PreTokenizer,
        specials: [(text: String, id: Int32)], alphabet: BPEAlphabet, fail: (String, String, String) -> TokenizerError
    ) throws -> BPETokenizer {
        guard let mergeList = model["merges"] as? [Any] else {
            throw fail(
                "model.merges", "is missing or not a list",
                "a BPE tokenizer.json lists its merges (an empty list for a vocabulary without merges).")
        }
        var merges: [(left: Int32, right: Int32)] = []
        for (index, entry) in mergeList.enumerated() {
            let pair: [String]
            if let text = entry as? String {
                pair = text.split(separator: " ", omittingEmptySubsequences: false).map(String.init)
            } else {
                pair = entry as? [String] ?? []
            }
            guard pair.count == 2, let left = vocab[pair[0]], let right = vocab[pair[1]] else {
                throw fail(
                    "model.merges[\(index)]", "is not a pair of tokens in the vocabulary",
                    "the merges and vocabulary do not belong together.")
            }
            merges.append((Int32(left), Int32(right)))
        }
        do {
            return try BPETokenizer(
                tokenBytes: tokenBytes, merges: merges, preTokenizer: preTokenizer,
                specialTokens: SpecialTokens(specials), alphabet: alphabet)
        } catch let error as TokenizerError {
            throw fail("model", "is inconsistent: \(error.message)", error.hint)
        }
    }

    private static func preTokenizerKind(_ value: Any?, fail: (String, String, String) -> TokenizerError) throws
        -> PreTokenizer
    {
        guard let object = value as? [String: Any], let type = object["type"] as? String else {
            throw fail("pre_tokenizer", "is missing", "byte-level BPE needs a ByteLevel pre-tokenizer.")
        }
        if type == "ByteLevel" {
            guard (object["use_regex"] as? Bool) ?? true else {
                throw fail(
                    "pre_tokenizer.use_regex", "is false with no Split before it",
                    "use the ByteLevel pre-tokenizer with use_regex: true.")
            }
            if (object["add_prefix_space"] as? Bool) == true {
                throw fail(
                    "pre_tokenizer.add_prefix_space", "is true; Fledge does not add a prefix space",
                    "set add_prefix_space to false.")
            }
            return .gpt2
        }
        if type == "Sequence", let parts = object["pretokenizers"] as? [[String: Any]], parts.count == 2,
            parts[0]["type"] as? String == "Split",
            (parts[0]["pattern"] as? [String: String])?["Regex"] == cl100kPattern,
            parts[1]["type"] as? String == "ByteLevel"
        {
            return .cl100k
        }
        if type == "Whitespace" { return .whitespace }
        throw fail(
            "pre_tokenizer", "is \(type.debugDescription), which Fledge does not implement",
            "use ByteLevel (GPT-2 pattern) or the cl100k Split + ByteLevel sequence.")
    }

    /// `data` with a leading byte-order mark removed and every other raw U+FEFF (which can only stand inside
    /// a string) written as the escape `\ufeff`: Foundation's JSONSerialization drops raw U+FEFF from string
    /// values, which would lose a vocabulary entry (texts with a BOM make one).
    static func escapingByteOrderMarks(_ data: Data) -> Data {
        let bom: [UInt8] = [0xEF, 0xBB, 0xBF]
        var bytes = [UInt8](data)
        if bytes.starts(with: bom) { bytes.removeFirst(3) }
        guard bytes.count >= 3 else { return Data(bytes) }
        var output: [UInt8] = []
        output.reserveCapacity(bytes.count)
        var i = 0
        while i < bytes.count {
            if i + 2 < bytes.count && bytes[i] == 0xEF && bytes[i + 1] == 0xBB && bytes[i + 2] == 0xBF {
                output.append(contentsOf: Array("\\ufeff".utf8))
                i += 3
            } else {
                output.append(bytes[i])
                i += 1
            }
        }
        return Data(output)
    }
}
