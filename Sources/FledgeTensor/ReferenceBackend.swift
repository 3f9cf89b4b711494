// ReferenceBackend: every kernel of `Backend` as a plain serial loop, reductions in Double.
// It is the definition the fast CPU kernels are tested against, and is deliberately slow and simple.
// Formulas follow PyTorch's documentation for the matching modules (nn.Linear, nn.LayerNorm, nn.RMSNorm,
// F.scaled_dot_product_attention(is_causal=True), F.cross_entropy(ignore_index=), torch.optim.AdamW).

import Foundation

/// Plain, serial, obviously-correct kernels.
public final class ReferenceBackend: HostMemoryBackend {
    public let name = "reference"

    public init() {}

    public func gemm(
        transposeA: Bool, transposeB: Bool, m: Int, n: Int, k: Int, alpha: Float,
        a: ConstFloatPointer, lda: Int, b: ConstFloatPointer, ldb: Int, beta: Float, c: FloatPointer, ldc: Int
    ) {
        for i in 0..<m {
            for j in 0..<n {
                var sum = 0.0
                for p in 0..<k {
                    let av = transposeA ? a[p * lda + i] : a[i * lda + p]
                    let bv = transposeB ? b[j * ldb + p] : b[p * ldb + j]
                    sum += Double(av) * Double(bv)
                }
                let old = beta == 0 ? 0 : beta * c[i * ldc + j]
                c[i * ldc + j] = alpha * Float(sum) + old
            }
        }
    }

    public func linear(
        output: FloatPointer, input: ConstFloatPointer, weight: ConstFloatPointer, bias: ConstFloatPointer?,
        rows: Int, inFeatures: Int, outFeatures: Int
    ) {
        for r in 0..<rows {
            for o in 0..<outFeatures {
                var sum = Double(bias?[o] ?? 0)
                for i in 0..<inFeatures {
                    sum += Double(input[r * inFeatures + i]) * Double(weight[o * inFeatures + i])
                }
                output[r * outFeatures + o] = Float(sum)
            }
        }
    }

    public func linearBackward(
        dInput: FloatPointer?, accumulateInput: Bool, dWeight: FloatPointer, dBias: FloatPointer?,
        dOutput: ConstFloatPointer, input: ConstFloatPointer, weight: ConstFloatPointer,
        rows: Int, inFeatures: Int, outFeatures: Int
    ) {
        if let dInput {
            for r in 0..<rows {
                for i in 0..<inFeatures {
                    var sum = 0.0
                    for o in 0..<outFeatures {
                        sum += Double(dOutput[r * outFeatures + o]) * Double(weight[o * inFeatures + i])
                    }
                    let old = accumulateInput ? dInput[r * inFeatures + i] : 0
                    dInput[r * inFeatures + i] = old + Float(sum)
                }
            }
        }
        for o in 0..<outFeatures {
            for i in 0..<inFeatures {
                var sum = 0.0
                for r in 0..<rows { sum += Double(dOutput[r * outFeatures + o]) * Double(input[r * inFeatures + i]) }
                dWeight[o * inFeatures + i] += Float(sum)
            }
            if let dBias {
                var sum = 0.0
                for r in 0..<rows { sum += Double(dOutput[r * outFeatures + o]) }
                dBias[o] += Float(sum)
            }
        }
    }

    public func embedding(
        output: FloatPointer, tokens: UnsafePointer<Int32>, tokenTable: ConstFloatPointer,
        positionTable: ConstFloatPointer?, batchSize: Int, sequenceLength: Int, width: Int, positionOffset: Int
    ) {
        for b in 0..<batchSize {
            for t in 0..<sequenceLength {
                let row = b * sequenceLength + t
                let token = Int(tokens[row])
                for c in 0..<width {
                    let position = positionTable.map { $0[(positionOffset + t) * width + c] } ?? 0
                    output[row * width + c] = tokenTable[token * width + c] + position
                }
            }
        }
    }

    public func embeddingBackward(
        dTokenTable: FloatPointer, dPositionTable: FloatPointer?, dOutput: ConstFloatPointer,
        tokens: UnsafePointer<Int32>, batchSize: Int, sequenceLength: Int, width: Int
    ) {
        for b in 0..<batchSize {
            for t in 0..<sequenceLength {
                let row = b * sequenceLength + t
                let token = Int(tokens[row])
                for c in 0..<width {
                    dTokenTable[token * width + c] += dOutput[row * width + c]
                    dPositionTable?[t * width + c] += dOutput[row * width + c]
                }
            }
        }
    }

    public func layerNorm(
        output: FloatPointer, mean: FloatPointer, rstd: FloatPointer, input: ConstFloatPointer,
        weight: ConstFloatPointer, bias: ConstFloatPointer?, rows: Int, width: Int, epsilon: Float
    ) {
        for r in 0..<rows {
            let x = input + r * width
            var m = 0.0
            for c in 0..<width { m += Double(x[c]) }
            m /= Double(width)
            var variance = 0.0
            for c in 0..<width { variance += (Double(x[c]) - m) * (Double(x[c]) - m) }
            variance /= Double(width)
            let s = 1 / (variance + Double(epsilon)).squareRoot()
            for c in 0..<width {
                let normalized = (Double(x[c]) - m) * s
                output[r * width + c] = Float(normalized * Double(weight[c]) + Double(bias?[c] ?? 0))
            }
            mean[r] = Float(m)
            rstd[r] = Float(s)
        }
    }

    public func layerNormBackward(
        dInput: FloatPointer, accumulate: Bool, dWeight: FloatPointer, dBias: FloatPointer?,
        dOutput: ConstFloatPointer, input: ConstFloatPointer, weight: ConstFloatPointer,
        mean: ConstFloatPointer, rstd: ConstFloatPointer, rows: Int, width: Int
    ) {
        for r in 0..<rows {
            let x = input + r * width
            let dy = dOutput + r * width
            let m = Double(mean[r])
            let s = Double(rstd[r])
            var meanD = 0.0
            var meanDX = 0.0
            for c in 0..<width {
                let normalized = (Double(x[c]) - m) * s
                let d = Double(dy[c]) * Double(weight[c])
                meanD += d
                meanDX += d * normalized
            }
            meanD /= Double(width)
            meanDX /= Double(width)
            for c in 0..<width {
                let normalized = (Double(x[c]) - m) * s
                let d = Double(dy[c]) * Double(weight[c])
                let dx = Float(s * (d - meanD - normalized * meanDX))
                dInput[r * width + c] = (accumulate ? dInput[r * width + c] : 0) + dx
                dWeight[c] += Float(Double(dy[c]) * normalized)
                dBias?[c] += dy[c]
            }
        }
    }

    public func rmsNorm(
        output: FloatPointer, rstd: FloatPointer, input: ConstFloatPointer, weight: ConstFloatPointer,
        rows: Int, width: Int, epsilon: Float
    ) {
        for r in 0..<rows {
            let x = input + r * width
            var meanSquare = 0.0
            for c in 0..<width { meanSquare += Double(x[c]) * Double(x[c]) }
            meanSquare /= Double(width)
            let s = 1 / (meanSquare + Double(epsilon)).squareRoot()
            for c in 0..<width { output[r * width + c] = Float(Double(x[c]) * s * Double(weight[c])) }
            rstd[r] = Float(s)
        }
    }

    public func rmsNormBackward(
        dInput: FloatPointer, accumulate: Bool, dWeight: FloatPointer, dOutput: ConstFloatPointer,
        input: ConstFloatPointer, weight: ConstFloatPointer, rstd: ConstFloatPointer, rows: Int, width: Int
    ) {
        for r in 0..<rows {
            let x = input + r * width
            let dy = dOutput + r * width
            let s = Double(rstd[r])
            var meanDX = 0.0
            for c in 0..<width { meanDX += Double(dy[c]) * Double(weight[c]) * Double(x[c]) }
            meanDX /= Double(width)
            for c in 0..<width {
                let d = Double(dy[c]) * Double(weight[c])
                let dx = Float(s * d - Double(x[c]) * s * s * s * meanDX)
                dInput[r * width + c] = (accumulate ? dInput[r * width + c] : 0) + dx
                dWeight[c] += Float(Double(dy[c]) * Double(x[c]) * s)
            }
        }
    }

    public func rotary(
        data: FloatPointer, cos: ConstFloatPointer, sin: ConstFloatPointer, batchSize: Int, sequenceLength: Int,
        heads: Int, headSize: Int, rowStride: Int, batchStride: Int, positionOffset: Int, inverse: Bool
    ) {
        let half = headSize / 2
        for b in 0..<batchSize {
            for t in 0..<sequenceLength {
                let position = positionOffset + t
                for h in 0..<heads {
                    let x = data + b * batchStride + t * rowStride + h * headSize
                    for i in 0..<half {
                        let c = cos[position * half + i]
                        let s = inverse ? -sin[position * half + i] : sin[position * half + i]
                        let x1 = x[i]
                        let x2 = x[i + half]
                        x[i] = x1 * c - x2 * s
                        x[i + half] = x2 * c + x1 * s
                    }
                }
            }
        }
    }

    public func decodeAttention(
        output: FloatPointer, probabilities: FloatPointer, query: ConstFloatPointer, key: ConstFloatPointer,
        value: ConstFloatPointer, rows: UnsafeBufferPointer<DecodeRow>, shape: AttentionShape
    ) {
        decodeAttentionRowByRow(
            output: output, probabilities: probabilities, query: query, key: key, value: value, rows: rows,
            shape: shape)
    }

    public func attention(
        output: FloatPointer, probabilities: FloatPointer, query: ConstFloatPointer, key: ConstFloatPointer,
        value: ConstFloatPointer, shape: AttentionShape
    ) {
        for b in 0..<shape.batchSize {
            for h in 0..<shape.heads {
                for t in 0..<shape.queryLength {
                    let s = scores(b, h, t, query: query, key: key, shape)
                    let maximum = s.max()!
                    let e = s.map { Foundation.exp($0 - maximum) }
                    let sum = e.reduce(0, +)
                    let weights = e.map { $0 / sum }
                    let p = probabilities + ((b * shape.heads + h) * shape.queryLength + t) * shape.probabilityRowStride
                    for j in 0..<shape.probabilityRowStride { p[j] = j < weights.count ? Float(weights[j]) : 0 }
                    weightedValues(weights, b, h, t, value: value, output: output, shape)
                }
            }
        }
    }

    public func attentionBackward(
        dQuery: FloatPointer, dKey: FloatPointer, dValue: FloatPointer, dOutput: ConstFloatPointer,
        probabilities: ConstFloatPointer, query: ConstFloatPointer, key: ConstFloatPointer,
        value: ConstFloatPointer, scratch: FloatPointer, shape: AttentionShape
    ) {
        let hs = shape.headSize
        let group = shape.heads / shape.kvHeads
        let scale = 1 / Double(hs).squareRoot()
        for b in 0..<shape.batchSize {
            for t in 0..<shape.queryLength {
                for h in 0..<shape.heads {
                    let dq = dQuery + b * shape.queryBatchStride + t * shape.queryRowStride + h * hs
                    for i in 0..<hs { dq[i] = 0 }
                }
            }
            for j in 0..<shape.keyLength {
                for g in 0..<shape.kvHeads {
                    let offset = b * shape.kvBatchStride + j * shape.kvRowStride + g * hs
                    for i in 0..<hs {
                        dKey[offset + i] = 0
                        dValue[offset + i] = 0
                    }
                }
            }
            for h in 0..<shape.heads {
                let g = h / group
                for t in 0..<shape.queryLength {
                    let q = query + b * shape.queryBatchStride + t * shape.queryRowStride + h * hs
                    let dq = dQuery + b * shape.queryBatchStride + t * shape.queryRowStride + h * hs
                    let dO = dOutput + (b * shape.queryLength + t) * shape.outputRowStride + h * hs
                    let p = probabilities + ((b * shape.heads + h) * shape.queryLength + t) * shape.probabilityRowStride
                    let visible = shape.keyOffset + t + 1
                    var dp = [Double](repeating: 0, count: visible)
                    var weighted = 0.0
                    for j in 0..<visible {
                        let v = value + b * shape.kvBatchStride + j * shape.kvRowStride + g * hs
                        var dot = 0.0
                        for i in 0..<hs { dot += Double(dO[i]) * Double(v[i]) }
                        dp[j] = dot
                        weighted += dot * Double(p[j])
                    }
                    for j in 0..<visible {
                        let offset = b * shape.kvBatchStride + j * shape.kvRowStride + g * hs
                        let dScore = Double(p[j]) * (dp[j] - weighted) * scale
                        for i in 0..<hs {
                            dValue[offset + i] += p[j] * dO[i]
                            dq[i] += Float(dScore * Double(key[offset + i]))
                            dKey[offset + i] += Float(dScore * Double(q[i]))
                        }
                    }
                }
            }
        }
    }

    /// Query row t of head h in batch row b: its scaled scores over the keys it sees (0...keyOffset + t).
    private func scores(
        _ b: Int, _ h: Int, _ t: Int, query: ConstFloatPointer, key: ConstFloatPointer, _ shape: AttentionShape
    )
        -> [Double]
    {
        let hs = shape.headSize
        let g = h / shape.groupSize
        let q = query + b * shape.queryBatchStride + t * shape.queryRowStride + h * hs
        let scale = 1 / Double(hs).squareRoot()
        return (0...(shape.keyOffset + t)).map { j in
            let k = key + b * shape.kvBatchStride + j * shape.kvRowStride + g * hs
            var dot = 0.0
            for i in 0..<hs { dot += Double(q[i]) * Double(k[i]) }
            return dot * scale
        }
    }

    /// Output row t of head h in batch row b: Σⱼ weights[j]·v_j over the keys it sees.
    private func weightedValues(
        _ weights: [Double], _ b: Int, _ h: Int, _ t: Int, value: ConstFloatPointer, output: FloatPointer,
        _ shape: AttentionShape
    ) {
        let hs = shape.headSize
        let v = value + b * shape.kvBatchStride + (h / shape.groupSize) * hs
        let o = output + (b * shape.queryLength + t) * shape.outputRowStride + h * hs
        for i in 0..<hs {
            var acc = 0.0
            for (j, weight) in weights.enumerated() { acc += weight * Double(v[j * shape.kvRowStride + i]) }
            o[i] = Float(acc)
        }
    }

    public func tiledAttention(
        output: FloatPointer, logSumExp: FloatPointer, query: ConstFloatPointer, key: ConstFloatPointer,
        value: ConstFloatPointer, shape: AttentionShape
    ) {
        for b in 0..<shape.batchSize {
            for h in 0..<shape.heads {
                for t in 0..<shape.queryLength {
                    let s = scores(b, h, t, query: query, key: key, shape)
                    let maximum = s.max()!
                    let lse = maximum + Foundation.log(s.reduce(0) { $0 + Foundation.exp($1 - maximum) })
                    logSumExp[(b * shape.heads + h) * shape.queryLength + t] = Float(lse)
                    weightedValues(s.map { Foundation.exp($0 - lse) }, b, h, t, value: value, output: output, shape)
                }
            }
        }
    }

    public func tiledAttentionBackward(
        dQuery: FloatPointer, dKey: FloatPointer, dValue: FloatPointer, dOutput: ConstFloatPointer,
        output: ConstFloatPointer, logSumExp: ConstFloatPointer, query: ConstFloatPointer, key: ConstFloatPointer,
        value: ConstFloatPointer, shape: AttentionShape
    ) {
        let hs = shape.headSize
        let scale = 1 / Double(hs).squareRoot()
        var dq = [Double](repeating: 0, count: shape.batchSize * shape.queryLength * shape.heads * hs)
        var dk = [Double](repeating: 0, count: shape.batchSize * shape.keyLength * shape.kvHeads * hs)
        var dv = dk
        for b in 0..<shape.batchSize {
            for h in 0..<shape.heads {
                let g = h / shape.groupSize
                for t in 0..<shape.queryLength {
                    let s = scores(b, h, t, query: query, key: key, shape)
                    let lse = Double(logSumExp[(b * shape.heads + h) * shape.queryLength + t])
                    let row = (b * shape.queryLength + t) * shape.outputRowStride + h * hs
                    var weighted = 0.0  // D = dO·O
                    for i in 0..<hs { weighted += Double(dOutput[row + i]) * Double(output[row + i]) }
                    let q = query + b * shape.queryBatchStride + t * shape.queryRowStride + h * hs
                    let dqRow = ((b * shape.queryLength + t) * shape.heads + h) * hs
                    for (j, score) in s.enumerated() {
                        let p = Foundation.exp(score - lse)
                        let kv = b * shape.kvBatchStride + j * shape.kvRowStride + g * hs
                        let kvRow = ((b * shape.keyLength + j) * shape.kvHeads + g) * hs
                        var dp = 0.0
                        for i in 0..<hs { dp += Double(dOutput[row + i]) * Double(value[kv + i]) }
                        let dScore = p * (dp - weighted) * scale
                        for i in 0..<hs {
                            dv[kvRow + i] += p * Double(dOutput[row + i])
                            dq[dqRow + i] += dScore * Double(key[kv + i])
                            dk[kvRow + i] += dScore * Double(q[i])
                        }
                    }
                }
            }
            for t in 0..<shape.queryLength {
                for h in 0..<shape.heads {
                    let at = b * shape.queryBatchStride + t * shape.queryRowStride + h * hs
                    for i in 0..<hs {
                        dQuery[at + i] = Float(dq[((b * shape.queryLength + t) * shape.heads + h) * hs + i])
                    }
                }
            }
            for j in 0..<shape.keyLength {
                for g in 0..<shape.kvHeads {
                    let at = b * shape.kvBatchStride + j * shape.kvRowStride + g * hs
                    let from = ((b * shape.keyLength + j) * shape.kvHeads + g) * hs
                    for i in 0..<hs {
                        dKey[at + i] = Float(dk[from + i])
                        dValue[at + i] = Float(dv[from + i])
                    }
                }
            }
        }
    }

    public func activation(_ function: ActivationFunction, output: FloatPointer, input: ConstFloatPointer, count: Int) {
        for i in 0..<count { output[i] = Float(ActivationMath.value(function, Double(input[i]))) }
    }

    public func activationBackward(
        _ function: ActivationFunction, dInput: FloatPointer, input: ConstFloatPointer,
        dOutput: ConstFloatPointer, count: Int
    ) {
        for i in 0..<count {
            dInput[i] = Float(ActivationMath.derivative(function, Double(input[i])) * Double(dOutput[i]))
        }
    }

    public func swiglu(output: FloatPointer, input: ConstFloatPointer, rows: Int, width: Int) {
        for r in 0..<rows {
            for c in 0..<width {
                let gate = Double(input[r * 2 * width + c])
                let up = Double(input[r * 2 * width + width + c])
                output[r * width + c] = Float(ActivationMath.value(.silu, gate) * up)
            }
        }
    }

    public func swigluBackward(
        dInput: FloatPointer, input: ConstFloatPointer, dOutput: ConstFloatPointer, rows: Int, width: Int
    ) {
        for r in 0..<rows {
            for c in 0..<width {
                let gate = Double(input[r * 2 * width + c])
                let up = Double(input[r * 2 * width + width + c])
                let dy = Double(dOutput[r * width + c])
                dInput[r * 2 * width + c] = Float(dy * up * ActivationMath.derivative(.silu, gate))
                dInput[r * 2 * width + width + c] = Float(dy * ActivationMath.value(.silu, gate))
            }
        }
    }

    public func add(output: FloatPointer, _ a: ConstFloatPointer, _ b: ConstFloatPointer, count: Int) {
        for i in 0..<count { output[i] = a[i] + b[i] }
    }

    public func crossEntropy(
        losses: FloatPointer, logSumExp: FloatPointer, logits: ConstFloatPointer, targets: UnsafePointer<Int32>,
        rows: Int, vocabularySize: Int, ignoreIndex: Int32
    ) {
        for r in 0..<rows {
            let x = logits + r * vocabularySize
            var maxLogit = -Double.infinity
            for v in 0..<vocabularySize { maxLogit = max(maxLogit, Double(x[v])) }
            var sum = 0.0
            for v in 0..<vocabularySize { sum += Foundation.exp(Double(x[v]) - maxLogit) }
            let lse = maxLogit + Foundation.log(sum)
            logSumExp[r] = Float(lse)
            losses[r] = targets[r] == ignoreIndex ? 0 : Float(lse - Double(x[Int(targets[r])]))
        }
    }

    public func crossEntropyBackward(
        dLogits: FloatPointer, logits: ConstFloatPointer, logSumExp: ConstFloatPointer,
        targets: UnsafePointer<Int32>, rows: Int, vocabularySize: Int, ignoreIndex: Int32, scale: Float
    ) {
        for r in 0..<rows {
            let ignored = targets[r] == ignoreIndex
            for v in 0..<vocabularySize {
                let i = r * vocabularySize + v
                if ignored {
                    dLogits[i] = 0
                    continue
                }
                let probability = Foundation.exp(Double(logits[i]) - Double(logSumExp[r]))
                let indicator = v == Int(targets[r]) ? 1.0 : 0.0
                dLogits[i] = Float((probability - indicator) * Double(scale))
            }
        }
    }

    public func dropout(_ data: FloatPointer, count: Int, probability: Float, seed: UInt64) {
        guard probability > 0 else { return }
        let threshold = dropoutThreshold(probability)
        let keepScale = 1 / (1 - probability)
        for i in 0..<count {
            data[i] = dropoutKeeps(seed: seed, index: i, threshold: threshold) ? data[i] * keepScale : 0
        }
    }

    public func adamW(
        parameters: FloatPointer, gradients: ConstFloatPointer, firstMoment: FloatPointer,
        secondMoment: FloatPointer, count: Int, hyper: AdamWStep
    ) {
        let h = hyper
        let correction1 = 1 - Foundation.pow(Double(h.beta1), Double(h.step))
        let correction2 = 1 - Foundation.pow(Double(h.beta2), Double(h.step))
        for i in 0..<count {
            let g = Double(gradients[i])
            let m = Double(h.beta1) * Double(firstMoment[i]) + (1 - Double(h.beta1)) * g
            let v = Double(h.beta2) * Double(secondMoment[i]) + (1 - Double(h.beta2)) * g * g
            var p = Double(parameters[i]) * (1 - Double(h.learningRate) * Double(h.weightDecay))
            let denominator = v.squareRoot() / correction2.squareRoot() + Double(h.epsilon)
            p -= Double(h.learningRate) / correction1 * m / denominator
            firstMoment[i] = Float(m)
            secondMoment[i] = Float(v)
            parameters[i] = Float(p)
        }
    }

    public func sumOfSquares(_ data: ConstFloatPointer, count: Int) -> Double {
        var sum = 0.0
        for i in 0..<count { sum += Double(data[i]) * Double(data[i]) }
        return sum
    }

    public func scale(_ data: FloatPointer, count: Int, by factor: Float) {
        for i in 0..<count { data[i] *= factor }
    }
}

/// Scalar definitions of the activation functions and their derivatives, shared by both backends' tests.
public enum ActivationMath {
    static let geluK = (2.0 / Double.pi).squareRoot()

    /// f(x).
    public static func value(_ function: ActivationFunction, _ x: Double) -> Double {
        switch function {
        case .gelu: return 0.5 * x * (1 + Foundation.tanh(geluK * (x + 0.044715 * x * x * x)))
        case .relu: return max(0, x)
        case .silu: return x / (1 + Foundation.exp(-x))
        }
    }

    /// f′(x).
    public static func derivative(_ function: ActivationFunction, _ x: Double) -> Double {
        switch function {
        case .gelu:
            let u = geluK * (x + 0.044715 * x * x * x)
            let t = Foundation.tanh(u)
            return 0.5 * (1 + t) + 0.5 * x * (1 - t * t) * geluK * (1 + 3 * 0.044715 * x * x)
        case .relu: return x > 0 ? 1 : 0
        case .silu:
            let s = 1 / (1 + Foundation.exp(-x))
            return s * (1 + x * (1 - s))
        }
    }
}
