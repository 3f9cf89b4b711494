// Test helpers: random buffers and closeness checks that report max abs and relative error.

import FledgeTensor
import Testing

/// A float buffer for tests, filled from a seeded generator.
final class Buffer {
    let storage: Storage<Float>
    var count: Int { storage.count }

    init(_ count: Int, seed: UInt64, low: Float = -1, high: Float = 1) {
        storage = try! Storage<Float>(count: count)
        var rng = RandomSource(seed: seed)
        storage.withUnsafeMutableBufferPointer { rng.fillUniform($0, low: low, high: high) }
    }

    init(zeros count: Int) { storage = try! Storage<Float>(count: count) }

    init(copy other: Buffer) {
        storage = try! Storage<Float>(other.storage.array)
    }

    var pointer: UnsafeMutablePointer<Float> { storage.withUnsafeMutableBufferPointer { $0.baseAddress! } }
    var array: [Float] { storage.array }
}

/// Max absolute difference and max relative difference (against max(|expected|, floor)).
func differences(_ actual: [Float], _ expected: [Float], floor: Float = 1e-3) -> (abs: Float, rel: Float) {
    precondition(actual.count == expected.count)
    var maxAbs: Float = 0
    var maxRel: Float = 0
    for i in actual.indices {
        let d = abs(actual[i] - expected[i])
        maxAbs = max(maxAbs, d)
        maxRel = max(maxRel, d / max(abs(expected[i]), floor))
        if actual[i].isNaN != expected[i].isNaN { maxAbs = .infinity }
    }
    return (maxAbs, maxRel)
}

/// Expects `actual` ≈ `expected` elementwise within `tolerance` (absolute or relative), naming `what`.
func expectClose(
    _ actual: [Float], _ expected: [Float], tolerance: Float = 1e-4, _ what: String,
    sourceLocation: SourceLocation = #_sourceLocation
) {
    let (a, r) = differences(actual, expected)
    #expect(
        a <= tolerance || r <= tolerance, "\(what): max abs diff \(a), max rel diff \(r), tolerance \(tolerance)",
        sourceLocation: sourceLocation)
}

let fast = CPUBackend(threadCount: 2)
/// The few-rows linear kernel at each slice width, whatever this CPU's own (`fast` uses `nativeVectorLanes`):
/// 16 lanes run on AVX2 too (two registers per slice, slower), so both are tested on every machine.
let fastAtEachWidth = [8, 16].map { CPUBackend(threadCount: 2, vectorLanes: $0) }

/// `backend.linear` of `rows` rows of `x`, from row `firstRow` on, into a new array.
func linearOutput(
    _ backend: Backend, _ x: Buffer, firstRow: Int = 0, _ w: Buffer, _ bias: Buffer, rows: Int, inFeatures: Int,
    outFeatures: Int
) -> [Float] {
    let out = Buffer(zeros: rows * outFeatures)
    backend.linear(
        output: out.pointer, input: x.pointer + firstRow * inFeatures, weight: w.pointer, bias: bias.pointer,
        rows: rows, inFeatures: inFeatures, outFeatures: outFeatures)
    return out.array
}
let reference = ReferenceBackend()
