// Split and mix: a document's side depends only on its content (the same with sources added or reordered),
// validation shares no text with training, the mix reaches the weights by tokens, a fixed validation size
// is honoured.

import FledgeData
import FledgeTestSupport
import Foundation
import Testing

struct SplitAndMixTests {
    /// hash → split of the kept documents of a prepared folder.
    func sides(_ output: URL) throws -> [String: String] {
        var sides: [String: String] = [:]
        for record in try DataFixtures.documentList(output) where record["split"] != nil {
            sides[record["hash"] as! String] = record["split"] as? String
        }
        return sides
    }

    @Test(.tags(.slow), .skippedInQuickRuns) func splitIsDeterministicAndStableWhenSourcesAreAdded() throws {
        let folder = DataFixtures.scratch()
        let a = DataFixtures.write(DataFixtures.paragraphs(300, from: 0).joined(separator: "\n\n"), "a.txt", in: folder)
        let b = DataFixtures.write(
            DataFixtures.paragraphs(300, from: 400).joined(separator: "\n\n"), "b.txt", in: folder)
        func run(_ sources: [SourceSpec], _ name: String) throws -> [String: String] {
            let sub = folder.appendingPathComponent(name)
            try FileManager.default.createDirectory(at: sub, withIntermediateDirectories: true)
            let (manifest, output) = try DataFixtures.prepare(sources, in: sub) {
                $0.input.boundary = .blankLine
                $0.split.validationFraction = 0.1
            }
            #expect(manifest.splits["validation"]!.documents > 10)
            return try sides(output)
        }
        let alone = try run([SourceSpec(name: "a", path: a.path)], "alone")
        let again = try run([SourceSpec(name: "a", path: a.path)], "again")
        let both = try run([SourceSpec(name: "b", path: b.path), SourceSpec(name: "a", path: a.path)], "both")
        #expect(alone == again)
        for (hash, side) in alone { #expect(both[hash] == side, "document \(hash) moved") }
        let validation = alone.values.filter { $0 == "validation" }.count
        #expect(validation > 15 && validation < 50)  // 10% of 300 by hash
    }

    @Test func validationSharesNoTextWithTraining() throws {
        let folder = DataFixtures.scratch()
        var paragraphs = DataFixtures.paragraphs(200, from: 50)
        paragraphs += paragraphs.prefix(60)  // repeats must not straddle the split
        let file = DataFixtures.write(paragraphs.joined(separator: "\n\n"), "a.txt", in: folder)
        let (manifest, output) = try DataFixtures.prepare([SourceSpec(name: "a", path: file.path)], in: folder) {
            $0.input.boundary = .blankLine
            $0.split.validationFraction = 0.2
        }
        let dataset = try PreparedDataset(output)
        let tokenizer = try dataset.tokenizer()
        func text(_ split: String) throws -> Set<String> {
            let stream = try dataset.stream(split)
            var ids = [Int32](repeating: 0, count: stream.count)
            ids.withUnsafeMutableBufferPointer {
                stream.copy(from: 0, length: stream.count, tokens: $0.baseAddress!, mask: nil)
            }
            let eos = manifest.tokenizer.eosId
            return Set(
                try ids.split(separator: eos).map {
                    String(decoding: try tokenizer.decodeBytes(Array($0)), as: UTF8.self)
                })
        }
        let train = try text("train")
        let validation = try text("validation")
        #expect(train.count + validation.count == 200)
        #expect(train.isDisjoint(with: validation))
    }

    @Test(.tags(.slow), .skippedInQuickRuns) func mixReachesTheWeightsByTokens() throws {
        let folder = DataFixtures.scratch()
        let stories = DataFixtures.write(
            DataFixtures.paragraphs(400, from: 0).joined(separator: "\n\n"), "s.txt", in: folder)
        let facts = DataFixtures.write(
            DataFixtures.paragraphs(250, from: 500).joined(separator: "\n\n"), "f.txt", in: folder)
        for mode in [MixMode.downsample, .upsample] {
            let sub = folder.appendingPathComponent(mode.rawValue)
            try FileManager.default.createDirectory(at: sub, withIntermediateDirectories: true)
            let (manifest, _) = try DataFixtures.prepare(
                [
                    SourceSpec(name: "stories", path: stories.path, weight: 0.3),
                    SourceSpec(name: "facts", path: facts.path, weight: 0.7),
                ],
                in: sub
            ) {
                $0.input.boundary = .blankLine
                $0.mix = mode
            }
            let train = manifest.sources.map(\.trainTokens)
            let share = Double(train[1]) / Double(train[0] + train[1])
            #expect(abs(share - 0.7) < 0.01, "\(mode): facts share \(share)")
            #expect(manifest.splits["train"]!.tokens == train[0] + train[1])
            let read = manifest.sources.map { $0.documentsRead }
            if mode == .downsample {
                #expect(manifest.sources[1].trainDocuments <= read[1])  // nothing repeated
                #expect(manifest.sources[0].trainDocuments < read[0])  // stories cut down
            } else {
                #expect(manifest.sources[1].trainDocuments > read[1])  // facts repeated
            }
            let validation = manifest.sources.map(\.validationTokens)
            #expect(abs(Double(validation[1]) / Double(validation[0] + validation[1]) - 0.7) < 0.08)
        }
    }

    @Test func mixNoneKeepsEveryDocument() {
        let items = (0..<10).map { MixItem(source: $0 % 2, hash: ContentHash([UInt8($0)]), tokens: 10 + $0) }
        #expect(Mixer.mix(items, weights: [1, 5], mode: .none) == [Int](repeating: 1, count: 10))
        let down = Mixer.mix(items, weights: [1, 1], mode: .downsample)
        #expect(down.allSatisfy { $0 <= 1 })
    }

    @Test func fixedValidationSizeIsHonoured() throws {
        let folder = DataFixtures.scratch()
        let file = DataFixtures.write(
            DataFixtures.paragraphs(300, from: 0).joined(separator: "\n\n"), "a.txt", in: folder)
        let (manifest, _) = try DataFixtures.prepare([SourceSpec(name: "a", path: file.path)], in: folder) {
            $0.input.boundary = .blankLine
            $0.split.validationTokens = 3_000
        }
        let tokens = manifest.splits["validation"]!.tokens
        #expect(tokens >= 3_000 && tokens < 3_400, "validation tokens \(tokens)")
    }

    @Test func sourceSpecsParse() throws {
        #expect(try SourceSpec.parse("stories=data/s:0.7") == SourceSpec(name: "stories", path: "data/s", weight: 0.7))
        #expect(try SourceSpec.parse("data/wiki.txt") == SourceSpec(name: "wiki", path: "data/wiki.txt", weight: 1))
        #expect(try SourceSpec.parse("w=C:/odd:path.txt") == SourceSpec(name: "w", path: "C:/odd:path.txt", weight: 1))
        #expect(throws: DataError.self) { try SourceSpec.parse("a=data:0") }
        #expect(throws: DataError.self) { try SourceSpec.parse("a=:2") }
    }

    @Test func aDataSetsOwnValidationFileIsTheValidationSplit() throws {
        let folder = DataFixtures.scratch()
        let train = DataFixtures.write(DataFixtures.paragraphs(60).joined(separator: "\n\n"), "train.txt", in: folder)
        let valid = DataFixtures.write(
            DataFixtures.paragraphs(20, from: 200).joined(separator: "\n\n"), "valid.txt", in: folder)
        let (manifest, output) = try DataFixtures.prepare(
            [
                SourceSpec(name: "train", path: train.path),
                SourceSpec(name: "valid", path: valid.path, validationOnly: true),
            ],
            in: folder
        ) { $0.input.boundary = .blankLine }
        let kept = try DataFixtures.documentList(output).filter { $0["status"] as? String == "kept" }
        #expect(!kept.isEmpty)
        for document in kept {
            let fromValid = (document["id"] as! String).hasPrefix("valid:")
            #expect((document["split"] as? String == "validation") == fromValid, "\(document)")
        }
        #expect(manifest.sources[1].trainTokens == 0 && manifest.sources[0].validationTokens == 0)
    }
}
