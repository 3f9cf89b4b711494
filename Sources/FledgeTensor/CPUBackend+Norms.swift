// CPUBackend+Norms: LayerNorm and RMSNorm, forward and backward, parallel over rows.
// Parameter gradients are reduced in a second pass where each thread owns a range of channels, so the
// result does not depend on the thread count (llm.c reduces them the same way per channel).

extension CPUBackend {
    public func layerNorm(
        output: FloatPointer, mean: FloatPointer, rstd: FloatPointer, input: ConstFloatPointer,
        weight: ConstFloatPointer, bias: ConstFloatPointer?, rows: Int, width: Int, epsilon: Float
    ) {
        let c = width
        pool.parallelFor(rows, minimumPerThread: 4) { block in
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

    public func layerNormBackward(
        dInput: FloatPointer, accumulate: Bool, dWeight: FloatPointer, dBias: FloatPointer?,
        dOutput: ConstFloatPointer, input: ConstFloatPointer, weight: ConstFloatPointer,
        mean: ConstFloatPointer, rstd: ConstFloatPointer, rows: Int, width: Int
    ) {
        let c = width
        pool.parallelFor(rows, minimumPerThread: 4) { block in
            for r in block {
                let x = input + r * c
                let dy = dOutput + r * c
                let dx = dInput + r * c
                let (m, s) = (mean[r], rstd[r])
                var sumD = Vec16()
                var sumDX = Vec16()
                forEachChunk16(0..<c) { i, lanes in
                    let d = loadLanes(dy + i, lanes) * loadLanes(weight + i, lanes)
                    sumD += d
                    sumDX.addProduct(d, (loadLanes(x + i, lanes) - m) * s)
                }
                let meanD = sumD.sum() / Float(c)
                let meanDX = sumDX.sum() / Float(c)
                forEachChunk16(0..<c) { i, lanes in
                    let normalized = (loadLanes(x + i, lanes) - m) * s
                    let d = loadLanes(dy + i, lanes) * loadLanes(weight + i, lanes)
                    var v = s * (d - meanD - normalized * meanDX)
                    if accumulate { v += loadLanes(dx + i, lanes) }
                    storeLanes(v, dx + i, lanes)
                }
            }
        }
        pool.parallelFor(c, alignment: 16, minimumPerThread: 32) { channels in
            forEachChunk16(channels) { i, lanes in
                var dw = Vec16()
                var db = Vec16()
                for r in 0..<rows {
                    let dy = loadLanes(dOutput + r * c + i, lanes)
                    dw.addProduct(dy, (loadLanes(input + r * c + i, lanes) - mean[r]) * rstd[r])
                    db += dy
                }
                storeLanes(loadLanes(dWeight + i, lanes) + dw, dWeight + i, lanes)
                if let dBias { storeLanes(loadLanes(dBias + i, lanes) + db, dBias + i, lanes) }
            }
        }
    }

    public func rmsNorm(
        output: FloatPointer, rstd: FloatPointer, input: ConstFloatPointer, weight: ConstFloatPointer,
        rows: Int, width: Int, epsilon: Float
    ) {
        let c = width
        pool.parallelFor(rows, minimumPerThread: 4) { block in
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

    public func rmsNormBackward(
        dInput: FloatPointer, accumulate: Bool, dWeight: FloatPointer, dOutput: ConstFloatPointer,
        input: ConstFloatPointer, weight: ConstFloatPointer, rstd: ConstFloatPointer, rows: Int, width: Int
    ) {
        let c = width
        pool.parallelFor(rows, minimumPerThread: 4) { block in
            for r in block {
                let x = input + r * c
                let dy = dOutput + r * c
                let dx = dInput + r * c
                let s = rstd[r]
                var sumDX = Vec16()
                forEachChunk16(0..<c) { i, lanes in
                    sumDX.addProduct(loadLanes(dy + i, lanes) * loadLanes(weight + i, lanes), loadLanes(x + i, lanes))
                }
                let meanDX = sumDX.sum() / Float(c)
                let s3 = s * s * s * meanDX
                forEachChunk16(0..<c) { i, lanes in
                    let d = loadLanes(dy + i, lanes) * loadLanes(weight + i, lanes)
                    var v = s * d - loadLanes(x + i, lanes) * s3
                    if accumulate { v += loadLanes(dx + i, lanes) }
                    storeLanes(v, dx + i, lanes)
                }
            }
        }
        pool.parallelFor(c, alignment: 16, minimumPerThread: 32) { channels in
            forEachChunk16(channels) { i, lanes in
                var dw = Vec16()
                for r in 0..<rows {
                    dw.addProduct(loadLanes(dOutput + r * c + i, lanes), loadLanes(input + r * c + i, lanes) * rstd[r])
                }
                storeLanes(loadLanes(dWeight + i, lanes) + dw, dWeight + i, lanes)
            }
        }
    }
}
