// Inputs and question/answer data: folders with globs, JSONL text fields, document boundaries, Q&A pairs
// (JSON array and JSONL) wrapped in the template with a loss mask on the answer only; bad input (JSON lines
// that do not parse, missing fields, nothing left after filtering, a mismatched tokenizer, an existing output)
// gets a message naming the file and line and the fix.

import FledgeData
import FledgeTokenizer
import Foundation
import Testing

struct InputAndQATests {
    func expectError(_ fragments: [String], _ body: () throws -> Void) {
        do {
            try body()
            Issue.record("no error; expected \(fragments)")
        } catch let error as DataError {
            for fragment in fragments { #expect(error.description.contains(fragment), "\(error)") }
        } catch { Issue.record("unexpected \(error)") }
    }

    @Test func foldersAreWalkedWithGlobsAndBoundariesCutDocuments() throws {
        let folder = DataFixtures.scratch()
        DataFixtures.write("first file\nsecond line", "in/a.txt", in: folder)
        DataFixtures.write("nested file one<|endoftext|>nested file two", "in/deep/b.txt", in: folder)
        DataFixtures.write("ignored", "in/c.md", in: folder)
        DataFixtures.write("hidden", "in/.d.txt", in: folder)
        var reader = DocumentReader(InputConfig())
        var input = InputConfig()
        input.include = ["*.txt"]
        reader = DocumentReader(input)
        let files = try reader.files(of: folder.appendingPathComponent("in").path)
        #expect(files.map(\.lastPathComponent) == ["a.txt", "b.txt"])
        var documents: [Document] = []
        input.boundary = .separator
        reader = DocumentReader(input)
        _ = try reader.read(files[1], source: 0, file: 1, into: &documents)
        #expect(documents.map { String(decoding: $0.text, as: UTF8.self) } == ["nested file one", "nested file two"])
        input.boundary = .line
        reader = DocumentReader(input)
        documents = []
        _ = try reader.read(files[0], source: 0, file: 0, into: &documents)
        #expect(documents.map(\.ordinal) == [1, 2])
        input.include = ["*.rst"]
        expectError(["holds no files matching *.rst", "--include"]) {
            _ = try DocumentReader(input).files(of: folder.appendingPathComponent("in").path)
        }
        expectError(["does not exist"]) { _ = try DocumentReader(input).files(of: "/no/such/place") }
    }

    @Test func jsonlTextFieldAndBadLines() throws {
        let folder = DataFixtures.scratch()
        let good = DataFixtures.write(
            "{\"text\": \"one\", \"id\": 1}\n\n{\"text\": \"two\"}\n", "good.jsonl", in: folder)
        var documents: [Document] = []
        var reader = DocumentReader(InputConfig())
        _ = try reader.read(good, source: 0, file: 0, into: &documents)
        #expect(documents.map { String(decoding: $0.text, as: UTF8.self) } == ["one", "two"])
        #expect(documents.map(\.ordinal) == [1, 3])

        let bad = DataFixtures.write(
            "{\"text\": \"one\"}\n{not json\n{\"body\": \"x\"}\n{\"text\": \"four\"}\n", "bad.jsonl", in: folder)
        expectError(["bad.jsonl, line 2 is not a JSON object", "--on-bad-record skip"]) {
            var reader = DocumentReader(InputConfig())
            var documents: [Document] = []
            _ = try reader.read(bad, source: 0, file: 0, into: &documents)
        }
        var skipping = InputConfig()
        skipping.onBadRecord = .skip
        reader = DocumentReader(skipping)
        documents = []
        _ = try reader.read(bad, source: 0, file: 0, into: &documents)
        #expect(documents.count == 2)
        #expect(reader.skippedRecords == 2)
        #expect(reader.skipReasons[1].contains("line 3 has no field \"text\" (fields: body)"))
        #expect(reader.skipCounts == ["not a JSON object": 1, "no field \"text\"": 1])
        // The manifest and the summary say how many were skipped and why.
        let (manifest, _) = try DataFixtures.prepare([SourceSpec(name: "bad", path: bad.path)], in: folder) {
            $0.input.onBadRecord = .skip
            $0.split.validationTokens = 1
        }
        #expect(manifest.skippedRecords == 2)
        #expect(manifest.skipped?.reasons == ["not a JSON object": 1, "no field \"text\"": 1])
        #expect(manifest.skipped?.examples.first?.hasSuffix("bad.jsonl, line 2 is not a JSON object") == true)
        #expect(manifest.summary().contains("skipped 2 bad records: 1 no field \"text\", 1 not a JSON object"))
        var other = InputConfig()
        other.textField = "body"
        other.format = .jsonl
        expectError(["line 1 has no field \"body\" (fields: text)", "--text-field"]) {
            var reader = DocumentReader(other)
            var documents: [Document] = []
            _ = try reader.read(bad, source: 0, file: 0, into: &documents)
        }
    }

    @Test func questionAnswerPairsGetTheTemplateAndAnAnswerOnlyMask() throws {
        let folder = DataFixtures.scratch()
        var lines: [String] = []
        for i in 0..<60 {
            lines.append(
                "{\"question\": \"What is \(i) plus one?\", \"answer\": \"It is \(i + 1), my lord.\", \"source\": \"x\"}"
            )
        }
        let jsonl = DataFixtures.write(lines.joined(separator: "\n"), "qa.jsonl", in: folder)
        let array = DataFixtures.write(
            "[{\"question\": \"Who wrote Hamlet?\", \"answer\": \"Shakespeare.\", \"extra\": 1}]", "more.json",
            in: folder)
        let (manifest, output) = try DataFixtures.prepare(
            [SourceSpec(name: "qa", path: jsonl.path), SourceSpec(name: "more", path: array.path)], in: folder
        ) {
            $0.split.validationFraction = 0.2
            $0.removeNearDuplicates = false  // the templated questions are near duplicates by design
        }
        #expect(manifest.lossMask)
        #expect(manifest.sources.map(\.documentsRead) == [60, 1])
        let dataset = try PreparedDataset(output)
        let stream = try dataset.stream("train")
        var tokens = [Int32](repeating: 0, count: stream.count)
        var mask = tokens
        tokens.withUnsafeMutableBufferPointer { t in
            mask.withUnsafeMutableBufferPointer { m in
                stream.copy(from: 0, length: stream.count, tokens: t.baseAddress!, mask: m.baseAddress!)
            }
        }
        let tokenizer = DataFixtures.tokenizer
        let bos = tokenizer.specialTokens.id("<bos>")!
        let eos = tokenizer.specialTokens.id("<eos>")!
        #expect(tokens.first == bos)
        // Every pair: <bos>Question: …\nAnswer: (mask 0) then the answer and <eos> (mask 1).
        var start = 0
        var pairs = 0
        while start < tokens.count {
            let end = tokens[start...].firstIndex(of: eos)!
            let pair = Array(tokens[start...end])
            let pairMask = Array(mask[start...end])
            let firstTarget = pairMask.firstIndex(of: 1)!
            let prompt = try tokenizer.decode(Array(pair[1..<firstTarget]))
            let answer = try tokenizer.decode(Array(pair[firstTarget..<pair.count - 1]))
            #expect(prompt.hasPrefix("Question: ") && prompt.hasSuffix("\nAnswer: "), "\(prompt)")
            #expect(answer.hasSuffix(".") && !answer.contains("Answer"), "\(answer)")
            #expect(pairMask[firstTarget...].allSatisfy { $0 == 1 })
            #expect(pairMask.last == 1)  // the model learns to stop
            pairs += 1
            start = end + 1
        }
        #expect(pairs == manifest.splits["train"]!.documents)
        #expect(manifest.splits["train"]!.targetTokens == mask.filter { $0 == 1 }.count)
        // The loader turns mask-0 targets into the ignore index.
        let loader = try DataLoader(stream: stream, batchSize: 2, sequenceLength: 16, order: .sequential, seed: 0)
        var inputs = [Int32](repeating: 0, count: 32)
        var targets = inputs
        loader.next(inputs: &inputs, targets: &targets)
        for t in 0..<16 {
            #expect(targets[t] == (mask[t + 1] == 1 ? tokens[t + 1] : DataLoader.ignoreIndex))
        }
        // The prompt a chat builds is the template up to the answer.
        let encoder = try DocumentEncoder(tokenizer: tokenizer, format: SequenceFormat())
        var cache = MergeCache()
        #expect(
            try tokenizer.decode(encoder.prompt(question: "Who?", cache: &cache)) == "<bos>Question: Who?\nAnswer: ")
    }

    @Test func templatesAreChecked() throws {
        #expect(
            try TemplatePiece.parse("Q: {question} A: {answer}{eos}") == [
                .literal("Q: "), .question, .literal(" A: "), .answer, .eos,
            ])
        for bad in ["{answer} {question}", "only {question}", "{question}{answer}{answer}"] {
            expectError(["{question} and then {answer}", "--qa-template"]) { _ = try TemplatePiece.parse(bad) }
        }
    }

    @Test func badInputGetsAClearMessage() throws {
        let folder = DataFixtures.scratch()
        let short = DataFixtures.write("tiny\n\nsmall\n\nwee", "short.txt", in: folder)
        expectError(["every document was filtered out (too_short: 3)", "--min-chars"]) {
            _ = try DataFixtures.prepare([SourceSpec(name: "s", path: short.path)], in: folder) {
                $0.input.boundary = .blankLine
                $0.minCharacters = 10
            }
        }
        let one = DataFixtures.write(DataFixtures.paragraphs(3).joined(separator: "\n\n"), "one.txt", in: folder)
        expectError(["the split left", "--split-on blank-line"]) {
            _ = try DataFixtures.prepare([SourceSpec(name: "one", path: one.path)], in: folder)
        }
        // A tokenizer without an end-of-sequence token.
        let plain = try BPETrainer(
            config: {
                var config = BPETrainingConfig(vocabularySize: 300)
                config.specialTokens = []
                return config
            }()
        ).train(texts: ["hello world"])
        expectError(["no end-of-sequence token", "--eos-token"]) {
            _ = try DataFixtures.prepare([SourceSpec(name: "one", path: one.path)], in: folder, tokenizer: plain)
        }
    }

    @Test func outputIsAtomicAndTokenizerMismatchIsCaught() throws {
        let folder = DataFixtures.scratch()
        let file = DataFixtures.write(DataFixtures.paragraphs(100).joined(separator: "\n\n"), "a.txt", in: folder)
        let (first, output) = try DataFixtures.prepare([SourceSpec(name: "a", path: file.path)], in: folder) {
            $0.input.boundary = .blankLine
        }
        expectError(["already exists", "--overwrite"]) {
            _ = try DataFixtures.prepare([SourceSpec(name: "a", path: file.path)], in: folder)
        }
        // A failing run with overwrite leaves the earlier output as it was, and no temporary folder.
        var config = PreparationConfig()
        config.sources = [SourceSpec(name: "a", path: file.path)]
        config.minCharacters = 1_000_000
        #expect(throws: DataError.self) {
            _ = try DataPreparer(config: config, tokenizer: DataFixtures.tokenizer, threads: 1).run(
                output: output, overwrite: true)
        }
        let kept = try PreparedDataset(output)
        #expect(kept.manifest.splits["train"]!.tokens == first.splits["train"]!.tokens)
        let leftovers = try FileManager.default.contentsOfDirectory(atPath: folder.path).filter { $0.hasPrefix(".") }
        #expect(leftovers.isEmpty)
        // The tokenizer the shards were made with passes; another does not.
        try kept.check(tokenizer: try kept.tokenizer(), name: "tokenizer.json")
        let other = try BPETrainer(config: BPETrainingConfig(vocabularySize: 300)).train(texts: ["other text"])
        expectError(["is not the one", "re-run `fledge data prepare`"]) {
            try kept.check(tokenizer: other, name: "other.json")
        }
        // A shard edited after preparation is caught by the manifest's count.
        let shard = output.appendingPathComponent("train_000000.bin")
        try ShardWriter.write([1, 2, 3], kind: .tokens16, to: shard)
        expectError(["holds 3 tokens but manifest.json says"]) { _ = try kept.stream("train") }
    }
}
