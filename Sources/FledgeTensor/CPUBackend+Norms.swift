// CPUBackend+Norms: LayerNorm and RMSNorm, forward and backward, parallel over rows.
// Parameter gradients are reduced in a second pass where each thread owns a range of channels, so the
// result does not depend on the thread count (llm.c reduces them the same way per channel).

extension CPUBackend {
    public func layerNorm(
        output: FloatPointer, mean: FloatPointer, rstd: FloatPointer, input: ConstFloatPointer,
        weight: ConstFloatPointer, bias: ConstFloatPointer?, rows: Int, width: Int, epsilon: Float
    ) {
        let job = LayerNormRows(
            output: output, mean: mean, rstd: rstd, input: input, weight: weight, bias: bias, width: width,
            epsilon: epsilon)
        pool.parallelFor(rows, minimumPerThread: 4, job)
    }

    public func layerNormBackward(
        dInput: FloatPointer, accumulate: Bool, dWeight: FloatPointer, dBias: FloatPointer?,
        dOutput: ConstFloatPointer, input: ConstFloatPointer, weight: ConstFloatPointer,
        mean: ConstFloatPointer, rstd: ConstFloatPointer, rows: Int, width: Int
    ) {
        let inputs = NormBackwardInputs(
            dOutput: dOutput, input: input, weight: weight, mean: mean, rstd: rstd, rows: rows, width: width)
        pool.parallelFor(
            rows, minimumPerThread: 4, LayerNormInputGradient(inputs: inputs, dInput: dInput, accumulate: accumulate))
        pool.parallelFor(
            width, alignment: 16, minimumPerThread: 32,
            NormParameterGradient(inputs: inputs, dWeight: dWeight, dBias: dBias))
    }

    public func rmsNorm(
        output: FloatPointer, rstd: FloatPointer, input: ConstFloatPointer, weight: ConstFloatPointer,
        rows: Int, width: Int, epsilon: Float
    ) {
        pool.parallelFor(
            rows, minimumPerThread: 4,
            RMSNormRows(output: output, rstd: rstd, input: input, weight: weight, width: width, epsilon: epsilon))
    }

    public func rmsNormBackward(
        dInput: FloatPointer, accumulate: Bool, dWeight: FloatPointer, dOutput: ConstFloatPointer,
        input: ConstFloatPointer, weight: ConstFloatPointer, rstd: ConstFloatPointer, rows: Int, width: Int
    ) {
        let inputs = NormBackwardInputs(
            dOutput: dOutput, input: input, weight: weight, mean: nil, rstd: rstd, rows: rows, width: width)
        pool.parallelFor(
            rows, minimumPerThread: 4, RMSNormInputGradient(inputs: inputs, dInput: dInput, accumulate: accumulate))
        pool.parallelFor(
            width, alignment: 16, minimumPerThread: 32,
            NormParameterGradient(inputs: inputs, dWeight: dWeight, dBias: nil))
    }
}

/// LayerNorm of a block of rows (C = width).
struct LayerNormRows: ParallelRangeJob {
    let output: FloatPointer, mean: FloatPointer, rstd: FloatPointer
    let input: ConstFloatPointer, weight: ConstFloatPointer, bias: ConstFloatPointer?
    let width: Int, epsilon: Float

    func run(_ block: Range<Int>) {
        let c = width
        for r in block {
            let x = input + r * c
            let y = output + r * c
            var sum = Vec16()
            forEachChunk16(0..<c) { i, lanes in sum += loadLanes(x + i, lanes) }
            let m = sum.sum() / Float(c)
            var squares = Vec16()
            forEachChunk16(0..<c) { i, lanes in
                let d = loadLanes(x + i, lanes, fill: m) - m
                squares.addProduct(d, d)
            }
            let s = 1 / (squares.sum() / Float(c) + epsilon).squareRoot()
            forEachChunk16(0..<c) { i, lanes in
                var v = (loadLanes(x + i, lanes) - m) * s * loadLanes(weight + i, lanes)
                if let bias { v += loadLanes(bias + i, lanes) }
                storeLanes(v, y + i, lanes)
            }
            mean[r] = m
            rstd[r] = s
        }
    }
}

/// RMSNorm of a block of rows.
struct RMSNormRows: ParallelRangeJob {
    let output: FloatPointer, rstd: FloatPointer, input: ConstFloatPointer, weight: ConstFloatPointer
    let width: Int, epsilon: Float

    func run(_ block: Range<Int>) {
        let c = width
        for r in block {
            let x = input + r * c
            var squares = Vec16()
            forEachChunk16(0..<c) { i, lanes in
                let v = loadLanes(x + i, lanes)
                squares.addProduct(v, v)
            }
            let s = 1 / (squares.sum() / Float(c) + epsilon).squareRoot()
            forEachChunk16(0..<c) { i, lanes in
                storeLanes(loadLanes(x + i, lanes) * s * loadLanes(weight + i, lanes), output + r * c + i, lanes)
            }
            rstd[r] = s
        }
    }
}

/// What both norms' backward passes read. `mean` is nil for RMSNorm.
struct NormBackwardInputs {
    let dOutput: ConstFloatPointer, input: ConstFloatPointer, weight: ConstFloatPointer
    let mean: ConstFloatPointer?, rstd: ConstFloatPointer
    let rows: Int, width: Int

    /// x̂ = (x − mean)·rstd for LayerNorm, x·rstd for RMSNorm, at row r, channels i..<i+lanes.
    @inline(__always)
    func normalized(_ r: Int, _ i: Int, _ lanes: Int) -> Vec16 {
        let x = loadLanes(input + r * width + i, lanes)
        return (mean.map { x - $0[r] } ?? x) * rstd[r]
    }
}

/// LayerNorm dInput = rstd·(d − mean(d) − x̂·mean(d·x̂)) with d = dOut·weight, for a block of rows.
struct LayerNormInputGradient: ParallelRangeJob {
    let inputs: NormBackwardInputs
    let dInput: FloatPointer
    let accumulate: Bool

    func run(_ block: Range<Int>) {
        let c = inputs.width
        let (weight, rstd) = (inputs.weight, inputs.rstd)
        for r in block {
            let dy = inputs.dOutput + r * c
            let dx = dInput + r * c
            var sumD = Vec16()
            var sumDX = Vec16()
            forEachChunk16(0..<c) { i, lanes in
                let d = loadLanes(dy + i, lanes) * loadLanes(weight + i, lanes)
                sumD += d
                sumDX.addProduct(d, inputs.normalized(r, i, lanes))
            }
            let meanD = sumD.sum() / Float(c)
            let meanDX = sumDX.sum() / Float(c)
            let s = rstd[r]
            forEachChunk16(0..<c) { i, lanes in
                let d = loadLanes(dy + i, lanes) * loadLanes(weight + i, lanes)
                var v = s * (d - meanD - inputs.normalized(r, i, lanes) * meanDX)
                if accumulate { v += loadLanes(dx + i, lanes) }
                storeLanes(v, dx + i, lanes)
            }
        }
    }
}

/// RMSNorm dInput = rstd·d − x·rstd³·mean(d·x) with d = dOut·weight, for a block of rows.
struct RMSNormInputGradient: ParallelRangeJob {
    let inputs: NormBackwardInputs
    let dInput: FloatPointer
    let accumulate: Bool

    func run(_ block: Range<Int>) {
        let c = inputs.width
        let (weight, input) = (inputs.weight, inputs.input)
        for r in block {
            let x = input + r * c
            let dy = inputs.dOutput + r * c
            let dx = dInput + r * c
            let s = inputs.rstd[r]
            var sumDX = Vec16()
            forEachChunk16(0..<c) { i, lanes in
                sumDX.addProduct(loadLanes(dy + i, lanes) * loadLanes(weight + i, lanes), loadLanes(x + i, lanes))
            }
            let s3 = s * s * s * sumDX.sum() / Float(c)
            forEachChunk16(0..<c) { i, lanes in
                let d = loadLanes(dy + i, lanes) * loadLanes(weight + i, lanes)
                var v = s * d - loadLanes(x + i, lanes) * s3
                if accumulate { v += loadLanes(dx + i, lanes) }
                storeLanes(v, dx + i, lanes)
            }
        }
    }
}

/// dWeight += Σ_rows dOut·x̂ and dBias += Σ_rows dOut, for a range of channels.
struct NormParameterGradient: ParallelRangeJob {
    let inputs: NormBackwardInputs
    let dWeight: FloatPointer, dBias: FloatPointer?

    func run(_ channels: Range<Int>) {
        let c = inputs.width
        forEachChunk16(channels) { i, lanes in
            var dw = Vec16()
            var db = Vec16()
            for r in 0..<inputs.rows {
                let dy = loadLanes(inputs.dOutput + r * c + i, lanes)
                dw.addProduct(dy, inputs.normalized(r, i, lanes))
                db += dy
            }
            storeLanes(loadLanes(dWeight + i, lanes) + dw, dWeight + i, lanes)
            if let dBias { storeLanes(loadLanes(dBias + i, lanes) + db, dBias + i, lanes) }
        }
    }
}
