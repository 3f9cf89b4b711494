// Shared helpers for FledgeData tests: a scratch folder per test and a small tokenizer trained once (both from
// FledgeTestSupport), and paragraphs of the bundled corpus.

import FledgeData
import FledgeTestSupport
import FledgeTokenizer
import Foundation

enum DataFixtures {
    static let root = TestCorpus.root
    static let shakespeare = TestCorpus.shakespeare

    /// A byte-level BPE (vocabulary 512, special tokens <pad> <unk> <bos> <eos>) trained on a slice of Shakespeare.
    static let tokenizer = TestCorpus.bpe(vocabularySize: 512, text: TestCorpus.shakespeareText(prefix: 100_000))

    /// A fresh empty folder under the temporary directory, removed when the test process exits.
    static func scratch(_ name: String = #function) -> URL { ScratchFolder.make("data-tests", name) }

    /// Writes `text` to `name` in `folder`.
    @discardableResult
    static func write(_ text: String, _ name: String, in folder: URL) -> URL {
        let url = folder.appendingPathComponent(name)
        try! FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        try! Data(text.utf8).write(to: url)
        return url
    }

    /// Paragraphs of the bundled corpus (blank-line separated), from `start`.
    static func paragraphs(_ count: Int, from start: Int = 0) -> [String] {
        let text = String(decoding: try! Data(contentsOf: shakespeare), as: UTF8.self)
        return Array(text.components(separatedBy: "\n\n").filter { $0.count > 80 }[start..<start + count])
    }

    /// Runs a preparation of `sources` with `configure` applied; returns the manifest and output folder.
    static func prepare(
        _ sources: [SourceSpec], in folder: URL, tokenizer: any Tokenizer = DataFixtures.tokenizer,
        _ configure: (inout PreparationConfig) -> Void = { _ in }
    ) throws -> (DataManifest, URL) {
        var config = PreparationConfig()
        config.sources = sources
        config.shardTokens = 5_000
        configure(&config)
        let output = folder.appendingPathComponent("prepared")
        let manifest = try DataPreparer(config: config, tokenizer: tokenizer, threads: 2).run(output: output)
        return (manifest, output)
    }

    /// documents.jsonl as dictionaries.
    static func documentList(_ output: URL) throws -> [[String: Any]] {
        let text = try String(contentsOf: output.appendingPathComponent("documents.jsonl"), encoding: .utf8)
        return try text.split(separator: "\n").map {
            try JSONSerialization.jsonObject(with: Data($0.utf8)) as! [String: Any]
        }
    }
}
