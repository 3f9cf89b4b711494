// Tokenizer: what every tokenizer kind offers (byte-level BPE, word-level), so tools can load and use any
// tokenizer.json without knowing its model.

import FledgeFiles
import Foundation

/// Text ↔ token ids.
public protocol Tokenizer: AnyObject, Sendable {
    var vocabularySize: Int { get }
    var specialTokens: SpecialTokens { get }
    /// Ids of UTF-8 `bytes`; special-token strings become their ids only when `allowSpecial`.
    func encode(bytes: [UInt8], allowSpecial: Bool) -> [Int32]
    /// The bytes of `ids`; throws for an id outside the vocabulary.
    func decodeBytes(_ ids: [Int32]) throws -> [UInt8]
    /// The tokenizer.json form.
    func tokenizerJSON() throws -> Data
    /// The bytes that token `id` adds to a text whose last token is `previous` (nil: `id` starts the text).
    /// Byte-level BPE: the token's own bytes; word-level: a space, then the word (decoding joins words).
    func pieceBytes(_ id: Int32, after previous: Int32?) throws -> [UInt8]
}

extension Tokenizer {
    public func pieceBytes(_ id: Int32, after previous: Int32?) throws -> [UInt8] { try decodeBytes([id]) }
}

extension BPETokenizer: Tokenizer {
    public func tokenizerJSON() throws -> Data { try TokenizerJSON.data(for: self) }

    /// Byte-level: the token's own bytes. Character-level (`--kind bpe`, the HF tutorial's): decoding joins
    /// tokens with spaces, so a token after another brings its space, exactly as `decode` spells the text.
    public func pieceBytes(_ id: Int32, after previous: Int32?) throws -> [UInt8] {
        let bytes = try decodeBytes([id])
        if case .characters = alphabet, previous != nil { return [0x20] + bytes }
        return bytes
    }
}

extension WordLevelTokenizer: Tokenizer {
    public func encode(bytes: [UInt8], allowSpecial: Bool) -> [Int32] {
        encode(String(decoding: bytes, as: UTF8.self), allowSpecial: allowSpecial)
    }

    public func decodeBytes(_ ids: [Int32]) throws -> [UInt8] { Array(try decode(ids).utf8) }

    public func pieceBytes(_ id: Int32, after previous: Int32?) throws -> [UInt8] {
        let word = try decodeBytes([id])
        return previous == nil ? word : [UInt8(ascii: " ")] + word
    }

    public func tokenizerJSON() throws -> Data { try TokenizerJSON.data(for: self) }
}

extension TokenizerJSON {
    /// Loads any supported tokenizer.json (model BPE or WordLevel).
    public static func loadAny(_ url: URL) throws -> any Tokenizer {
        try loadAny(try readFile(url.path), path: url.path)
    }

    /// Parses any supported tokenizer.json `data` (`path` names it in errors).
    public static func loadAny(_ data: Data, path: String) throws -> any Tokenizer {
        let root = try? JSONSerialization.jsonObject(with: escapingByteOrderMarks(data)) as? [String: Any]
        if (root?["model"] as? [String: Any])?["type"] as? String == "WordLevel" {
            return try loadWordLevel(data, path: path)
        }
        return try load(data, path: path)
    }

    /// A tokenizer file's bytes, with a message naming the path when it is missing, a folder or too large.
    static func readFile(_ path: String, _ what: String = "the tokenizer") throws -> Data {
        do { return try UserFile.read(path, what, limit: 1 << 30) } catch let error as FileError {
            throw TokenizerError(error.message, hint: "check the path of \(what) (or pass gpt2).")
        }
    }

    /// Writes any tokenizer's tokenizer.json to `url` atomically (temporary file + rename).
    public static func write(_ tokenizer: any Tokenizer, to url: URL) throws {
        let data = try tokenizer.tokenizerJSON()
        do {
            try AtomicFile.write(data, to: url)
        } catch let error as FileError {
            throw TokenizerError("cannot write \(url.path): \(error.message)", hint: error.hint)
        }
    }
}
