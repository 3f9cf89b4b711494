// CPUBackend+Optimizer: the AdamW update over a flat range, in fp32, in PyTorch's order of operations
// (torch.optim.AdamW, single-tensor path): decay, moment updates, bias-corrected step.

import Foundation

extension CPUBackend {
    public func adamW(
        parameters: FloatPointer, gradients: ConstFloatPointer, firstMoment: FloatPointer,
        secondMoment: FloatPointer, count: Int, hyper: AdamWStep
    ) {
        let h = hyper
        let job = AdamWChunks(
            parameters: parameters, gradients: gradients, firstMoment: firstMoment, secondMoment: secondMoment,
            beta1: h.beta1, beta2: h.beta2, epsilon: h.epsilon,
            correction2Root: Float((1 - Foundation.pow(Double(h.beta2), Double(h.step))).squareRoot()),
            stepSize: h.learningRate / Float(1 - Foundation.pow(Double(h.beta1), Double(h.step))),
            decay: 1 - h.learningRate * h.weightDecay)
        pool.parallelFor(count, alignment: 16, minimumPerThread: Self.elementwiseGrain, job)
    }
}

/// One AdamW step on a chunk: p ← p·(1 − lr·wd) − (lr/c₁)·m / (√v/√c₂ + ε).
struct AdamWChunks: ParallelRangeJob {
    let parameters: FloatPointer, gradients: ConstFloatPointer, firstMoment: FloatPointer, secondMoment: FloatPointer
    let beta1: Float, beta2: Float, epsilon: Float, correction2Root: Float, stepSize: Float, decay: Float

    func run(_ range: Range<Int>) {
        forEachChunk16(range) { i, lanes in
            let g = loadLanes(gradients + i, lanes)
            let m = beta1 * loadLanes(firstMoment + i, lanes) + (1 - beta1) * g
            let v = beta2 * loadLanes(secondMoment + i, lanes) + (1 - beta2) * g * g
            let denominator = v.squareRoot() / correction2Root + epsilon
            let p = loadLanes(parameters + i, lanes) * decay - stepSize * m / denominator
            storeLanes(m, firstMoment + i, lanes)
            storeLanes(v, secondMoment + i, lanes)
            storeLanes(p, parameters + i, lanes)
        }
    }
}
