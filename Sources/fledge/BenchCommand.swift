// `fledge bench train`: time full training steps on the reference configurations; prints a table and, last,
// one JSON line. Scripts/bench_train.py runs it side by side with Scripts/bench_pytorch.py.

import ArgumentParser
import FledgeKit
import Foundation

struct BenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench", abstract: "Benchmarks.", subcommands: [Train.self, TokenizerBench.self])

    struct Train: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Time training steps (forward, backward, clipping, AdamW) of the reference configurations.")

        @Option(help: "Configurations to run: a, b, c (comma-separated).") var configs = "a,b,c"
        @Option(help: "Timed steps per configuration.") var steps = 10
        @Option(help: "Untimed warm-up steps.") var warmup = 2
        @OptionGroup var threading: ThreadOptions

        func run() throws {
            let names = configs.split(separator: ",").map(String.init)
            let shapes = try names.map { name in
                guard let shape = BenchmarkShape.reference.first(where: { $0.name == name }) else {
                    throw ValidationError("unknown configuration '\(name)'; use a, b or c.")
                }
                return shape
            }
            let backend = CPUBackend(threadCount: threading.threads)
            print("fledge bench train: \(threading.threads) threads, BLAS \(BLAS.libraryName.prefix(40)), fp32")
            print("config  params      tokens/step  ms/step(median)  tokens/s   GFLOP/s  peak RSS MB  allocs/step")
            var results: [BenchmarkResult] = []
            for shape in shapes {
                let r: BenchmarkResult
                do {
                    r = try TrainStepBenchmark.run(shape: shape, backend: backend, steps: steps, warmup: warmup)
                } catch { exitWithError(error) }
                results.append(r)
                let allocations = r.allocationsPerStep.map { String(format: "%.1f", $0) } ?? "-"
                print(
                    String(
                        format: "%-6@  %-10d  %11d  %15.1f  %8.0f  %8.1f  %11.0f  %11@", r.name as NSString,
                        r.parameters,
                        r.tokensPerStep, r.medianMilliseconds, r.tokensPerSecond, r.gflopsPerSecond, r.peakRSSMegabytes,
                        allocations as NSString))
            }
            let json = try JSONEncoder().encode(["fledge": results])
            print(String(decoding: json, as: UTF8.self))
        }
    }

    struct TokenizerBench: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "tokenizer",
            abstract: "Time BPE training and encoding; report compression on held-out text (table + JSON line).")

        @Option(help: "Text to train on (~10 MB).") var train: String
        @Option(help: "Held-out text for compression.") var heldOut: String
        @Option(help: "Text to encode (default: the training text).") var encode: String?
        @Option(help: "Vocabulary for encoding: tokenizer.json, .tiktoken, or gpt2.") var tokenizer = "gpt2"
        @Option(help: "Vocabulary size to train.") var vocabSize = 8192
        @Option(help: "Repetitions (medians are reported).") var rounds = 3
        @Option(help: "Write the trained tokenizer.json here.") var output: String?
        @OptionGroup var threading: ThreadOptions

        func run() throws {
            do {
                let r = try TokenizerBenchmark.run(
                    trainingFile: URL(fileURLWithPath: train), heldOutFile: URL(fileURLWithPath: heldOut),
                    encodeFile: URL(fileURLWithPath: encode ?? train), encoder: try loadTokenizer(tokenizer),
                    vocabularySize: vocabSize, threads: threading.threads, rounds: rounds,
                    savingTrainedTo: output.map { URL(fileURLWithPath: $0) })
                print("fledge bench tokenizer: \(threading.threads) threads, median of \(rounds)")
                print(
                    String(
                        format: "train BPE (vocab %d)        %8.2f s", r.trainedVocabularySize, r.trainingMedianSeconds)
                )
                print(String(format: "held-out bytes per token      %8.3f", r.heldOutBytesPerToken))
                print(String(format: "encode, 1 thread              %8.1f MB/s", r.encodeMBPerSecondOneThread))
                print(
                    String(
                        format: "encode, batch (%d threads)     %8.1f MB/s", threading.threads, r.encodeMBPerSecondBatch
                    ))
                print(String(decoding: try JSONEncoder().encode(["fledge": r]), as: UTF8.self))
            } catch { exitWithError(error) }
        }
    }
}
