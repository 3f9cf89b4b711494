// CPUBackend+Optimizer: the AdamW update over a flat range, in fp32, in PyTorch's order of operations
// (torch.optim.AdamW, single-tensor path): decay, moment updates, bias-corrected step.

import Foundation

extension CPUBackend {
    public func adamW(
        parameters: FloatPointer, gradients: ConstFloatPointer, firstMoment: FloatPointer,
        secondMoment: FloatPointer, count: Int, hyper: AdamWStep
    ) {
        let h = hyper
        let correction1 = Float(1 - Foundation.pow(Double(h.beta1), Double(h.step)))
        let correction2Root = Float((1 - Foundation.pow(Double(h.beta2), Double(h.step))).squareRoot())
        let stepSize = h.learningRate / correction1
        let decay = 1 - h.learningRate * h.weightDecay
        let (b1, b2) = (h.beta1, h.beta2)
        pool.parallelFor(count, alignment: 16, minimumPerThread: Self.elementwiseGrain) { range in
            forEachChunk16(range) { i, lanes in
                let g = loadLanes(gradients + i, lanes)
                let m = b1 * loadLanes(firstMoment + i, lanes) + (1 - b1) * g
                let v = b2 * loadLanes(secondMoment + i, lanes) + (1 - b2) * g * g
                let denominator = v.squareRoot() / correction2Root + h.epsilon
                let p = loadLanes(parameters + i, lanes) * decay - stepSize * m / denominator
                storeLanes(m, firstMoment + i, lanes)
                storeLanes(v, secondMoment + i, lanes)
                storeLanes(p, parameters + i, lanes)
            }
        }
    }
}
