// `fledge eval`: validation loss, perplexity and bits per byte of one or several checkpoints on prepared
// data or a raw text file; with --prompts, every prompt's completion from each checkpoint side by side (a
// small regression benchmark between runs).

import ArgumentParser
import FledgeKit
import Foundation

struct EvalCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "eval", abstract: "Evaluate checkpoints on data and compare their completions of prompts.")

    @Argument(help: "Runs or checkpoint folders (a run means its final/, else latest/).") var checkpoints: [String]
    @Option(help: "A prepared folder: evaluates its validation split.") var data: String?
    @Option(help: "Which split of --data.") var split = "validation"
    @Option(help: "A raw text file to evaluate instead.") var text: String?
    @Option(help: "Prompts: a text file (one per line, \\n for newlines) or JSONL with \"prompt\".") var prompts:
        String?
    @Option(help: "Tokens per completion.") var tokens = 60
    @Option(help: "Sampling temperature (0 = greedy, the default for comparisons).") var temperature: Float = 0
    @Option(help: "Sequences per batch.") var batchSize = 8
    @Option(help: "Batches to evaluate (default: all).") var batches: Int?
    @OptionGroup var threading: ThreadOptions

    func validate() throws {
        guard !checkpoints.isEmpty else { throw ValidationError("name at least one run or checkpoint.") }
        guard data != nil || text != nil || prompts != nil else {
            throw ValidationError("give --data, --text or --prompts (or several).")
        }
        guard data == nil || text == nil else { throw ValidationError("give --data or --text, not both.") }
        try checkRange("--tokens", tokens, 1...1_000_000)
        try checkRange("--batch-size", batchSize, 1...4096)
        if let batches { try checkRange("--batches", batches, 1...1_000_000_000) }
        guard temperature.isFinite, temperature >= 0 else {
            throw ValidationError("--temperature must be 0 (greedy) or a positive number (got \(temperature)).")
        }
    }

    func run() throws {
        do {
            let backend = CPUBackend(threadCount: threading.count)
            let loaded = try checkpoints.map { try RunCheckpoint.loadForInference($0, backend: backend) }
            if data != nil || text != nil {
                print("checkpoint                                         loss   perplexity   bits/byte   tokens")
                let dataset = try data.map { try PreparedDataset(URL(fileURLWithPath: $0)) }
                for (folder, model, tokenizer) in loaded {
                    let name = folder.path
                    let stream: TokenStream
                    if let dataset {
                        try dataset.check(tokenizer: tokenizer, name: "\(name)/tokenizer.json")
                        stream = try dataset.stream(split)
                    } else {
                        stream = try Evaluator.stream(
                            ofText: URL(fileURLWithPath: text!), tokenizer: tokenizer,
                            scratch: FileManager.default.temporaryDirectory)
                    }
                    let T = model.config.contextLength
                    let evaluator = try Evaluator(
                        model: model, stream: stream, batchSize: batchSize, sequenceLength: T,
                        batches: batches ?? Int.max, split: data == nil ? "text" : split)
                    let e = try evaluator.evaluate(model)
                    print(
                        String(
                            format: "%@ %8.4f %12.2f %11.4f %8d",
                            name.padding(toLength: 48, withPad: " ", startingAt: 0),
                            e.loss, e.perplexity, e.bitsPerByte, e.tokens))
                }
            }
            if let prompts {
                var sampling = SamplingConfig.samples
                sampling.temperature = temperature
                let generators = try loaded.map(inferenceGenerator)
                for prompt in try readPrompts(prompts, option: "--prompts") {
                    print("\n=== \(prompt.debugDescription)")
                    for (generator, checkpoint) in zip(generators, loaded) {
                        let completion = try generator.sample(prompt, tokens: tokens, sampling: sampling)
                        print("--- \(checkpoint.folder.path)\n\(prompt)\(completion)")
                    }
                }
            }
        } catch { exitWithError(error) }
    }
}
