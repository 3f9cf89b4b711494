// `fledge bench train`: time full training steps on the reference configurations; prints a table and, last,
// one JSON line. Scripts/bench_train.py runs it side by side with Scripts/bench_pytorch.py.

import ArgumentParser
import FledgeKit
import Foundation

struct BenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench", abstract: "Benchmarks.",
        subcommands: [Train.self, TokenizerBench.self, GenerateBench.self, SlotsBench.self])

    /// Reference configuration `name` (a, b or c), or a clear refusal.
    static func shape(named name: String) throws -> BenchmarkShape {
        guard let shape = BenchmarkShape.reference.first(where: { $0.name == name }) else {
            throw ValidationError("unknown configuration '\(name)'; use a, b, c, d or e.")
        }
        return shape
    }

    struct Train: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Time training steps (forward, backward, clipping, AdamW) of the reference configurations.")

        @Option(
            help:
                "Configurations to run: a, b, c, and d / e (the 50m / 100m presets' shapes, context 1024; slow) (comma-separated)."
        ) var configs = "a,b,c"
        @Option(help: "Timed steps per configuration.") var steps = 10
        @Option(help: "Untimed warm-up steps.") var warmup = 2
        @OptionGroup var threading: ThreadOptions

        func validate() throws {
            try checkRange("--steps", steps, 1...100_000)
            try checkRange("--warmup", warmup, 0...100_000)
        }

        func run() throws {
            let names = configs.split(separator: ",").map(String.init)
            let shapes = try names.map(BenchCommand.shape(named:))
            let backend = CPUBackend(threadCount: threading.count)
            print("fledge bench train: \(threading.count) threads, BLAS \(BLAS.libraryName), fp32")
            print(
                "config  params      tokens/step  ms/step(median)  forward  backward  optimizer  tokens/s   GFLOP/s  of GEMM  peak RSS MB  allocs/step"
            )
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
                        format: "%@  %-10d  %11d  %15.1f  %7.1f  %8.1f  %9.1f  %8.0f  %8.1f  %6.0f%%  %11.0f  %11@",
                        r.name.padding(toLength: 6, withPad: " ", startingAt: 0) as NSString, r.parameters,
                        r.tokensPerStep, r.medianMilliseconds, r.forwardMilliseconds,
                        r.backwardMilliseconds, r.optimizerMilliseconds, r.tokensPerSecond, r.gflopsPerSecond,
                        100 * r.ceilingShare, r.peakRSSMegabytes, allocations as NSString))
            }
            let json = try JSONEncoder().encode(["fledge": results])
            print(String(decoding: json, as: UTF8.self))
        }
    }

    struct SlotsBench: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "slots",
            abstract:
                "Decode tokens/s of the server's engine (batched steps over 1, 4, 16 slots; no HTTP) on a reference configuration (table + JSON line)."
        )

        @Option(help: "Configuration: a, b or c.") var config = "b"
        @Option(help: "Slot counts (comma-separated).") var slots = "1,4,16"
        @Option(help: "Decode steps per slot count and round.") var steps = 64
        @Option(help: "Rounds (interleaved; medians are reported).") var rounds = 5
        @OptionGroup var threading: ThreadOptions

        func validate() throws {
            try checkRange("--steps", steps, 1...200)
            try checkRange("--rounds", rounds, 1...1000)
        }

        func run() throws {
            let shape = try BenchCommand.shape(named: config)
            let counts = try slots.split(separator: ",").map { part -> Int in
                guard let n = Int(part.trimmingCharacters(in: .whitespaces)), (1...256).contains(n) else {
                    throw ValidationError("--slots: '\(part)' is not a slot count between 1 and 256.")
                }
                return n
            }
            let backend = CPUBackend(threadCount: threading.count)
            let results: [SlotDecodeResult]
            do {
                results = try SlotDecodeBenchmark.run(
                    shape: shape, backend: backend, slotCounts: counts, steps: steps, rounds: rounds)
            } catch { exitWithError(error) }
            print(
                "fledge bench slots: config \(config), \(threading.count) threads, \(steps) steps, \(rounds) rounds")
            print("slots  tokens/s (median)  × one slot  prefill ms (12 tokens)")
            let one = results.first(where: { $0.slots == 1 })?.medianTokensPerSecond
            for r in results {
                let ratio = one.map { String(format: "%.2f", r.medianTokensPerSecond / $0) } ?? "-"
                print(
                    String(
                        format: "%5d  %17.1f  %10@  %22.2f", r.slots, r.medianTokensPerSecond, ratio as NSString,
                        r.medianPrefillMilliseconds))
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
        @Option(help: "Vocabulary size to train.") var vocabSize = BPETrainingConfig.defaultVocabularySize
        @Option(help: "Repetitions (medians are reported).") var rounds = 3
        @Option(help: "Write the trained tokenizer.json here.") var output: String?
        @OptionGroup var threading: ThreadOptions

        func validate() throws {
            try checkRange("--vocab-size", vocabSize, 257...TokenizerLimits.maximumVocabulary)
            try checkRange("--rounds", rounds, 1...1000)
            for (path, option) in [(train, "--train"), (heldOut, "--held-out")]
                + (encode.map { [($0, "--encode")] } ?? [])
            {
                try UserFile.requireFile(path, option)
            }
            if let output {
                try PathCheck.checkOutput(
                    output, option: "--output", inputs: [(train, "--train"), (heldOut, "--held-out")])
            }
        }

        func run() throws {
            do {
                let r = try TokenizerBenchmark.run(
                    trainingFile: URL(fileURLWithPath: train), heldOutFile: URL(fileURLWithPath: heldOut),
                    encodeFile: URL(fileURLWithPath: encode ?? train), encoder: try loadTokenizer(tokenizer),
                    vocabularySize: vocabSize, threads: threading.count, rounds: rounds,
                    savingTrainedTo: output.map { URL(fileURLWithPath: $0) })
                print("fledge bench tokenizer: \(threading.count) threads, median of \(rounds)")
                print(
                    String(
                        format: "train BPE (vocab %d)        %8.2f s", r.trainedVocabularySize, r.trainingMedianSeconds)
                )
                print(String(format: "held-out bytes per token      %8.3f", r.heldOutBytesPerToken))
                print(String(format: "encode, 1 thread              %8.1f MB/s", r.encodeMBPerSecondOneThread))
                print(
                    String(
                        format: "encode, batch (%d threads)     %8.1f MB/s", threading.count, r.encodeMBPerSecondBatch
                    ))
                print(String(decoding: try JSONEncoder().encode(["fledge": r]), as: UTF8.self))
            } catch { exitWithError(error) }
        }
    }

    struct GenerateBench: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "generate",
            abstract:
                "Batch-1 generation speed (decode tokens/s, time to first token) side by side with PyTorch (table + JSON line)."
        )

        @Option(help: "Reference configuration: a, b or c.") var config = "b"
        @Option(help: "Tokens to decode per run.") var tokens = 200
        @Option(help: "Prompt length for the time to first token.") var promptTokens = 200
        @Option(help: "Rounds (Fledge and PyTorch alternate; medians are reported).") var rounds = 3
        @Option(help: "Timed runs per round.") var repeats = 3
        @Option(help: "Text to train the benchmark's tokenizer on.") var text = "data/shakespeare/shakespeare.txt"
        @Option(help: "Python with torch for the peer (default: .venv/bin/python if present; 'none' to skip).")
        var python: String?
        @OptionGroup var threading: ThreadOptions

        func validate() throws {
            try checkRange("--tokens", tokens, 1...100_000)
            try checkRange("--prompt-tokens", promptTokens, 1...100_000)
            try checkRange("--rounds", rounds, 1...1000)
            try checkRange("--repeats", repeats, 1...1000)
            try UserFile.requireFile(text, "--text")
        }

        func run() throws {
            let shape = try BenchCommand.shape(named: config)
            let peerPython =
                python ?? (FileManager.default.fileExists(atPath: ".venv/bin/python") ? ".venv/bin/python" : "none")
            do {
                let bench = try GenerationBenchmark(
                    shape: shape, text: URL(fileURLWithPath: text), promptTokens: promptTokens, decodeTokens: tokens,
                    threads: threading.count)
                let folder = FileManager.default.temporaryDirectory.appendingPathComponent(
                    "fledge-bench-generate-\(getpid())")
                defer { try? FileManager.default.removeItem(at: folder) }
                try bench.save(to: folder)
                var fledge = GenerationBenchmarkResult()
                var peer: GenerationBenchmarkResult?
                for round in 0..<rounds {
                    var order = ["fledge", "pytorch"]
                    if round % 2 == 1 { order.reverse() }
                    for name in order {
                        if name == "fledge" {
                            fledge.append(try bench.run(repeats: repeats))
                        } else if peerPython != "none" {
                            peer = peer ?? GenerationBenchmarkResult()
                            peer!.append(try runPeer(python: peerPython, folder: folder))
                        }
                    }
                    FileHandle.standardError.write(Data("round \(round + 1)/\(rounds) done\n".utf8))
                }
                func median(_ x: [Double]) -> Double { x.isEmpty ? .nan : x.sorted()[x.count / 2] }
                let model = bench.generator.model
                print(
                    "fledge bench generate: config \(shape.name) (\(model.parameterCount) parameters, vocab \(shape.config.vocabularySize), width \(shape.config.width), \(shape.config.layers) layers), batch 1, greedy, fp32, \(threading.count) threads"
                )
                print(
                    "medians of \(rounds) rounds × \(repeats) runs; decode = \(tokens) tokens after a 16-token prompt")
                if let a = fledge.allocationsPerToken {
                    print(String(format: "fledge heap allocations per decoded token (setup included): %.1f", a))
                }
                print("peer       decode tokens/s   first token ms (\(promptTokens)-token prompt)")
                let rows = [("fledge", fledge)] + (peer.map { [("pytorch", $0)] } ?? [])
                for (name, r) in rows {
                    print(
                        String(
                            format: "%-9@  %15.1f   %14.1f", name as NSString, median(r.decodeTokensPerSecond),
                            median(r.timeToFirstTokenMilliseconds)))
                }
                var summary: [String: Double] = [
                    "fledgeDecodeTokensPerSecond": median(fledge.decodeTokensPerSecond),
                    "fledgeTimeToFirstTokenMilliseconds": median(fledge.timeToFirstTokenMilliseconds),
                ]
                if let peer {
                    let decodeRatio = median(fledge.decodeTokensPerSecond) / median(peer.decodeTokensPerSecond)
                    let firstRatio =
                        median(peer.timeToFirstTokenMilliseconds) / median(fledge.timeToFirstTokenMilliseconds)
                    let same = zip(fledge.greedyTokens, peer.greedyTokens).prefix { $0 == $1 }.count
                    print(
                        String(
                            format: "fledge/pytorch: decode %.2f×, time to first token %.2f× faster", decodeRatio,
                            firstRatio))
                    print("greedy tokens identical to PyTorch's: first \(same) of \(fledge.greedyTokens.count)")
                    summary["pytorchDecodeTokensPerSecond"] = median(peer.decodeTokensPerSecond)
                    summary["pytorchTimeToFirstTokenMilliseconds"] = median(peer.timeToFirstTokenMilliseconds)
                    summary["decodeRatio"] = decodeRatio
                    summary["timeToFirstTokenRatio"] = firstRatio
                    summary["identicalGreedyTokens"] = Double(same)
                }
                let json = try JSONEncoder().encode(summary)
                print(String(decoding: json, as: UTF8.self))
            } catch { exitWithError(error) }
        }

        func runPeer(python: String, folder: URL) throws -> GenerationBenchmarkResult {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            process.arguments = [
                python, "Scripts/bench_generate_pytorch.py", "--model", folder.path, "--tokens", "\(tokens)",
                "--repeats", "\(repeats)", "--threads", "\(threading.count)",
            ]
            let pipe = Pipe()
            process.standardOutput = pipe
            try process.run()
            let output = pipe.fileHandleForReading.readDataToEndOfFile()
            process.waitUntilExit()
            guard process.terminationStatus == 0,
                let line = String(decoding: output, as: UTF8.self).split(separator: "\n").last,
                let object = try? JSONDecoder().decode([String: GenerationBenchmarkResult].self, from: Data(line.utf8)),
                let result = object["pytorch"]
            else {
                throw ValidationError(
                    "the PyTorch peer failed (\(python) Scripts/bench_generate_pytorch.py); install torch and safetensors in a venv and pass --python, or --python none."
                )
            }
            return result
        }
    }
}
