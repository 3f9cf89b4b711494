// Streaming preparation: documents flow through in batches and files are read in blocks, and neither may
// change the result. A corpus with exact and near duplicates far apart (so that the document a near duplicate
// repeats is in an earlier batch, its signature on disk), text cut at every boundary, JSONL, question/answer
// JSONL and Parquet is prepared with the default sizes and with tiny ones; the shards, documents.jsonl and the
// manifest's counts must be identical. A file that grows while it is read is refused.

import FledgeData
import FledgeTestSupport
import Foundation
import Testing

struct StreamingTests {
    /// A folder of inputs: paragraphs with an exact copy and an edited copy of earlier ones further on.
    func corpus(in folder: URL) throws -> URL {
        let input = folder.appendingPathComponent("in")
        var paragraphs = DataFixtures.paragraphs(240)
        for k in stride(from: 0, to: 60, by: 7) {
            paragraphs.append(paragraphs[k])  // an exact duplicate
            paragraphs.append(paragraphs[k + 1].uppercased() + "!")  // a near duplicate (case and punctuation)
        }
        DataFixtures.write(paragraphs.joined(separator: "\n\n") + "\n", "text.txt", in: input)
        DataFixtures.write(paragraphs[0..<50].joined(separator: "<|endoftext|>"), "pieces.sep", in: input)
        let lines = paragraphs[100..<180].map { paragraph -> String in
            let data = try! JSONSerialization.data(withJSONObject: ["text": paragraph])
            return String(decoding: data, as: UTF8.self)
        }
        DataFixtures.write(lines.joined(separator: "\n") + "\n", "records.jsonl", in: input)
        let pairs = (0..<60).map { i -> String in
            let data = try! JSONSerialization.data(withJSONObject: [
                "question": "What is line \(i)?", "answer": paragraphs[i].prefix(120).description,
            ])
            return String(decoding: data, as: UTF8.self)
        }
        DataFixtures.write(pairs.joined(separator: "\n"), "qa/pairs.jsonl", in: folder)
        let parquet = DataFixtures.root.appendingPathComponent(
            "Tests/FledgeDataTests/Fixtures/parquet/hub-train-00000-of-00002.parquet")
        try FileManager.default.copyItem(at: parquet, to: input.appendingPathComponent("hub.parquet"))
        return input
    }

    /// Shard and documents.jsonl bytes, and the manifest without times and dates.
    func result(_ output: URL, _ manifest: DataManifest) throws -> [String: Data] {
        var files: [String: Data] = [:]
        for name in try FileManager.default.contentsOfDirectory(atPath: output.path)
        where name.hasSuffix(".bin") || name == "documents.jsonl" {
            files[name] = try Data(contentsOf: output.appendingPathComponent(name))
        }
        var copy = manifest
        (copy.created, copy.seconds) = ("", 0)
        for i in copy.stages.indices { copy.stages[i].seconds = 0 }
        for s in copy.sources.indices {
            for f in copy.sources[s].files.indices { copy.sources[s].files[f].modified = "" }
        }
        files["manifest"] = try copy.jsonData()
        return files
    }

    @Test(.tags(.slow), .skippedInQuickRuns, arguments: [DocumentBoundary.blankLine, .line, .separator, .file])
    func batchesAndBlocksDoNotChangeTheResult(boundary: DocumentBoundary) throws {
        let folder = DataFixtures.scratch("streaming-\(boundary.rawValue)")
        let input = try corpus(in: folder)
        var results: [[String: Data]] = []
        for (batch, block) in [(8 << 20, 4 << 20), (3_000, 97)] {
            var config = PreparationConfig()
            config.sources = [
                SourceSpec(name: "mixed", path: input.path, weight: 0.7),
                SourceSpec(name: "qa", path: folder.appendingPathComponent("qa").path, weight: 0.3),
            ]
            config.input.boundary = boundary
            config.input.separator = "<|endoftext|>"
            config.shardTokens = 7_000
            config.mix = .upsample
            let preparer = DataPreparer(config: config, tokenizer: DataFixtures.tokenizer, threads: 2)
            (preparer.batchBytes, preparer.readBlockBytes) = (batch, block)
            let output = folder.appendingPathComponent("out-\(batch)")
            let manifest = try preparer.run(output: output)
            results.append(try result(output, manifest))
            #expect(!FileManager.default.fileExists(atPath: output.appendingPathComponent("work").path))
            if boundary == .blankLine {
                let stages = Dictionary(uniqueKeysWithValues: manifest.stages.map { ($0.stage, $0) })
                #expect((stages["exact-dedup"]?.removed["duplicate"] ?? 0) >= 9)
                #expect((stages["near-dedup"]?.removed["near_duplicate"] ?? 0) >= 9)
            }
        }
        #expect(results[0].keys.sorted() == results[1].keys.sorted())
        for (name, data) in results[0] { #expect(results[1][name] == data, "\(name) differs") }
    }

    @Test func aFileThatGrowsWhileItIsReadIsRefused() throws {
        let folder = DataFixtures.scratch()
        let file = DataFixtures.write(
            DataFixtures.paragraphs(200).joined(separator: "\n\n"), "growing.txt", in: folder)
        var config = PreparationConfig()
        config.sources = [SourceSpec(name: "growing", path: file.path)]
        config.input.boundary = .blankLine
        let preparer = DataPreparer(config: config, tokenizer: DataFixtures.tokenizer, threads: 2)
        (preparer.batchBytes, preparer.readBlockBytes) = (2_000, 1_000)
        var appended = false
        preparer.progress = { progress in
            guard !appended, progress.stage == "read", progress.done > 0 else { return }
            appended = true
            let handle = try! FileHandle(forWritingTo: file)
            handle.seekToEndOfFile()
            handle.write(Data("\n\nA paragraph written while the file was read.\n".utf8))
            try! handle.close()
        }
        let output = folder.appendingPathComponent("prepared")
        do {
            _ = try preparer.run(output: output)
            Issue.record("a file that changed while it was read was prepared")
        } catch let error as DataError {
            #expect(error.description.contains("growing.txt changed while it was read"), "\(error)")
        }
        #expect(appended)
        #expect(!FileManager.default.fileExists(atPath: output.path))
        let leftovers = try FileManager.default.contentsOfDirectory(atPath: folder.path).filter { $0.contains("tmp-") }
        #expect(leftovers.isEmpty)
    }
}

struct InterruptedPreparationTests {
    /// Three text files, the last one with a line that is not JSON (as JSONL): the run stops there.
    func inputs(in folder: URL, brokenLast: Bool) -> URL {
        let input = folder.appendingPathComponent("in")
        let paragraphs = DataFixtures.paragraphs(150)
        DataFixtures.write(paragraphs[0..<60].joined(separator: "\n\n"), "a.txt", in: input)
        DataFixtures.write((paragraphs[50..<100] + paragraphs[0..<5]).joined(separator: "\n\n"), "b.txt", in: input)
        let lines = paragraphs[100..<150].map { paragraph -> String in
            String(decoding: try! JSONSerialization.data(withJSONObject: ["text": paragraph]), as: UTF8.self)
        }
        DataFixtures.write((lines + (brokenLast ? ["{not json"] : [])).joined(separator: "\n"), "c.jsonl", in: input)
        return input
    }

    func preparer(_ input: URL, valFraction: Double = 0.05) -> DataPreparer {
        var config = PreparationConfig()
        config.sources = [SourceSpec(name: "text", path: input.path)]
        config.input.boundary = .blankLine
        config.split.validationFraction = valFraction
        config.shardTokens = 4_000
        let preparer = DataPreparer(config: config, tokenizer: DataFixtures.tokenizer, threads: 2)
        (preparer.batchBytes, preparer.checkpointSeconds) = (5_000, 0)
        return preparer
    }

    @Test(.tags(.slow), .skippedInQuickRuns) func aRerunContinuesFromTheFilesAFailedRunCompleted() throws {
        let folder = DataFixtures.scratch()
        let input = inputs(in: folder, brokenLast: true)
        let output = folder.appendingPathComponent("prepared")
        let work = DataPreparer.workFolder(for: output)
        #expect(throws: DataError.self) { _ = try preparer(input).run(output: output) }
        #expect(!FileManager.default.fileExists(atPath: output.path))
        #expect(FileManager.default.fileExists(atPath: work.appendingPathComponent("progress.json").path))

        // Fixed: the rerun takes a.txt and b.txt from the work folder and reads only c.jsonl.
        _ = inputs(in: folder, brokenLast: false)
        let rerun = preparer(input)
        let continued = try rerun.run(output: output)
        #expect(rerun.reused.files == 2)
        #expect(!FileManager.default.fileExists(atPath: work.path))

        // The same as a run from nothing.
        let fresh = folder.appendingPathComponent("fresh")
        let freshRun = preparer(input)
        let reference = try freshRun.run(output: fresh)
        #expect(freshRun.reused.files == 0)
        let streaming = StreamingTests()
        let (a, b) = (try streaming.result(output, continued), try streaming.result(fresh, reference))
        #expect(a.keys.sorted() == b.keys.sorted())
        for (name, data) in b where name != "manifest" { #expect(a[name] == data, "\(name) differs") }
        #expect(continued.stages.map(\.documentsOut) == reference.stages.map(\.documentsOut))
        #expect(continued.nearDuplicates.examples == reference.nearDuplicates.examples)
        #expect(continued.sources.map(\.files.count) == reference.sources.map(\.files.count))
    }

    /// A stop asked at each point where the run looks (as after Ctrl-C): the run throws
    /// `PreparationInterrupted`, leaves no output and no temporary folder, keeps the work folder only with a
    /// checkpoint, and the same run afterwards makes what a run from nothing makes.
    @Test(.tags(.slow), .skippedInQuickRuns) func aStopAskedAtAnyPointLeavesNothingHalfWritten() throws {
        let folder = DataFixtures.scratch()
        let input = inputs(in: folder, brokenLast: false)
        let fresh = folder.appendingPathComponent("fresh")
        let reference = try preparer(input).run(output: fresh)
        var looks = 0
        let counting = preparer(input)
        counting.shouldStop = {
            looks += 1
            return false
        }
        _ = try counting.run(output: folder.appendingPathComponent("counted"))
        #expect(looks > 5)
        let streaming = StreamingTests()
        for stopAt in [1, 2, looks / 2, looks - 1, looks] {
            let output = folder.appendingPathComponent("stopped-\(stopAt)")
            let stopping = preparer(input)
            var asked = 0
            stopping.shouldStop = {
                asked += 1
                return asked >= stopAt
            }
            #expect(throws: PreparationInterrupted.self) { _ = try stopping.run(output: output) }
            let left = try FileManager.default.contentsOfDirectory(atPath: folder.path).filter {
                $0.hasPrefix(".stopped-\(stopAt).") && !$0.hasSuffix(".partial")
            }
            #expect(left.isEmpty, "left \(left) after a stop at look \(stopAt)")
            #expect(!FileManager.default.fileExists(atPath: output.path))
            let work = DataPreparer.workFolder(for: output)
            if FileManager.default.fileExists(atPath: work.path) {
                #expect(FileManager.default.fileExists(atPath: work.appendingPathComponent("progress.json").path))
            }
            let rerun = preparer(input)
            let manifest = try rerun.run(output: output)
            let (a, b) = (try streaming.result(output, manifest), try streaming.result(fresh, reference))
            for (name, data) in b where name != "manifest" { #expect(a[name] == data, "\(name) differs") }
            #expect(!FileManager.default.fileExists(atPath: work.path))
        }
    }

    @Test(.tags(.slow), .skippedInQuickRuns) func workFromOtherSettingsOrChangedFilesIsNotReused() throws {
        let folder = DataFixtures.scratch()
        let input = inputs(in: folder, brokenLast: true)
        let output = folder.appendingPathComponent("prepared")
        #expect(throws: DataError.self) { _ = try preparer(input).run(output: output) }
        // Another split setting still reuses the pass (it only shapes what is written afterwards).
        #expect(throws: DataError.self) { _ = try preparer(input, valFraction: 0.2).run(output: output) }
        // A changed first file: nothing is reused.
        _ = inputs(in: folder, brokenLast: false)
        DataFixtures.write(DataFixtures.paragraphs(60, from: 200).joined(separator: "\n\n"), "a.txt", in: input)
        let rerun = preparer(input)
        _ = try rerun.run(output: output)
        #expect(rerun.reused.files == 0)
        // Other cleaning settings: nothing is reused.
        #expect(throws: DataError.self) {
            _ = try preparer(inputs(in: folder, brokenLast: true)).run(output: folder.appendingPathComponent("other"))
        }
        let other = preparer(inputs(in: folder, brokenLast: false))
        var config = other.config
        config.minCharacters = 50
        let changed = DataPreparer(config: config, tokenizer: DataFixtures.tokenizer, threads: 2)
        _ = try changed.run(output: folder.appendingPathComponent("other"))
        #expect(changed.reused.files == 0)
    }
}
