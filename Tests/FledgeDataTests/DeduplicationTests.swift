// Duplicates: exact duplicates (after cleaning) and near duplicates (MinHash + LSH) are removed keeping the
// first; documents that merely share a theme are kept apart; detection follows the Jaccard threshold.

import FledgeData
import FledgeTestSupport
import Foundation
import Testing

struct DeduplicationTests {
    /// The true Jaccard similarity of two texts' shingle sets.
    func jaccard(_ a: String, _ b: String, hasher: MinHasher) -> Double {
        let x = Set(hasher.shingles(Array(a.utf8)))
        let y = Set(hasher.shingles(Array(b.utf8)))
        return Double(x.intersection(y).count) / Double(x.union(y).count)
    }

    /// `text` with every `every`-th word replaced.
    func edit(_ text: String, every: Int, seed: Int) -> String {
        text.split(separator: " ").enumerated().map { i, word in
            (i + seed) % every == 0 ? "w\(i * 7919 % 1000)x" : String(word)
        }.joined(separator: " ")
    }

    @Test(.tags(.slow), .skippedInQuickRuns) func signaturesEstimateJaccard() {
        let hasher = MinHasher(NearDuplicateConfig())
        let base = DataFixtures.paragraphs(1, from: 40)[0] + " " + DataFixtures.paragraphs(1, from: 41)[0]
        for every in [3, 8, 30] {
            let other = edit(base, every: every, seed: 1)
            var a = [UInt32](repeating: 0, count: 128)
            var b = [UInt32](repeating: 0, count: 128)
            _ = a.withUnsafeMutableBufferPointer { hasher.signature(of: Array(base.utf8), into: $0) }
            _ = b.withUnsafeMutableBufferPointer { hasher.signature(of: Array(other.utf8), into: $0) }
            let estimate = a.withUnsafeBufferPointer { a in
                b.withUnsafeBufferPointer { NearDuplicateIndex.similarity(a, $0) }
            }
            let truth = jaccard(base, other, hasher: hasher)
            // 128 hash functions: standard error ≤ sqrt(J(1-J)/128) ≤ 0.045; allow 3 of them.
            #expect(abs(estimate - truth) < 0.14, "every \(every): estimate \(estimate) truth \(truth)")
        }
    }

    @Test func bandingIsTunedToTheThreshold() {
        var config = NearDuplicateConfig()
        let (bands, rows) = config.banding
        #expect(bands * rows <= 128)
        // The S-curve's midpoint (1/b)^(1/r) sits near the threshold.
        #expect(abs(pow(1 / Double(bands), 1 / Double(rows)) - 0.8) < 0.1)
        config.threshold = 0.5
        let (b2, r2) = config.banding
        #expect(abs(pow(1 / Double(b2), 1 / Double(r2)) - 0.5) < 0.1)
    }

    @Test func exactAndNearDuplicatesAreRemovedKeepingTheFirst() throws {
        let folder = DataFixtures.scratch()
        let originals = DataFixtures.paragraphs(60, from: 200)
        let hasher = MinHasher(NearDuplicateConfig())
        var documents = originals
        // Exact duplicates that differ only in what cleaning normalises.
        documents.append(originals[3].replacingOccurrences(of: "\n", with: "\r\n") + "   \n\n")
        documents.append(originals[7])
        // Near duplicates (a few words changed) and a far edit that must stay.
        let near = edit(originals[10] + " " + originals[11], every: 60, seed: 3)
        let far = edit(originals[12] + " " + originals[13], every: 3, seed: 1)
        documents[10] = originals[10] + " " + originals[11]
        documents[12] = originals[12] + " " + originals[13]
        documents += [near, far]
        #expect(jaccard(documents[10], near, hasher: hasher) > 0.8)
        #expect(jaccard(documents[12], far, hasher: hasher) < 0.3)
        DataFixtures.write(documents.joined(separator: "\n\n\n"), "corpus.txt", in: folder)
        let (manifest, output) = try DataFixtures.prepare(
            [SourceSpec(name: "plays", path: folder.appendingPathComponent("corpus.txt").path)], in: folder
        ) { $0.input.boundary = .blankLine }
        let list = try DataFixtures.documentList(output)
        let byStatus = Dictionary(grouping: list) { $0["status"] as! String }
        #expect(byStatus["duplicate"]?.count == 2)
        #expect(byStatus["near_duplicate"]?.count == 1)
        // The later copy is the one removed, and it names the first.
        func hash(_ text: String) -> String {
            ContentHash(TextCleaner(CleaningConfig()).clean(Array(text.utf8)).bytes!).hex
        }
        let nearRecord = byStatus["near_duplicate"]![0]
        #expect(nearRecord["hash"] as? String == hash(near))
        let first = list.first { $0["id"] as? String == nearRecord["duplicate_of"] as? String }
        #expect(first?["hash"] as? String == hash(documents[10]))
        #expect(first?["status"] as? String == "kept")
        #expect(manifest.nearDuplicates.clusters == 1)
        #expect(manifest.stages.first { $0.stage == "exact-dedup" }?.removed["duplicate"] == 2)
        #expect(list.filter { $0["status"] as? String == "kept" }.count == documents.count - 3)
    }

    @Test func nearDuplicateDetectionFollowsTheThreshold() {
        // Pairs at known similarities: ≥ 0.9 are found, ≤ 0.6 never are.
        let texts = DataFixtures.paragraphs(80, from: 300)
        let hasher = MinHasher(NearDuplicateConfig())
        var found = (high: 0, highTotal: 0, low: 0)
        for (k, pair) in stride(from: 0, to: 78, by: 2).enumerated() {
            let base = texts[pair] + " " + texts[pair + 1]
            let other = edit(base, every: k % 2 == 0 ? 100 : 4, seed: k)
            let similarity = jaccard(base, other, hasher: hasher)
            var signatures = [UInt32](repeating: 0, count: 256)
            signatures.withUnsafeMutableBufferPointer { all in
                _ = hasher.signature(of: Array(base.utf8), into: UnsafeMutableBufferPointer(rebasing: all[0..<128]))
                _ = hasher.signature(of: Array(other.utf8), into: UnsafeMutableBufferPointer(rebasing: all[128..<256]))
            }
            var index = NearDuplicateIndex(NearDuplicateConfig())
            let match = signatures.withUnsafeBufferPointer { all -> Int? in
                let signature = { (i: Int) in UnsafeBufferPointer(rebasing: all[i * 128..<(i + 1) * 128]) }
                let candidate = { (i: Int, out: UnsafeMutableBufferPointer<UInt32>) in
                    _ = out.initialize(from: signature(i))
                }
                _ = index.check(signature(0), id: 0, candidate: candidate)
                return index.check(signature(1), id: 1, candidate: candidate)
            }
            if similarity >= 0.9 {
                found.highTotal += 1
                if match == 0 { found.high += 1 }
            } else if similarity <= 0.6, match != nil {
                found.low += 1
            }
        }
        #expect(found.highTotal >= 15)
        #expect(found.high >= found.highTotal - 1, "\(found)")
        #expect(found.low == 0)
    }
}
