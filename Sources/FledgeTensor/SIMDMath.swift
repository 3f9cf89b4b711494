// SIMDMath: 16-lane fp32 helpers for the CPU kernels: unaligned loads/stores, partial (tail) loads, and a
// vectorised exp. Not a general math library: only what the kernels need.
// exp follows the Cephes `expf` range reduction and polynomial (relative error ~2e-7 on [-87, 88]).

/// 16 fp32 lanes: one AVX-512 register, or two AVX2 registers.
public typealias Vec16 = SIMD16<Float>

@inlinable @inline(__always)
func load16(_ p: UnsafePointer<Float>) -> Vec16 { UnsafeRawPointer(p).loadUnaligned(as: Vec16.self) }

@inlinable @inline(__always)
func store16(_ v: Vec16, _ p: UnsafeMutablePointer<Float>) {
    UnsafeMutableRawPointer(p).storeBytes(of: v, as: Vec16.self)
}

/// Loads `n` < 16 floats; the other lanes are `fill`.
@inlinable @inline(__always)
func loadPartial(_ p: UnsafePointer<Float>, _ n: Int, fill: Float = 0) -> Vec16 {
    var v = Vec16(repeating: fill)
    for i in 0..<n { v[i] = p[i] }
    return v
}

/// Stores the first `n` < 16 lanes.
@inlinable @inline(__always)
func storePartial(_ v: Vec16, _ p: UnsafeMutablePointer<Float>, _ n: Int) {
    for i in 0..<n { p[i] = v[i] }
}

/// e^x for 16 lanes. Inputs are clamped to [-87.3, 88.3] (exp(-87.3) ≈ 1e-38 stands in for 0).
@inlinable @_transparent
func exp16(_ input: Vec16) -> Vec16 {
    var x = input.replacing(with: -87.3, where: input .< -87.3)  // `clamped` does not specialise; selects do
    x = x.replacing(with: 88.3, where: x .> 88.3)
    // Round x·log2(e) to the nearest integer by adding and subtracting 1.5·2²³ (the generic SIMD
    // `rounded(_:)` is not specialised and costs more than the rest of exp).
    let n = (x * 1.442_695_04 + 12_582_912) - 12_582_912
    // Subtract n·ln2 in two parts (Cephes C1 + C2) so the reduced argument keeps full precision.
    x = x - n * 0.693_359_375
    x = x + n * 2.121_944_4e-4
    var p = Vec16(repeating: 1.987_569_15e-4)
    p = p * x + 1.398_199_95e-3
    p = p * x + 8.333_451_9e-3
    p = p * x + 4.166_579_59e-2
    p = p * x + 1.666_666_55e-1
    p = p * x + 5.000_000_12e-1
    p = p * (x * x) + x + 1
    // 2^n from the bits: adding 1.5·2²³ leaves n + 127 in the low mantissa bits (n is an integer in
    // [-126, 127]), and shifting left by 23 moves them into the exponent while the magic number's own bits
    // shift out. (A generic Float→Int32 SIMD conversion would not vectorise.)
    let biased = unsafeBitCast(n + (12_582_912 + 127), to: SIMD16<Int32>.self)
    return p * unsafeBitCast(biased &<< 23, to: Vec16.self)
}

/// tanh for 16 lanes through exp: tanh(u) = 1 − 2/(e^{2u} + 1).
@inlinable @_transparent
func tanh16(_ u: Vec16) -> Vec16 { 1 - 2 / (exp16(2 * u) + 1) }

/// The logistic sigmoid for 16 lanes.
@inlinable @_transparent
func sigmoid16(_ x: Vec16) -> Vec16 { 1 / (1 + exp16(-x)) }

/// Runs `body` on every 16-lane chunk of `0..<count` and once on the tail with `lanes` < 16; `body` gets the
/// start index and the number of valid lanes, so kernels write their math once for body and tail.
@inlinable @inline(__always)
func forEachChunk16(_ range: Range<Int>, _ body: (Int, Int) -> Void) {
    var i = range.lowerBound
    while i + 16 <= range.upperBound {
        body(i, 16)
        i += 16
    }
    if i < range.upperBound { body(i, range.upperBound - i) }
}

/// Loads `lanes` floats (all 16 when lanes == 16).
@inlinable @inline(__always)
func loadLanes(_ p: UnsafePointer<Float>, _ lanes: Int, fill: Float = 0) -> Vec16 {
    lanes == 16 ? load16(p) : loadPartial(p, lanes, fill: fill)
}

/// Stores `lanes` floats (all 16 when lanes == 16).
@inlinable @inline(__always)
func storeLanes(_ v: Vec16, _ p: UnsafeMutablePointer<Float>, _ lanes: Int) {
    if lanes == 16 { store16(v, p) } else { storePartial(v, p, lanes) }
}

/// Lane-wise maximum by compare-and-select (the generic `pointwiseMax` is not specialised).
@inlinable @inline(__always)
func max16(_ a: Vec16, _ b: Vec16) -> Vec16 { a.replacing(with: b, where: b .> a) }

/// The largest of `count` floats (−∞ when count is 0).
@inlinable @inline(__always)
func rowMaximum(_ p: UnsafePointer<Float>, count: Int) -> Float {
    var maxV = Vec16(repeating: -.infinity)
    forEachChunk16(0..<count) { i, lanes in maxV = max16(maxV, loadLanes(p + i, lanes, fill: -.infinity)) }
    return maxV.max()
}

/// Softmax numerators for sampling: out[i] = e^{(x[i] − m)·scale} with m the largest x (0 where x[i] is −∞ or
/// NaN); returns m (−∞ when no x is finite, and then `out` is left as is).
public func softmaxNumerators(_ x: UnsafeBufferPointer<Float>, scale: Float, into out: UnsafeMutablePointer<Float>)
    -> Float
{
    guard let base = x.baseAddress else { return -.infinity }
    let m = rowMaximum(base, count: x.count)
    guard m > -.infinity else { return m }
    forEachChunk16(0..<x.count) { i, lanes in
        let v = loadLanes(base + i, lanes, fill: -.infinity)
        let e = exp16((v - m) * scale)
        storeLanes(e.replacing(with: 0, where: .!(v .> -.infinity)), out + i, lanes)
    }
    return m
}
