// CPUBackend+Elementwise: activations (GELU-tanh, ReLU, SiLU, SwiGLU), residual adds, dropout, scaling.
// Each is a parallel 16-lane loop; the tail goes through the same vector code with a partial load.

extension CPUBackend {
    /// Chunk size below which an element-wise kernel runs on one thread.
    static let elementwiseGrain = 8192

    @inline(__always)
    static func activate(_ function: ActivationFunction, _ x: Vec16) -> Vec16 {
        switch function {
        case .gelu:
            let cube: Vec16 = x * x * x
            let u: Vec16 = 0.797_884_56 * (x + 0.044_715 * cube)
            return 0.5 * x * (1 + tanh16(u))
        case .relu:
            return x.replacing(with: 0, where: x .< 0)
        case .silu:
            return x * sigmoid16(x)
        }
    }

    @inline(__always)
    static func derivative(_ function: ActivationFunction, _ x: Vec16) -> Vec16 {
        switch function {
        case .gelu:
            let x2: Vec16 = x * x
            let inner: Vec16 = x + 0.044_715 * x2 * x
            let t: Vec16 = tanh16(0.797_884_56 * inner)
            let slope: Vec16 = 0.797_884_56 * (1 + 0.134_145 * x2)
            let left: Vec16 = 0.5 * (1 + t)
            let right: Vec16 = 0.5 * x * (1 - t * t) * slope
            return left + right
        case .relu:
            return Vec16(repeating: 0).replacing(with: 1, where: x .> 0)
        case .silu:
            let s = sigmoid16(x)
            return s * (1 + x * (1 - s))
        }
    }

    public func activation(_ function: ActivationFunction, output: FloatPointer, input: ConstFloatPointer, count: Int) {
        pool.parallelFor(count, alignment: 16, minimumPerThread: Self.elementwiseGrain) { range in
            forEachChunk16(range) { i, lanes in
                storeLanes(Self.activate(function, loadLanes(input + i, lanes)), output + i, lanes)
            }
        }
    }

    public func activationBackward(
        _ function: ActivationFunction, dInput: FloatPointer, input: ConstFloatPointer,
        dOutput: ConstFloatPointer, count: Int
    ) {
        pool.parallelFor(count, alignment: 16, minimumPerThread: Self.elementwiseGrain) { range in
            forEachChunk16(range) { i, lanes in
                let d = Self.derivative(function, loadLanes(input + i, lanes)) * loadLanes(dOutput + i, lanes)
                storeLanes(d, dInput + i, lanes)
            }
        }
    }

    public func swiglu(output: FloatPointer, input: ConstFloatPointer, rows: Int, width: Int) {
        let f = width
        pool.parallelFor(rows, minimumPerThread: 4) { block in
            for r in block {
                let gate = input + r * 2 * f
                let up = gate + f
                forEachChunk16(0..<f) { i, lanes in
                    let g = loadLanes(gate + i, lanes)
                    storeLanes(g * sigmoid16(g) * loadLanes(up + i, lanes), output + r * f + i, lanes)
                }
            }
        }
    }

    public func swigluBackward(
        dInput: FloatPointer, input: ConstFloatPointer, dOutput: ConstFloatPointer, rows: Int, width: Int
    ) {
        let f = width
        pool.parallelFor(rows, minimumPerThread: 4) { block in
            for r in block {
                let gate = input + r * 2 * f
                let up = gate + f
                let dGate = dInput + r * 2 * f
                let dUp = dGate + f
                forEachChunk16(0..<f) { i, lanes in
                    let g = loadLanes(gate + i, lanes)
                    let dy = loadLanes(dOutput + r * f + i, lanes)
                    let s = sigmoid16(g)
                    storeLanes(dy * loadLanes(up + i, lanes) * s * (1 + g * (1 - s)), dGate + i, lanes)
                    storeLanes(dy * g * s, dUp + i, lanes)
                }
            }
        }
    }

    public func add(output: FloatPointer, _ a: ConstFloatPointer, _ b: ConstFloatPointer, count: Int) {
        pool.parallelFor(count, alignment: 16, minimumPerThread: Self.elementwiseGrain) { range in
            forEachChunk16(range) { i, lanes in
                storeLanes(loadLanes(a + i, lanes) + loadLanes(b + i, lanes), output + i, lanes)
            }
        }
    }

    public func dropout(_ data: FloatPointer, count: Int, probability: Float, seed: UInt64) {
        guard probability > 0 else { return }
        let threshold = dropoutThreshold(probability)
        let keepScale = 1 / (1 - probability)
        pool.parallelFor(count, alignment: 16, minimumPerThread: Self.elementwiseGrain) { range in
            for i in range {
                data[i] = dropoutKeeps(seed: seed, index: i, threshold: threshold) ? data[i] * keepScale : 0
            }
        }
    }

    public func scale(_ data: FloatPointer, count: Int, by factor: Float) {
        pool.parallelFor(count, alignment: 16, minimumPerThread: Self.elementwiseGrain) { range in
            forEachChunk16(range) { i, lanes in storeLanes(loadLanes(data + i, lanes) * factor, data + i, lanes) }
        }
    }

    public func sumOfSquares(_ data: ConstFloatPointer, count: Int) -> Double {
        let threads = pool.threadCount
        // Fixed 4096-element blocks summed in fp32 lanes, block sums added in fp64, one slot per thread.
        let blocks = (count + 4095) / 4096
        return partials.withUnsafeMutableBufferPointer { partial in
            let slots = partial.baseAddress!
            pool.parallel { index in
                var total = 0.0
                for block in blocks * index / threads..<blocks * (index + 1) / threads {
                    var acc = Vec16()
                    forEachChunk16(block * 4096..<min(count, block * 4096 + 4096)) { i, lanes in
                        let v = loadLanes(data + i, lanes)
                        acc.addProduct(v, v)
                    }
                    total += Double(acc.sum())
                }
                slots[index * 8] = total
            }
            var sum = 0.0
            for t in 0..<threads { sum += slots[t * 8] }
            return sum
        }
    }
}
