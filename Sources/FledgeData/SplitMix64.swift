// SplitMix64 (Steele, Lea & Flood 2014): a tiny seeded generator and its finaliser, for FledgeData's seeded
// choices (MinHash coefficients, the loader's shuffles) and the trainer's dropout seeds. FledgeTensor has the
// same finaliser for its own generator and dropout masks; FledgeData stays free of the numeric core.

/// A SplitMix64 generator.
public struct SplitMix64: Sendable {
    public private(set) var state: UInt64

    public init(seed: UInt64) { state = seed }

    /// The next value.
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        return SplitMix64.mix(state)
    }

    /// The SplitMix64 finaliser: every input bit affects every output bit.
    @inline(__always)
    public static func mix(_ value: UInt64) -> UInt64 {
        var z = value
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
