// ContentHash: a fast 128-bit hash of a document's cleaned bytes. It finds exact duplicates and places each
// document on the train or validation side (so the same text always lands on the same side, whatever else
// is in the corpus). Not cryptographic; `SHA256` is for provenance.

/// A 128-bit content hash.
public struct ContentHash: Hashable, Sendable, Comparable {
    public let high: UInt64
    public let low: UInt64

    public static func < (a: ContentHash, b: ContentHash) -> Bool { (a.high, a.low) < (b.high, b.low) }

    /// A hash from its two halves (as stored).
    public init(high: UInt64, low: UInt64) {
        self.high = high
        self.low = low
    }

    /// The hash of `bytes`.
    public init(_ bytes: [UInt8]) {
        self = bytes.withUnsafeBufferPointer { ContentHash($0) }
    }

    /// The hash of `bytes`: two multiply-rotate lanes over 8-byte words, then a 64-bit finaliser on each.
    public init(_ bytes: UnsafeBufferPointer<UInt8>) {
        var a: UInt64 = 0x9E37_79B9_7F4A_7C15 ^ UInt64(bytes.count)
        var b: UInt64 = 0xC2B2_AE3D_27D4_EB4F &+ UInt64(bytes.count)
        let words = bytes.count / 8
        if let base = bytes.baseAddress {
            let raw = UnsafeRawPointer(base)
            for i in 0..<words {
                let w = UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: 8 * i, as: UInt64.self))
                a = ContentHash.rotate(a ^ (w &* 0x87C3_7B91_1142_53D5), 31) &* 0x4CF5_AD43_2745_937F
                b = ContentHash.rotate(b &+ (w &* 0x1656_67B1_9E37_79F9), 27) &* 0x9E37_79B1_85EB_CA87
            }
            var tail: UInt64 = 0
            for i in stride(from: bytes.count - 1, through: words * 8, by: -1) { tail = tail << 8 | UInt64(base[i]) }
            a = ContentHash.rotate(a ^ (tail &* 0x87C3_7B91_1142_53D5), 31) &* 0x4CF5_AD43_2745_937F
            b = ContentHash.rotate(b &+ (tail &* 0x1656_67B1_9E37_79F9), 27) &* 0x9E37_79B1_85EB_CA87
        }
        high = ContentHash.finalize(a &+ b)
        low = ContentHash.finalize(b ^ ContentHash.rotate(a, 17))
    }

    /// A number in [0, 1) from the hash, uniform over documents.
    public var unitInterval: Double { Double(high >> 11) / Double(1 << 53) }

    /// 32 hex digits.
    public var hex: String {
        [high, low].map { value in
            let digits = String(value, radix: 16)
            return String(repeating: "0", count: 16 - digits.count) + digits
        }.joined()
    }

    @inline(__always) static func rotate(_ x: UInt64, _ n: UInt64) -> UInt64 { (x << n) | (x >> (64 - n)) }

    /// MurmurHash3's 64-bit finaliser: every input bit affects every output bit.
    @inline(__always) static func finalize(_ value: UInt64) -> UInt64 {
        var x = value
        x ^= x >> 33
        x &*= 0xFF51_AFD7_ED55_8CCD
        x ^= x >> 33
        x &*= 0xC4CE_B9FE_1A85_EC53
        x ^= x >> 33
        return x
    }
}
