// Shards and the loader: header round trip (uint16 and uint32, masks), damaged shards refused with a
// message, batches deterministic per seed, resume from a stored position identical to an uninterrupted run,
// windows that cross shard boundaries, and the loss mask turned into ignored targets.

import FledgeData
import FledgeTokenizer
import Foundation
import Testing

struct ShardAndLoaderTests {
    @Test(arguments: [ShardKind.tokens16, .tokens32, .mask])
    func shardHeaderRoundTrips(kind: ShardKind) throws {
        let folder = DataFixtures.scratch()
        let top: Int32 = kind == .tokens32 ? 100_000 : kind == .tokens16 ? 65_535 : 1
        let values: [Int32] = (0..<1000).map { Int32($0 * 7919) % (top + 1) }
        let url = folder.appendingPathComponent("s.bin")
        try ShardWriter.write(values, kind: kind, to: url)
        let data = try Data(contentsOf: url)
        #expect(data.count == 1024 + 1000 * kind.elementSize)
        let header = data.withUnsafeBytes { Array($0.bindMemory(to: Int32.self).prefix(3)) }
        #expect(header == [kind.header.magic, kind.header.version, 1000])
        let shard = try TokenShard(url, expect: [kind])
        #expect(shard.count == 1000)
        #expect((0..<1000).map { shard[$0] } == values)
        #expect(shard.maximum() == values.max())
    }

    @Test func damagedShardsAreRefusedWithTheFix() throws {
        let folder = DataFixtures.scratch()
        let url = folder.appendingPathComponent("s.bin")
        try ShardWriter.write([1, 2, 3, 4], kind: .tokens16, to: url)
        var data = try Data(contentsOf: url)
        func expectError(_ bytes: Data, _ fragment: String) {
            try! bytes.write(to: url)
            do {
                _ = try TokenShard(url)
                Issue.record("no error for \(fragment)")
            } catch let error as DataError {
                #expect(error.message.contains(fragment), "\(error)")
                #expect(error.hint.contains("fledge data prepare"))
            } catch { Issue.record("\(error)") }
        }
        expectError(data.prefix(1000), "shorter than its 1024-byte header")
        expectError(data.dropLast(), "header says 4 tokens")
        data[0] = 7
        expectError(data, "magic")
        #expect(throws: DataError.self) { try TokenShard(folder.appendingPathComponent("missing.bin")) }
    }

    /// A prepared folder with several shards (small shard size) from Shakespeare paragraphs.
    func prepared(_ name: String = #function, shardTokens: Int = 700) throws -> PreparedDataset {
        let folder = DataFixtures.scratch(name)
        let file = DataFixtures.write(DataFixtures.paragraphs(150).joined(separator: "\n\n"), "a.txt", in: folder)
        let (_, output) = try DataFixtures.prepare([SourceSpec(name: "a", path: file.path)], in: folder) {
            $0.input.boundary = .blankLine
            $0.shardTokens = shardTokens
        }
        return try PreparedDataset(output)
    }

    func batches(_ loader: DataLoader, _ count: Int) -> [[Int32]] {
        var inputs = [Int32](repeating: 0, count: loader.batchSize * loader.sequenceLength)
        var targets = inputs
        return (0..<count).map { _ in
            loader.next(inputs: &inputs, targets: &targets)
            return inputs + targets
        }
    }

    @Test func loaderIsDeterministicAndResumesExactly() throws {
        let dataset = try prepared()
        let stream = try dataset.stream("train")
        #expect(stream.shards.count > 5)
        let make = { (position: LoaderPosition) in
            try DataLoader(
                stream: stream, batchSize: 4, sequenceLength: 32, order: .random, seed: 7, position: position)
        }
        let straight = try make(LoaderPosition())
        let epoch = straight.batchesPerEpoch
        let total = epoch * 2 + 3  // run through two epoch boundaries
        let expected = batches(straight, total)
        #expect(batches(try make(LoaderPosition()), total) == expected)
        for cut in [1, epoch - 1, epoch, epoch + 2] {
            let first = try make(LoaderPosition())
            let head = batches(first, cut)
            let resumed = try make(first.position)  // all a checkpoint stores
            #expect(head + batches(resumed, total - cut) == expected, "resume after \(cut) batches")
        }
        let otherSeed = try DataLoader(stream: stream, batchSize: 4, sequenceLength: 32, order: .random, seed: 8)
        #expect(batches(otherSeed, 3) != Array(expected.prefix(3)))
        // The position round-trips through JSON (trainer-state.json).
        let data = try JSONEncoder().encode(straight.position)
        #expect(try JSONDecoder().decode(LoaderPosition.self, from: data) == straight.position)
    }

    @Test func windowsAreTheStreamInOrderAcrossShards() throws {
        let dataset = try prepared()
        let stream = try dataset.stream("train")
        var all = [Int32]()
        for shard in stream.shards { all += (0..<shard.count).map { shard[$0] } }
        #expect(all.count == stream.count)
        let T = 50
        let loader = try DataLoader(stream: stream, batchSize: 3, sequenceLength: T, order: .sequential, seed: 0)
        var inputs = [Int32](repeating: 0, count: 3 * T)
        var targets = inputs
        for batch in 0..<loader.batchesPerEpoch {
            loader.next(inputs: &inputs, targets: &targets)
            for b in 0..<3 {
                let start = (batch * 3 + b) * T
                #expect(Array(inputs[b * T..<(b + 1) * T]) == Array(all[start..<start + T]))
                #expect(Array(targets[b * T..<(b + 1) * T]) == Array(all[start + 1..<start + T + 1]))
            }
        }
        // A random epoch visits every window exactly once.
        let random = try DataLoader(stream: stream, batchSize: 1, sequenceLength: T, order: .random, seed: 3)
        var windowIndex: [[Int32]: Int] = [:]
        for k in 0..<random.windowsPerEpoch { windowIndex[Array(all[k * T..<k * T + T])] = k }
        var one = [Int32](repeating: 0, count: T)
        var oneTargets = one
        var seen: [Int] = []
        for _ in 0..<random.windowsPerEpoch {
            random.next(inputs: &one, targets: &oneTargets)
            seen.append(windowIndex[one] ?? -1)
        }
        #expect(seen.sorted() == Array(0..<random.windowsPerEpoch))
        #expect(seen != Array(0..<random.windowsPerEpoch))
    }

    @Test func tooLittleDataForABatchIsAClearError() throws {
        let dataset = try prepared()
        let stream = try dataset.stream("validation")
        do {
            _ = try DataLoader(
                stream: stream, batchSize: 64, sequenceLength: 256, order: .sequential, seed: 0, split: "validation")
            Issue.record("no error")
        } catch let error as DataError {
            #expect(error.message.contains("validation split has \(stream.count) tokens"))
            #expect(error.hint.contains("--batch-size"))
        }
    }
}

struct HashTests {
    @Test func sha256MatchesFIPSVectors() {
        #expect(SHA256.hex([UInt8]()) == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        #expect(SHA256.hex(Array("abc".utf8)) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        let long = Array("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq".utf8)
        #expect(SHA256.hex(long) == "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1")
        // Incremental updates across block boundaries give the same digest.
        let million = [UInt8](repeating: UInt8(ascii: "a"), count: 1_000_000)
        var hash = SHA256()
        for start in stride(from: 0, to: million.count, by: 999) {
            hash.update(Array(million[start..<min(start + 999, million.count)]))
        }
        #expect(hash.finalizeHex() == "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0")
    }

    @Test func contentHashSeparatesTextsAndIsStable() {
        #expect(ContentHash(Array("hello".utf8)) == ContentHash(Array("hello".utf8)))
        var seen = Set<ContentHash>()
        for i in 0..<20_000 { seen.insert(ContentHash(Array("document \(i)".utf8))) }
        #expect(seen.count == 20_000)
        #expect(ContentHash(Array("abcdefgh".utf8)) != ContentHash(Array("abcdefgh\0".utf8)))
        // The split side is a uniform number: about 5% of many hashes fall below 0.05.
        let below = seen.filter { $0.unitInterval < 0.05 }.count
        #expect(below > 850 && below < 1150)
    }

    @Test func recordedFactsAreVerifiedWithACheapPathForUnchangedData() throws {
        let folder = DataFixtures.scratch()
        let text = DataFixtures.write(DataFixtures.paragraphs(80).joined(separator: "\n\n"), "a.txt", in: folder)
        var config = PreparationConfig()
        config.sources = [SourceSpec(name: "a", path: text.path)]
        config.input.boundary = .blankLine
        let output = folder.appendingPathComponent("prepared")
        _ = try DataPreparer(config: config, tokenizer: DataFixtures.tokenizer, threads: 2).run(output: output)
        let dataset = try PreparedDataset(output)
        #expect(try ShardVerification.verify(dataset))  // first time: reads every byte
        #expect(try !ShardVerification.verify(dataset))  // unchanged: only the stamp
        // One token changed, its hash left as it was: caught, even though size and header still agree.
        let shard = output.appendingPathComponent("train_000000.bin")
        var bytes = try Data(contentsOf: shard)
        bytes[1030] ^= 1
        try bytes.write(to: shard)
        #expect(throws: DataError.self) { try ShardVerification.verify(dataset) }
        // A tokenizer.json swapped after preparation is refused.
        bytes[1030] ^= 1
        try bytes.write(to: shard)
        #expect(try ShardVerification.verify(dataset))
        let other = try BPETrainer(config: BPETrainingConfig(vocabularySize: 300)).train(texts: ["other text"])
        try TokenizerJSON.write(other, to: output.appendingPathComponent("tokenizer.json"))
        do {
            _ = try dataset.tokenizer()
            Issue.record("a swapped tokenizer loaded")
        } catch let error as DataError {
            #expect(error.message.contains("the shards were made with the tokenizer"))
        }
    }

    /// Regression: a preparer kept its documents between runs, so a second `run` added the corpus twice.
    @Test func aSecondRunOfOnePreparerGivesTheSameData() throws {
        let folder = DataFixtures.scratch()
        defer { try? FileManager.default.removeItem(at: folder) }
        let text = DataFixtures.write(DataFixtures.paragraphs(40).joined(separator: "\n\n"), "a.txt", in: folder)
        var config = PreparationConfig()
        config.sources = [SourceSpec(name: "a", path: text.path)]
        config.input.boundary = .blankLine
        let preparer = DataPreparer(config: config, tokenizer: DataFixtures.tokenizer, threads: 2)
        let first = try preparer.run(output: folder.appendingPathComponent("first"))
        let second = try preparer.run(output: folder.appendingPathComponent("second"))
        for split in ["train", "validation"] {
            #expect(first.splits[split]?.documents == second.splits[split]?.documents, "\(split)")
            #expect(first.splits[split]?.tokens == second.splits[split]?.tokens, "\(split)")
        }
        #expect(first.stages.map(\.documentsOut) == second.stages.map(\.documentsOut))
    }
}
