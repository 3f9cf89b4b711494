// CPUBackend+Embedding: token (+ position) embedding lookup and its backward, and rotary positions.
// The embedding backward is a scatter-add; threads own channel ranges so repeated tokens never race.

extension CPUBackend {
    public func embedding(
        output: FloatPointer, tokens: UnsafePointer<Int32>, tokenTable: ConstFloatPointer,
        positionTable: ConstFloatPointer?, batchSize: Int, sequenceLength: Int, width: Int, positionOffset: Int
    ) {
        let c = width
        pool.parallelFor(batchSize * sequenceLength, minimumPerThread: 16) { block in
            for row in block {
                let out = output + row * c
                let wte = tokenTable + Int(tokens[row]) * c
                if let positionTable {
                    let wpe = positionTable + (positionOffset + row % sequenceLength) * c
                    forEachChunk16(0..<c) { i, lanes in
                        storeLanes(loadLanes(wte + i, lanes) + loadLanes(wpe + i, lanes), out + i, lanes)
                    }
                } else {
                    out.update(from: wte, count: c)
                }
            }
        }
    }

    public func embeddingBackward(
        dTokenTable: FloatPointer, dPositionTable: FloatPointer?, dOutput: ConstFloatPointer,
        tokens: UnsafePointer<Int32>, batchSize: Int, sequenceLength: Int, width: Int
    ) {
        let c = width
        let rows = batchSize * sequenceLength
        pool.parallelFor(c, alignment: 16, minimumPerThread: 16) { channels in
            for row in 0..<rows {
                let dOut = dOutput + row * c
                let dwte = dTokenTable + Int(tokens[row]) * c
                forEachChunk16(channels) { i, lanes in
                    storeLanes(loadLanes(dwte + i, lanes) + loadLanes(dOut + i, lanes), dwte + i, lanes)
                }
                if let dPositionTable {
                    let dwpe = dPositionTable + (row % sequenceLength) * c
                    forEachChunk16(channels) { i, lanes in
                        storeLanes(loadLanes(dwpe + i, lanes) + loadLanes(dOut + i, lanes), dwpe + i, lanes)
                    }
                }
            }
        }
    }

    public func rotary(
        data: FloatPointer, cos: ConstFloatPointer, sin: ConstFloatPointer, batchSize: Int, sequenceLength: Int,
        heads: Int, headSize: Int, rowStride: Int, batchStride: Int, positionOffset: Int, inverse: Bool
    ) {
        let half = headSize / 2
        let sign: Float = inverse ? -1 : 1
        pool.parallelFor(batchSize * sequenceLength, minimumPerThread: 8) { block in
            for row in block {
                let (b, t) = row.quotientAndRemainder(dividingBy: sequenceLength)
                let cosRow = cos + (positionOffset + t) * half
                let sinRow = sin + (positionOffset + t) * half
                for h in 0..<heads {
                    let x = data + b * batchStride + t * rowStride + h * headSize
                    forEachChunk16(0..<half) { i, lanes in
                        let c = loadLanes(cosRow + i, lanes)
                        let s = loadLanes(sinRow + i, lanes) * sign
                        let x1 = loadLanes(x + i, lanes)
                        let x2 = loadLanes(x + half + i, lanes)
                        storeLanes(x1 * c - x2 * s, x + i, lanes)
                        storeLanes(x2 * c + x1 * s, x + half + i, lanes)
                    }
                }
            }
        }
    }
}
