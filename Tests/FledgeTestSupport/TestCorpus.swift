// TestCorpus: the package root and the bundled Shakespeare corpus that several test targets train small
// tokenizers on, in one place. Also the `slow` tag, for tests that take about a second or more alone (release
// build, 2 cores), with the trait that leaves them out of a quick run: `FLEDGE_QUICK_TESTS=1 swift test -c
// release` (Swift 6.3's `swift test` cannot filter by tag; from 6.4, `--skip tag:slow` does the same).

import FledgeTokenizer
import Foundation
import Testing

public enum TestCorpus {
    /// The package root: tests run from it under `swift test`; otherwise found from this file's location.
    public static let root: URL = {
        let here = URL(fileURLWithPath: FileManager.default.currentDirectoryPath)
        if FileManager.default.fileExists(atPath: here.appendingPathComponent("Package.swift").path) { return here }
        return URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
    }()

    /// data/shakespeare/shakespeare.txt.
    public static let shakespeare = root.appendingPathComponent("data/shakespeare/shakespeare.txt")

    /// The first `bytes` bytes of the Shakespeare corpus as text.
    public static func shakespeareText(prefix bytes: Int) -> String {
        String(decoding: try! Data(contentsOf: shakespeare).prefix(bytes), as: UTF8.self)
    }

    /// A byte-level BPE of `vocabularySize` (the special tokens <pad> <unk> <bos> <eos> included) trained on one
    /// thread on `text`: the same tokenizer for the same arguments.
    public static func bpe(vocabularySize: Int, text: String) -> BPETokenizer {
        var config = BPETrainingConfig(vocabularySize: vocabularySize)
        config.threads = 1
        return try! BPETrainer(config: config).train(texts: [text])
    }
}

extension Tag {
    /// About a second or more alone (release build, 2 cores).
    @Tag public static var slow: Self
}

extension Trait where Self == ConditionTrait {
    /// Leaves a slow test out when FLEDGE_QUICK_TESTS is set.
    public static var skippedInQuickRuns: Self {
        .disabled(
            if: ProcessInfo.processInfo.environment["FLEDGE_QUICK_TESTS"] != nil,
            "slow (about a second or more), and FLEDGE_QUICK_TESTS is set")
    }
}
