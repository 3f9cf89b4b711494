// RandomSource: a small seeded generator (xoshiro256**, seeded through SplitMix64) with uniform and normal
// draws. Its whole state is four words, so a checkpoint can store it and a resume continue it exactly.
// Reference: Blackman & Vigna, "Scrambled linear pseudorandom number generators" (2018).

import Foundation

/// A seeded, reproducible random number generator.
public struct RandomSource: RandomNumberGenerator, Sendable, Equatable, Codable {
    /// The generator's full state.
    public private(set) var state: [UInt64]

    /// Seeds the generator; equal seeds give equal sequences on every platform.
    public init(seed: UInt64) {
        var s = seed
        var words: [UInt64] = []
        for _ in 0..<4 {
            s &+= 0x9E37_79B9_7F4A_7C15
            var z = s
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            words.append(z ^ (z >> 31))
        }
        state = words
    }

    /// Restores a generator from a saved `state`.
    public init(state: [UInt64]) {
        precondition(state.count == 4, "RandomSource state has four words")
        self.state = state
    }

    public mutating func next() -> UInt64 {
        let result = ((state[1] &* 5) << 7 | (state[1] &* 5) >> 57) &* 9
        let t = state[1] << 17
        state[2] ^= state[0]
        state[3] ^= state[1]
        state[1] ^= state[2]
        state[0] ^= state[3]
        state[2] ^= t
        state[3] = state[3] << 45 | state[3] >> 19
        return result
    }

    /// A uniform draw in [0, 1).
    public mutating func uniform() -> Double { Double(next() >> 11) * 0x1.0p-53 }

    /// A standard normal draw (Box–Muller).
    public mutating func normal() -> Double {
        let u1 = max(uniform(), 0x1.0p-53)
        let u2 = uniform()
        return (-2 * _log(u1)).squareRoot() * _cos(2 * Double.pi * u2)
    }

    /// Fills `buffer` with normal(mean, std) draws.
    public mutating func fillNormal(_ buffer: UnsafeMutableBufferPointer<Float>, mean: Float = 0, std: Float) {
        for i in buffer.indices { buffer[i] = mean + std * Float(normal()) }
    }

    /// Fills `buffer` with uniform draws in [low, high).
    public mutating func fillUniform(_ buffer: UnsafeMutableBufferPointer<Float>, low: Float, high: Float) {
        for i in buffer.indices { buffer[i] = low + (high - low) * Float(uniform()) }
    }
}

@inline(__always) private func _log(_ x: Double) -> Double { Foundation.log(x) }
@inline(__always) private func _cos(_ x: Double) -> Double { Foundation.cos(x) }
