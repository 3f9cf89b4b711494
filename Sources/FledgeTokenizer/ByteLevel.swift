// ByteLevel: GPT-2's reversible map between the 256 byte values and 256 printable Unicode characters
// (openai/gpt-2 encoder.py `bytes_to_unicode`), used by vocabulary files (encoder.json, vocab.bpe,
// tokenizer.json) to write byte strings as text. Printable Latin-1 bytes map to themselves; the other 68
// bytes map to U+0100 onwards, in byte order.

/// The byte ↔ character map of byte-level BPE vocabularies.
public enum ByteLevel {
    /// Character for each byte value.
    public static let characters: [Character] = {
        var printable = Set<Int>()
        for range in [33...126, 161...172, 174...255] { printable.formUnion(range) }
        var next = 256
        return (0..<256).map { byte in
            if printable.contains(byte) { return Character(Unicode.Scalar(UInt8(byte))) }
            defer { next += 1 }
            return Character(Unicode.Scalar(UInt32(next))!)
        }
    }()

    /// Byte value for each character of the map.
    public static let bytes: [Character: UInt8] = {
        var map: [Character: UInt8] = [:]
        for (byte, character) in characters.enumerated() { map[character] = UInt8(byte) }
        return map
    }()

    /// The vocabulary-file spelling of `bytes`.
    public static func encode(_ bytes: some Sequence<UInt8>) -> String {
        String(bytes.map { characters[Int($0)] })
    }

    /// The bytes spelled by `text`, or nil when it contains a character outside the map.
    public static func decode(_ text: String) -> [UInt8]? {
        var result: [UInt8] = []
        result.reserveCapacity(text.unicodeScalars.count)
        for character in text {
            guard let byte = bytes[character] else { return nil }
            result.append(byte)
        }
        return result
    }
}
