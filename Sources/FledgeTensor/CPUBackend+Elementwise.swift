// CPUBackend+Elementwise: activations (GELU-tanh, ReLU, SiLU, SwiGLU), residual adds, dropout, scaling and
// the sum of squares. Each is a parallel 16-lane loop; the tail goes through the same vector code with a
// partial load.

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
        let job = ActivationChunks(function: function, output: output, input: input, dOutput: nil)
        pool.parallelFor(count, alignment: 16, minimumPerThread: Self.elementwiseGrain, job)
    }

    public func activationBackward(
        _ function: ActivationFunction, dInput: FloatPointer, input: ConstFloatPointer,
        dOutput: ConstFloatPointer, count: Int
    ) {
        let job = ActivationChunks(function: function, output: dInput, input: input, dOutput: dOutput)
        pool.parallelFor(count, alignment: 16, minimumPerThread: Self.elementwiseGrain, job)
    }

    public func swiglu(output: FloatPointer, input: ConstFloatPointer, rows: Int, width: Int) {
        pool.parallelFor(
            rows, minimumPerThread: 4, SwiGLURows(output: output, input: input, dOutput: nil, width: width))
    }

    public func swigluBackward(
        dInput: FloatPointer, input: ConstFloatPointer, dOutput: ConstFloatPointer, rows: Int, width: Int
    ) {
        pool.parallelFor(
            rows, minimumPerThread: 4, SwiGLURows(output: dInput, input: input, dOutput: dOutput, width: width))
    }

    public func add(output: FloatPointer, _ a: ConstFloatPointer, _ b: ConstFloatPointer, count: Int) {
        pool.parallelFor(
            count, alignment: 16, minimumPerThread: Self.elementwiseGrain, AddChunks(output: output, a: a, b: b))
    }

    public func dropout(_ data: FloatPointer, count: Int, probability: Float, seed: UInt64) {
        guard probability > 0 else { return }
        let job = DropoutChunks(
            data: data, threshold: dropoutThreshold(probability), keepScale: 1 / (1 - probability), seed: seed)
        pool.parallelFor(count, alignment: 16, minimumPerThread: Self.elementwiseGrain, job)
    }

    public func scale(_ data: FloatPointer, count: Int, by factor: Float) {
        pool.parallelFor(
            count, alignment: 16, minimumPerThread: Self.elementwiseGrain, ScaleChunks(data: data, factor: factor))
    }

    public func sumOfSquares(_ data: ConstFloatPointer, count: Int) -> Double {
        withScratch {
            partials.withUnsafeMutableBufferPointer { partial in
                let slots = partial.baseAddress!
                pool.parallel(SumOfSquaresShares(data: data, count: count, slots: slots))
                var sum = 0.0
                for t in 0..<pool.threadCount { sum += slots[t * 8] }
                return sum
            }
        }
    }
}

/// out = f(input) (forward, dOutput nil) or out = f′(input)·dOutput (backward), for a chunk.
struct ActivationChunks: ParallelRangeJob {
    let function: ActivationFunction
    let output: FloatPointer, input: ConstFloatPointer, dOutput: ConstFloatPointer?

    func run(_ range: Range<Int>) {
        if let dOutput {
            forEachChunk16(range) { i, lanes in
                let x = loadLanes(input + i, lanes)
                storeLanes(CPUBackend.derivative(function, x) * loadLanes(dOutput + i, lanes), output + i, lanes)
            }
        } else {
            forEachChunk16(range) { i, lanes in
                storeLanes(CPUBackend.activate(function, loadLanes(input + i, lanes)), output + i, lanes)
            }
        }
    }
}

/// SwiGLU forward (dOutput nil: out = silu(gate)·up) or backward (out = [dGate, dUp]) for a block of rows.
struct SwiGLURows: ParallelRangeJob {
    let output: FloatPointer, input: ConstFloatPointer, dOutput: ConstFloatPointer?
    let width: Int

    func run(_ block: Range<Int>) {
        let f = width
        for r in block {
            let gate = input + r * 2 * f
            let up = gate + f
            forEachChunk16(0..<f) { i, lanes in
                let g = loadLanes(gate + i, lanes)
                let s = sigmoid16(g)
                if let dOutput {
                    let dy = loadLanes(dOutput + r * f + i, lanes)
                    storeLanes(dy * loadLanes(up + i, lanes) * s * (1 + g * (1 - s)), output + r * 2 * f + i, lanes)
                    storeLanes(dy * g * s, output + r * 2 * f + f + i, lanes)
                } else {
                    storeLanes(g * s * loadLanes(up + i, lanes), output + r * f + i, lanes)
                }
            }
        }
    }
}

/// out = a + b for a chunk.
struct AddChunks: ParallelRangeJob {
    let output: FloatPointer, a: ConstFloatPointer, b: ConstFloatPointer

    func run(_ range: Range<Int>) {
        forEachChunk16(range) { i, lanes in
            storeLanes(loadLanes(a + i, lanes) + loadLanes(b + i, lanes), output + i, lanes)
        }
    }
}

/// Inverted dropout in place for a chunk (the mask is a function of (seed, global index)).
struct DropoutChunks: ParallelRangeJob {
    let data: FloatPointer
    let threshold: UInt32, keepScale: Float, seed: UInt64

    func run(_ range: Range<Int>) {
        for i in range {
            data[i] = dropoutKeeps(seed: seed, index: i, threshold: threshold) ? data[i] * keepScale : 0
        }
    }
}

/// data *= factor for a chunk.
struct ScaleChunks: ParallelRangeJob {
    let data: FloatPointer, factor: Float

    func run(_ range: Range<Int>) {
        forEachChunk16(range) { i, lanes in storeLanes(loadLanes(data + i, lanes) * factor, data + i, lanes) }
    }
}

/// Each thread sums the squares of its share of fixed 4096-element blocks (fp32 lanes within a block, fp64
/// across blocks) into its own cache-line slot.
struct SumOfSquaresShares: ParallelJob {
    let data: ConstFloatPointer, count: Int
    let slots: UnsafeMutablePointer<Double>

    func run(thread index: Int, of threads: Int) {
        let blocks = (count + 4095) / 4096
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
}
