// Every layer's backward against central finite differences of L = Σ output ⊙ R (R random), on the fast
// CPU kernels. Each check perturbs a sample of input (and parameter) elements by ±h and compares
// (L(x+h) − L(x−h)) / 2h with the analytic gradient, within 2% of the gradient's scale.

import FledgeTensor
import Foundation
import Testing

struct FiniteDifferenceTests {
    /// Checks d L / d `input` where L = Σ forward() ⊙ weights, against `analytic`.
    func check(
        _ what: String, input: Buffer, analytic: [Float], weights: [Float], h: Float = 1e-2,
        forward: () -> [Float], sourceLocation: SourceLocation = #_sourceLocation
    ) {
        func loss() -> Double { zip(forward(), weights).reduce(0) { $0 + Double($1.0) * Double($1.1) } }
        let scale = max(analytic.map { abs($0) }.max() ?? 0, 1e-3)
        let p = input.pointer
        for i in stride(from: 0, to: input.count, by: max(1, input.count / 23)) {
            let original = p[i]
            p[i] = original + h
            let plus = loss()
            p[i] = original - h
            let minus = loss()
            p[i] = original
            let numeric = Float((plus - minus) / Double(2 * h))
            #expect(
                abs(numeric - analytic[i]) <= 0.02 * scale,
                "\(what)[\(i)]: analytic \(analytic[i]), numeric \(numeric)", sourceLocation: sourceLocation)
        }
    }

    @Test func linearBackward() {
        let (rows, c, oc) = (5, 7, 9)
        let x = Buffer(rows * c, seed: 1)
        let w = Buffer(oc * c, seed: 2)
        let b = Buffer(oc, seed: 3)
        let r = Buffer(rows * oc, seed: 4)
        let out = Buffer(zeros: rows * oc)
        let forward = {
            fast.linear(
                output: out.pointer, input: x.pointer, weight: w.pointer, bias: b.pointer, rows: rows, inFeatures: c,
                outFeatures: oc)
            return out.array
        }
        let (dx, dw, db) = (Buffer(zeros: rows * c), Buffer(zeros: oc * c), Buffer(zeros: oc))
        fast.linearBackward(
            dInput: dx.pointer, accumulateInput: false, dWeight: dw.pointer, dBias: db.pointer, dOutput: r.pointer,
            input: x.pointer, weight: w.pointer, rows: rows, inFeatures: c, outFeatures: oc)
        check("linear dInput", input: x, analytic: dx.array, weights: r.array, forward: forward)
        check("linear dWeight", input: w, analytic: dw.array, weights: r.array, forward: forward)
        check("linear dBias", input: b, analytic: db.array, weights: r.array, forward: forward)
    }

    @Test(arguments: [true, false])
    func normBackward(layerNorm: Bool) {
        let (rows, c) = (4, 21)
        let x = Buffer(rows * c, seed: 5, low: -2, high: 2)
        let w = Buffer(c, seed: 6)
        let b = Buffer(c, seed: 7)
        let r = Buffer(rows * c, seed: 8)
        let (out, mean, rstd) = (Buffer(zeros: rows * c), Buffer(zeros: rows), Buffer(zeros: rows))
        let forward = {
            if layerNorm {
                fast.layerNorm(
                    output: out.pointer, mean: mean.pointer, rstd: rstd.pointer, input: x.pointer, weight: w.pointer,
                    bias: b.pointer, rows: rows, width: c, epsilon: 1e-5)
            } else {
                fast.rmsNorm(
                    output: out.pointer, rstd: rstd.pointer, input: x.pointer, weight: w.pointer, rows: rows, width: c,
                    epsilon: 1e-5)
            }
            return out.array
        }
        _ = forward()
        let (dx, dw, db) = (Buffer(zeros: rows * c), Buffer(zeros: c), Buffer(zeros: c))
        if layerNorm {
            fast.layerNormBackward(
                dInput: dx.pointer, accumulate: false, dWeight: dw.pointer, dBias: db.pointer, dOutput: r.pointer,
                input: x.pointer, weight: w.pointer, mean: mean.pointer, rstd: rstd.pointer, rows: rows, width: c)
        } else {
            fast.rmsNormBackward(
                dInput: dx.pointer, accumulate: false, dWeight: dw.pointer, dOutput: r.pointer, input: x.pointer,
                weight: w.pointer, rstd: rstd.pointer, rows: rows, width: c)
        }
        let name = layerNorm ? "layerNorm" : "rmsNorm"
        check("\(name) dInput", input: x, analytic: dx.array, weights: r.array, h: 1e-3, forward: forward)
        check("\(name) dWeight", input: w, analytic: dw.array, weights: r.array, forward: forward)
        if layerNorm { check("layerNorm dBias", input: b, analytic: db.array, weights: r.array, forward: forward) }
    }

    @Test(arguments: ActivationFunction.allCases)
    func activationBackward(function: ActivationFunction) {
        let n = 40
        // Keep ReLU inputs away from its kink at 0, where the finite difference is not a derivative.
        let x = Buffer(n, seed: 11, low: -3, high: 3)
        for i in 0..<n where abs(x.pointer[i]) < 0.05 { x.pointer[i] = 0.5 }
        let r = Buffer(n, seed: 12)
        let out = Buffer(zeros: n)
        let forward = {
            fast.activation(function, output: out.pointer, input: x.pointer, count: n)
            return out.array
        }
        let dx = Buffer(zeros: n)
        fast.activationBackward(function, dInput: dx.pointer, input: x.pointer, dOutput: r.pointer, count: n)
        check("\(function)", input: x, analytic: dx.array, weights: r.array, h: 1e-3, forward: forward)
    }

    @Test func swigluBackward() {
        let (rows, f) = (3, 10)
        let x = Buffer(rows * 2 * f, seed: 13, low: -3, high: 3)
        let r = Buffer(rows * f, seed: 14)
        let out = Buffer(zeros: rows * f)
        let forward = {
            fast.swiglu(output: out.pointer, input: x.pointer, rows: rows, width: f)
            return out.array
        }
        let dx = Buffer(zeros: rows * 2 * f)
        fast.swigluBackward(dInput: dx.pointer, input: x.pointer, dOutput: r.pointer, rows: rows, width: f)
        check("swiglu", input: x, analytic: dx.array, weights: r.array, h: 1e-3, forward: forward)
    }

    @Test func embeddingAndRotaryBackward() {
        let (b, t, c, vocab) = (2, 5, 8, 6)
        let tokens: [Int32] = [0, 3, 3, 5, 1, 2, 0, 4, 3, 3]
        let wte = Buffer(vocab * c, seed: 15)
        let wpe = Buffer(t * c, seed: 16)
        let r = Buffer(b * t * c, seed: 17)
        let out = Buffer(zeros: b * t * c)
        let half = c / 2
        let (cos, sin) = (Buffer(zeros: t * half), Buffer(zeros: t * half))
        for i in 0..<t * half {
            cos.pointer[i] = Foundation.cos(Float(i) * 0.7)
            sin.pointer[i] = Foundation.sin(Float(i) * 0.7)
        }
        // Embedding, then rotary over one "head" of width C: checks both backward passes together.
        let forward = {
            tokens.withUnsafeBufferPointer { tk in
                fast.embedding(
                    output: out.pointer, tokens: tk.baseAddress!, tokenTable: wte.pointer, positionTable: wpe.pointer,
                    batchSize: b, sequenceLength: t, width: c, positionOffset: 0)
            }
            fast.rotary(
                data: out.pointer, cos: cos.pointer, sin: sin.pointer, batchSize: b, sequenceLength: t, heads: 1,
                headSize: c, rowStride: c, batchStride: t * c, positionOffset: 0, inverse: false)
            return out.array
        }
        let dOut = Buffer(copy: r)
        fast.rotary(
            data: dOut.pointer, cos: cos.pointer, sin: sin.pointer, batchSize: b, sequenceLength: t, heads: 1,
            headSize: c, rowStride: c, batchStride: t * c, positionOffset: 0, inverse: true)
        let (dwte, dwpe) = (Buffer(zeros: vocab * c), Buffer(zeros: t * c))
        tokens.withUnsafeBufferPointer { tk in
            fast.embeddingBackward(
                dTokenTable: dwte.pointer, dPositionTable: dwpe.pointer, dOutput: dOut.pointer, tokens: tk.baseAddress!,
                batchSize: b, sequenceLength: t, width: c)
        }
        check("embedding dTokenTable", input: wte, analytic: dwte.array, weights: r.array, forward: forward)
        check("embedding dPositionTable", input: wpe, analytic: dwpe.array, weights: r.array, forward: forward)
    }

    @Test func crossEntropyBackward() {
        let (rows, v) = (4, 11)
        let logits = Buffer(rows * v, seed: 18, low: -3, high: 3)
        let targets: [Int32] = [3, -100, 10, 0]
        let (losses, lse) = (Buffer(zeros: rows), Buffer(zeros: rows))
        let forward: () -> [Float] = {
            targets.withUnsafeBufferPointer { t in
                fast.crossEntropy(
                    losses: losses.pointer, logSumExp: lse.pointer, logits: logits.pointer, targets: t.baseAddress!,
                    rows: rows, vocabularySize: v, ignoreIndex: -100)
            }
            return losses.array
        }
        _ = forward()
        let d = Buffer(zeros: rows * v)
        targets.withUnsafeBufferPointer { t in
            fast.crossEntropyBackward(
                dLogits: d.pointer, logits: logits.pointer, logSumExp: lse.pointer, targets: t.baseAddress!, rows: rows,
                vocabularySize: v, ignoreIndex: -100, scale: 1)
        }
        check(
            "crossEntropy", input: logits, analytic: d.array, weights: [Float](repeating: 1, count: rows), h: 1e-3,
            forward: forward)
    }
}
