// CPUBackend+Embedding: token (+ position) embedding lookup and its backward, and rotary positions.
// The embedding backward is a scatter-add; threads own channel ranges so repeated tokens never race.

extension CPUBackend {
    public func embedding(
        output: FloatPointer, tokens: UnsafePointer<Int32>, tokenTable: ConstFloatPointer,
        positionTable: ConstFloatPointer?, batchSize: Int, sequenceLength: Int, width: Int, positionOffset: Int
    ) {
        let job = EmbeddingRows(
            output: output, tokens: tokens, tokenTable: tokenTable, positionTable: positionTable,
            sequenceLength: sequenceLength, width: width, positionOffset: positionOffset)
        pool.parallelFor(batchSize * sequenceLength, minimumPerThread: 16, job)
    }

    public func embeddingBackward(
        dTokenTable: FloatPointer, dPositionTable: FloatPointer?, dOutput: ConstFloatPointer,
        tokens: UnsafePointer<Int32>, batchSize: Int, sequenceLength: Int, width: Int
    ) {
        let job = EmbeddingGradientChannels(
            dTokenTable: dTokenTable, dPositionTable: dPositionTable, dOutput: dOutput, tokens: tokens,
            rows: batchSize * sequenceLength, sequenceLength: sequenceLength, width: width)
        pool.parallelFor(width, alignment: 16, minimumPerThread: 16, job)
    }

    public func rotary(
        data: FloatPointer, cos: ConstFloatPointer, sin: ConstFloatPointer, batchSize: Int, sequenceLength: Int,
        heads: Int, headSize: Int, rowStride: Int, batchStride: Int, positionOffset: Int, inverse: Bool
    ) {
        let job = RotaryRows(
            data: data, cos: cos, sin: sin, sequenceLength: sequenceLength, heads: heads, headSize: headSize,
            rowStride: rowStride, batchStride: batchStride, positionOffset: positionOffset, sign: inverse ? -1 : 1)
        pool.parallelFor(batchSize * sequenceLength, minimumPerThread: 8, job)
    }
}

/// out[row] = tokenTable[token] (+ positionTable[position]) for a block of (b, t) rows.
struct EmbeddingRows: ParallelRangeJob {
    let output: FloatPointer, tokens: UnsafePointer<Int32>, tokenTable: ConstFloatPointer
    let positionTable: ConstFloatPointer?
    let sequenceLength: Int, width: Int, positionOffset: Int

    func run(_ block: Range<Int>) {
        let c = width
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

/// dTokenTable[token] += dOut[row] (and dPositionTable[t] += dOut[row]) over all rows, for a channel range.
struct EmbeddingGradientChannels: ParallelRangeJob {
    let dTokenTable: FloatPointer, dPositionTable: FloatPointer?, dOutput: ConstFloatPointer
    let tokens: UnsafePointer<Int32>
    let rows: Int, sequenceLength: Int, width: Int

    func run(_ channels: Range<Int>) {
        let c = width
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

/// Rotates the pairs (i, i + HS/2) of every head in a block of (b, t) rows by ±angle(position, i).
struct RotaryRows: ParallelRangeJob {
    let data: FloatPointer, cos: ConstFloatPointer, sin: ConstFloatPointer
    let sequenceLength: Int, heads: Int, headSize: Int, rowStride: Int, batchStride: Int, positionOffset: Int
    let sign: Float

    func run(_ block: Range<Int>) {
        let half = headSize / 2
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
