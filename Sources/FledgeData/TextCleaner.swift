// TextCleaner: normalises one document's text — valid UTF-8 (invalid sequences replaced or the document
// dropped), Unicode NFC, newlines and spaces, control characters removed — in one pass over the bytes. What it
// does not do: change case, punctuation or indentation inside a line.

import Foundation

/// What to do with a document that is not valid UTF-8.
public enum InvalidUTF8Policy: String, Codable, Sendable, CaseIterable {
    /// Replace each invalid sequence with U+FFFD and keep the document.
    case replace
    /// Drop the document.
    case drop
}

/// Text-cleaning settings.
public struct CleaningConfig: Codable, Sendable, Equatable {
    /// Unicode NFC (composed characters, so "é" is always one code point).
    public var normalizeUnicode = true
    /// CRLF and CR become LF; Unicode spaces become " "; line-trailing spaces go; runs of blank lines shrink.
    public var normalizeWhitespace = true
    /// Most consecutive blank lines kept (with `normalizeWhitespace`).
    public var maxBlankLines = 1
    /// C0/C1 control characters (except tab and newline), DEL and the byte-order mark are removed.
    public var removeControlCharacters = true
    public var invalidEncoding: InvalidUTF8Policy = .replace

    public init() {}
}

/// The outcome of cleaning one document.
public struct CleanedText: Sendable {
    /// The cleaned UTF-8 bytes (nil when the document was dropped for invalid UTF-8).
    public var bytes: [UInt8]?
    /// The input was not valid UTF-8.
    public var hadInvalidUTF8 = false
    /// Control characters removed.
    public var removedControlCharacters = 0
}

/// Cleans documents by a `CleaningConfig`.
public struct TextCleaner: Sendable {
    public let config: CleaningConfig

    public init(_ config: CleaningConfig) { self.config = config }

    /// Cleans `input`.
    public func clean(_ input: [UInt8]) -> CleanedText {
        var result = CleanedText()
        var text = input
        if String(validating: input, as: UTF8.self) == nil {
            result.hadInvalidUTF8 = true
            if config.invalidEncoding == .drop { return result }
            text = Array(String(decoding: input, as: UTF8.self).utf8)
        }
        if config.normalizeUnicode { text = TextCleaner.nfc(text) }
        var output: [UInt8] = []
        output.reserveCapacity(text.count)
        text.withUnsafeBufferPointer { bytes in
            result.removedControlCharacters = normalize(bytes, into: &output)
        }
        result.bytes = output
        return result
    }

    /// NFC of valid UTF-8. Text whose scalars are all below U+0300 is already NFC (nothing there decomposes or
    /// combines), which covers most text at memcpy speed. Otherwise the text is cut before each ASCII
    /// character — an ASCII character never combines with what precedes it, so NFC of the pieces is NFC of
    /// the whole — and only pieces holding a scalar ≥ U+0300 (lead byte ≥ 0xCC) go through Foundation.
    static func nfc(_ text: [UInt8]) -> [UInt8] {
        guard text.contains(where: { $0 >= 0xCC }) else { return text }
        var output: [UInt8] = []
        output.reserveCapacity(text.count)
        var start = 0
        while start < text.count {
            var end = start + 1
            var needs = text[start] >= 0xCC
            while end < text.count && text[end] >= 0x80 {
                if text[end] >= 0xCC { needs = true }
                end += 1
            }
            if needs {
                let piece = String(decoding: text[start..<end], as: UTF8.self)
                output.append(contentsOf: piece.precomposedStringWithCanonicalMapping.utf8)
            } else {
                output.append(contentsOf: text[start..<end])
            }
            start = end
        }
        return output
    }

    /// Newline, space and control-character normalisation of valid UTF-8; returns the control characters removed.
    private func normalize(_ bytes: UnsafeBufferPointer<UInt8>, into output: inout [UInt8]) -> Int {
        let whitespace = config.normalizeWhitespace
        let controls = config.removeControlCharacters
        var removed = 0
        var newlines = 0  // consecutive newlines at the end of `output`
        func newline() {
            guard whitespace else { return output.append(0x0A) }
            while let last = output.last, last == 0x20 || last == 0x09 { output.removeLast() }
            if output.isEmpty || newlines > config.maxBlankLines { return }
            output.append(0x0A)
            newlines += 1
        }
        var i = 0
        while i < bytes.count {
            let byte = bytes[i]
            if byte < 0x80 {
                i += 1
                if byte == 0x0A {
                    newline()
                    continue
                }
                if byte == 0x0D {
                    if whitespace {
                        if i < bytes.count && bytes[i] == 0x0A { i += 1 }
                        newline()
                        continue
                    }
                } else if controls && (byte < 0x20 && byte != 0x09 || byte == 0x7F) && byte != 0x0D {
                    removed += 1
                    continue
                }
                output.append(byte)
                if byte != 0x20 && byte != 0x09 { newlines = 0 }
                continue
            }
            let (scalar, length) = TextCleaner.scalar(in: bytes, at: i)
            if controls && (0x80...0x9F).contains(scalar) && scalar != 0x85 || scalar == 0xFEFF && controls {
                removed += 1
            } else if whitespace && (scalar == 0x85 || scalar == 0x2028 || scalar == 0x2029) {
                newline()
            } else if whitespace && TextCleaner.isUnicodeSpace(scalar) {
                output.append(0x20)
            } else {
                output.append(contentsOf: UnsafeBufferPointer(rebasing: bytes[i..<i + length]))
                newlines = 0
            }
            i += length
        }
        if whitespace {
            while let last = output.last, last == 0x20 || last == 0x09 || last == 0x0A { output.removeLast() }
        }
        return removed
    }

    /// The scalar whose UTF-8 sequence starts at non-ASCII lead byte `bytes[i]`, and the sequence's length (a
    /// sequence cut off by the end of `bytes` decodes from what is there).
    @inline(__always)
    static func scalar<C: RandomAccessCollection>(in bytes: C, at i: Int) -> (scalar: UInt32, length: Int)
    where C.Element == UInt8, C.Index == Int {
        let lead = bytes[i]
        let length = lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : 2
        var scalar = UInt32(lead) & (length == 2 ? 0x1F : length == 3 ? 0x0F : 0x07)
        for k in 1..<min(length, bytes.count - i) { scalar = scalar << 6 | UInt32(bytes[i + k] & 0x3F) }
        return (scalar, length)
    }

    /// Unicode scalars in UTF-8 `bytes` (bytes that are not continuation bytes).
    static func scalarCount(_ bytes: [UInt8]) -> Int { bytes.reduce(0) { $0 + ($1 & 0xC0 == 0x80 ? 0 : 1) } }

    /// Unicode space separators other than U+0020 (category Zs).
    static func isUnicodeSpace(_ scalar: UInt32) -> Bool {
        scalar == 0xA0 || scalar == 0x1680 || (0x2000...0x200A).contains(scalar) || scalar == 0x202F
            || scalar == 0x205F || scalar == 0x3000
    }
}
