// WordLevelTokenizer: one id per word — the most frequent words of the training text, an unknown-word token
// for the rest, optional lower-casing, punctuation split off as its own token (the `whitespace`
// pre-tokenizer: \w+|[^\w\s]+). Hugging Face's WordLevel model with the Whitespace pre-tokenizer and an
// optional Lowercase normalizer; decoding joins words with spaces, as HF does.

import Foundation

/// A word-level tokenizer.
public final class WordLevelTokenizer: @unchecked Sendable {
    /// The vocabulary `fledge tokenizer train --kind word` makes unless told otherwise.
    public static let defaultVocabularySize = 30_000

    /// The word of every id.
    public let words: [String]
    public let unknownToken: String
    public let lowercase: Bool
    public let specialTokens: SpecialTokens
    let ids: [String: Int32]
    let unknownID: Int32

    /// Builds a tokenizer from its word list; `unknownToken` must be one of the words.
    public init(words: [String], unknownToken: String, lowercase: Bool, specialTokens: SpecialTokens) throws {
        var ids: [String: Int32] = [:]
        for (id, word) in words.enumerated() where ids[word] == nil { ids[word] = Int32(id) }
        guard let unknownID = ids[unknownToken] else {
            throw TokenizerError(
                "the unknown-word token \(unknownToken.debugDescription) is not in the vocabulary",
                hint: "include it in the special tokens (e.g. <unk>).")
        }
        self.words = words
        self.unknownToken = unknownToken
        self.lowercase = lowercase
        self.specialTokens = specialTokens
        self.ids = ids
        self.unknownID = unknownID
    }

    public var vocabularySize: Int { words.count }

    /// The ids of `text`; words outside the vocabulary become the unknown token.
    public func encode(_ text: String, allowSpecial: Bool = false) -> [Int32] {
        let bytes = Array(text.utf8)
        var output: [Int32] = []
        bytes.withUnsafeBufferPointer { all in
            specialTokens.encode(all, allowSpecial: allowSpecial, into: &output) { segment, output in
                var source = String(decoding: segment, as: UTF8.self)
                if lowercase { source = source.lowercased() }
                let piece = Array(source.utf8)
                piece.withUnsafeBufferPointer { text in
                    PreTokenizer.whitespace.split(text) { range in
                        output.append(ids[String(decoding: text[range], as: UTF8.self)] ?? unknownID)
                    }
                }
            }
        }
        return output
    }

    /// The words of `ids` joined by spaces.
    public func decode(_ ids: [Int32]) throws -> String {
        try ids.enumerated().map { position, id in
            guard id >= 0, Int(id) < words.count else {
                throw TokenizerError(
                    "token id \(id) at position \(position) is outside the vocabulary (0..<\(words.count))",
                    hint: "decode ids produced by this tokenizer.")
            }
            return words[Int(id)]
        }.joined(separator: " ")
    }

    /// Trains on text files: special tokens first, then the most frequent words (ties in alphabetical
    /// order) seen at least `minimumFrequency` times, up to `vocabularySize`.
    public static func train(
        files: [URL], vocabularySize: Int = WordLevelTokenizer.defaultVocabularySize, minimumFrequency: Int = 1,
        lowercase: Bool = false,
        specialTokens: [String] = ["<pad>", "<unk>", "<bos>", "<eos>"], unknownToken: String = "<unk>",
        threads: Int = ProcessInfo.processInfo.activeProcessorCount
    ) throws -> WordLevelTokenizer {
        guard vocabularySize > specialTokens.count else {
            throw TokenizerError(
                "vocabulary size \(vocabularySize) leaves no room for words after \(specialTokens.count) special tokens",
                hint:
                    "use a larger --vocab-size (the default for word-level is \(WordLevelTokenizer.defaultVocabularySize))."
            )
        }
        // Stream the files in line-aligned chunks and count words on all cores, as the BPE trainer does.
        var counts: [String: Int] = [:]
        try forEachLineChunk(of: files) { chunk in
            let bytes = lowercase ? Array(String(decoding: chunk, as: UTF8.self).lowercased().utf8) : chunk
            let words = countWords(bytes, preTokenizer: .whitespace, threads: threads)
            for (word, count) in words.table { counts[String(decoding: word, as: UTF8.self), default: 0] += count }
        }
        guard !counts.isEmpty else {
            throw TokenizerError("the training input contains no words", hint: "pass non-empty text files.")
        }
        let specials = Set(specialTokens)
        let ranked = counts.filter { $0.value >= minimumFrequency && !specials.contains($0.key) }
            .sorted { $0.value != $1.value ? $0.value > $1.value : $0.key < $1.key }
            .prefix(vocabularySize - specialTokens.count).map(\.key)
        return try WordLevelTokenizer(
            words: specialTokens + ranked, unknownToken: unknownToken, lowercase: lowercase,
            specialTokens: SpecialTokens(specialTokens.enumerated().map { ($0.element, Int32($0.offset)) }))
    }
}

extension TokenizerJSON {
    /// The tokenizer.json text of a word-level tokenizer (WordLevel model, Whitespace pre-tokenizer).
    public static func data(for tokenizer: WordLevelTokenizer) throws -> Data {
        var vocab: [String: Int] = [:]
        for (id, word) in tokenizer.words.enumerated() { vocab[word] = id }
        let added: [[String: Any]] = tokenizer.specialTokens.tokens.sorted { $0.id < $1.id }.map {
            [
                "id": Int($0.id), "content": $0.text, "single_word": false, "lstrip": false, "rstrip": false,
                "normalized": false, "special": true,
            ]
        }
        let object: [String: Any] = [
            "version": "1.0", "truncation": NSNull(), "padding": NSNull(), "added_tokens": added,
            "normalizer": tokenizer.lowercase ? ["type": "Lowercase"] : NSNull(),
            "pre_tokenizer": ["type": "Whitespace"],
            "post_processor": NSNull(), "decoder": NSNull(),
            "model": ["type": "WordLevel", "vocab": vocab, "unk_token": tokenizer.unknownToken],
        ]
        return try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .prettyPrinted])
    }

    /// Loads a WordLevel tokenizer.json.
    public static func loadWordLevel(_ data: Data, path: String) throws -> WordLevelTokenizer {
        guard let root = try? JSONSerialization.jsonObject(with: escapingByteOrderMarks(data)) as? [String: Any],
            let model = root["model"] as? [String: Any]
        else {
            throw TokenizerError(
                "\(path) is not a tokenizer.json object with a model", hint: "pass a Hugging Face tokenizer.json.")
        }
        guard model["type"] as? String == "WordLevel", let vocab = model["vocab"] as? [String: Int] else {
            throw TokenizerError(
                "\(path): field 'model' is not a WordLevel model with a vocab", hint: "pass a WordLevel tokenizer.json."
            )
        }
        let normalizer = root["normalizer"] as? [String: Any]
        guard normalizer == nil || normalizer?["type"] as? String == "Lowercase" else {
            throw TokenizerError(
                "\(path): field 'normalizer' is not supported (only Lowercase)",
                hint: "remove the normalizer or use Lowercase.")
        }
        guard (root["pre_tokenizer"] as? [String: Any])?["type"] as? String == "Whitespace" else {
            throw TokenizerError(
                "\(path): field 'pre_tokenizer' must be Whitespace for a word-level tokenizer",
                hint: "use the Whitespace pre-tokenizer.")
        }
        func fail(_ field: String, _ problem: String, _ hint: String) -> TokenizerError {
            TokenizerError("\(path): field '\(field)' \(problem)", hint: hint)
        }
        let (specials, _) = try addedTokens(root, vocabularyCount: vocab.count, fail: fail)
        guard vocab.count <= TokenizerLimits.maximumVocabulary,
            let largest = vocab.values.max(), largest < vocab.count, vocab.values.min()! >= 0
        else {
            throw fail(
                "model.vocab", "must give its \(vocab.count) words the ids 0..<\(vocab.count) without gaps",
                "the file is damaged; re-save it with tokenizers.")
        }
        var words = [String](repeating: "", count: largest + 1)
        for (word, id) in vocab { words[id] = word }
        if let gap = words.firstIndex(of: "") {
            throw fail("model.vocab", "has no word with id \(gap)", "the file is damaged; re-save it with tokenizers.")
        }
        return try WordLevelTokenizer(
            words: words, unknownToken: model["unk_token"] as? String ?? "<unk>", lowercase: normalizer != nil,
            specialTokens: SpecialTokens(specials))
    }
}
