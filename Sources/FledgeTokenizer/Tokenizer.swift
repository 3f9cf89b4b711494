// Tokenizer: what every tokenizer kind offers (byte-level BPE, word-level), so tools can load and use any
// tokenizer.json without knowing its model.

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
        guard let data = FileManager.default.contents(atPath: url.path) else {
            throw TokenizerError("cannot read \(url.path)", hint: "check the path of tokenizer.json.")
        }
        let root = try? JSONSerialization.jsonObject(with: escapingByteOrderMarks(data)) as? [String: Any]
        if (root?["model"] as? [String: Any])?["type"] as? String == "WordLevel" {
            return try loadWordLevel(data, path: url.path)
        }
        return try load(data, path: url.path)
    }

    /// Writes any tokenizer's tokenizer.json to `url` atomically (temporary file + rename).
    public static func write(_ tokenizer: any Tokenizer, to url: URL) throws {
        let data = try tokenizer.tokenizerJSON()
        let temporary = url.deletingLastPathComponent().appendingPathComponent(
            ".\(url.lastPathComponent).tmp-\(getpid())")
        do {
            try data.write(to: temporary)
            guard rename(temporary.path, url.path) == 0 else { throw CocoaError(.fileWriteUnknown) }
        } catch {
            try? FileManager.default.removeItem(at: temporary)
            throw TokenizerError(
                "cannot write \(url.path): \(error.localizedDescription)",
                hint: "check the folder exists, is writable and the disk has space.")
        }
    }
}
