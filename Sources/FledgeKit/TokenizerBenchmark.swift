// TokenizerBenchmark: what `fledge bench tokenizer` measures — BPE training time on a file, encoding
// throughput with a given vocabulary (one thread, and a batch over all threads), and the compression of the
// trained vocabulary on held-out text. Scripts/bench_tokenizers.py measures HF tokenizers and tiktoken on
// the same files in the same run.

import FledgeTokenizer
import Foundation

/// The measurements of one benchmark run.
public struct TokenizerBenchmarkResult: Codable, Sendable {
    public let trainingSeconds: [Double]
    public let trainingMedianSeconds: Double
    public let trainedVocabularySize: Int
    public let heldOutBytesPerToken: Double
    public let encodeMBPerSecondOneThread: Double
    public let encodeMBPerSecondBatch: Double
    public let encodedTokens: Int
}

/// Runs the tokenizer benchmark.
public enum TokenizerBenchmark {
    public static func run(
        trainingFile: URL, heldOutFile: URL, encodeFile: URL, encoder: BPETokenizer, vocabularySize: Int, threads: Int,
        rounds: Int, savingTrainedTo output: URL?
    ) throws -> TokenizerBenchmarkResult {
        var config = BPETrainingConfig(vocabularySize: vocabularySize)
        config.threads = threads
        var times: [Double] = []
        var trained: BPETokenizer?
        for _ in 0..<rounds {
            let start = Date()
            trained = try BPETrainer(config: config).train(files: [trainingFile])
            times.append(Date().timeIntervalSince(start))
        }
        if let output { try TokenizerJSON.write(trained!, to: output) }
        let heldOut = try Array(Data(contentsOf: heldOutFile))
        let heldOutTokens = trained!.encode(bytes: heldOut).count
        let text = try Array(Data(contentsOf: encodeFile))
        let megabytes = Double(text.count) / 1e6
        var oneThread: [Double] = []
        var batch: [Double] = []
        var tokens = 0
        let pieces = BPETokenizer.splitAtLines(text, parts: 16 * threads)
        for _ in 0..<rounds {
            var start = Date()
            tokens = encoder.encode(bytes: text).count
            oneThread.append(megabytes / Date().timeIntervalSince(start))
            start = Date()
            _ = encoder.encodeBatch(pieces, threads: threads)
            batch.append(megabytes / Date().timeIntervalSince(start))
        }
        func median(_ values: [Double]) -> Double { values.sorted()[values.count / 2] }
        return TokenizerBenchmarkResult(
            trainingSeconds: times, trainingMedianSeconds: median(times),
            trainedVocabularySize: trained!.vocabularySize,
            heldOutBytesPerToken: Double(heldOut.count) / Double(heldOutTokens),
            encodeMBPerSecondOneThread: median(oneThread),
            encodeMBPerSecondBatch: median(batch), encodedTokens: tokens)
    }
}
