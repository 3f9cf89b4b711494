// Round trips over random and hostile input, special-token handling, the streaming decoder, and bad ids.

import FledgeTokenizer
import Foundation
import Testing

struct RoundTripTests {
    let tokenizer = TokenizerFixtures.gpt2

    @Test(arguments: 0..<8)
    func randomBytesIncludingInvalidUTF8RoundTrip(seed: Int) throws {
        var state = UInt64(seed) &* 0x9E37_79B9_7F4A_7C15 &+ 1
        func next() -> UInt64 {
            state ^= state << 13
            state ^= state >> 7
            state ^= state << 17
            return state
        }
        let bytes = (0..<(200 + seed * 97)).map { _ in UInt8(truncatingIfNeeded: next()) }
        let ids = tokenizer.encode(bytes: bytes)
        #expect(try tokenizer.decodeBytes(ids) == bytes)
    }

    @Test func randomUnicodeRoundTrips() throws {
        var state: UInt64 = 12345
        let ranges: [ClosedRange<UInt32>] = [
            0x20...0x7E, 0xA0...0x24F, 0x370...0x3FF, 0x400...0x4FF, 0x4E00...0x9FFF, 0x1F300...0x1FAFF, 0x0...0x1F,
        ]
        var scalars = String.UnicodeScalarView()
        for _ in 0..<5000 {
            state = state &* 6364136223846793005 &+ 1442695040888963407
            let range = ranges[Int(state >> 33) % ranges.count]
            let value = range.lowerBound + UInt32(state >> 40) % (range.upperBound - range.lowerBound + 1)
            if let s = Unicode.Scalar(value) { scalars.append(s) }
        }
        let text = String(scalars)
        #expect(try tokenizer.decode(tokenizer.encode(text)) == text)
    }

    @Test func specialTokenStringsAreTextUnlessAllowed() throws {
        let text = "a<|endoftext|>b"
        let plain = tokenizer.encode(text)
        #expect(!plain.contains(50256))
        #expect(try tokenizer.decode(plain) == text)
        let special = tokenizer.encode(text, allowSpecial: true)
        #expect(special == tokenizer.encode("a") + [50256] + tokenizer.encode("b"))
        #expect(tokenizer.specialTokens.id("<|endoftext|>") == 50256)
    }

    @Test func streamingDecoderNeverEmitsHalfACharacter() throws {
        let text = "héllo 😀 中文 👨‍👩‍👧 end"
        let ids = tokenizer.encode(text)
        var decoder = StreamingDecoder(tokenizer: tokenizer)
        var pieces: [String] = []
        for id in ids { pieces.append(try decoder.append(id)) }
        pieces.append(decoder.finish())
        #expect(pieces.joined() == text)
        #expect(pieces.allSatisfy { !$0.contains("\u{FFFD}") })
        // Byte-level tokens split the emoji: some step must have held bytes back.
        #expect(pieces.contains(""))
    }

    @Test func invalidSequencesAreFlushedAsReplacement() throws {
        var decoder = StreamingDecoder { id in [UInt8(truncatingIfNeeded: id)] }
        #expect(try decoder.append(0xE4) == "")  // lead byte of a 3-byte sequence
        #expect(try decoder.append(0x41) == "\u{FFFD}A")  // cannot complete: replaced, then "A"
        #expect(try decoder.append(0xF0) == "")
        #expect(decoder.finish() == "\u{FFFD}")
    }

    @Test func outOfRangeIdsAreRejectedWithPosition() {
        #expect(throws: TokenizerError.self) { try tokenizer.decode([1, 2, 50257]) }
        do {
            _ = try tokenizer.decode([5, -1])
        } catch {
            #expect("\(error)".contains("token id -1 at position 1"))
        }
    }
}

struct BatchEncodingTests {
    @Test func batchEncodingEqualsOneByOne() {
        let tokenizer = TokenizerFixtures.gpt2
        let texts = TokenizerFixtures.texts.map { Array($0.utf8) }
        let batch = tokenizer.encodeBatch(texts, threads: 3)
        #expect(batch == texts.map { tokenizer.encode(bytes: $0) })
    }

    @Test func splittingAtLinesKeepsEveryByte() {
        let text = Array(TokenizerFixtures.texts.joined(separator: "\n").utf8)
        for parts in [1, 2, 7] {
            let pieces = BPETokenizer.splitAtLines(text, parts: parts)
            #expect(Array(pieces.joined()) == text)
            #expect(pieces.dropLast().allSatisfy { $0.last == UInt8(ascii: "\n") })
        }
    }
}
