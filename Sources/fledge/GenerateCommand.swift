// `fledge generate` and `fledge chat`: text from a checkpoint with every sampler and constraint of
// FledgeGeneration. Shared option groups parse the sampling settings; the library validates them.

import ArgumentParser
import FledgeKit
import Foundation

/// The library's sampling defaults, which the options take (each lives in SamplingConfig alone).
private let samplingDefaults = SamplingConfig()

/// Sampling flags shared by generate and chat.
struct SamplingOptions: ParsableArguments {
    @Option(help: "Most tokens to generate (capped by the context length).") var tokens = 200
    @Option(help: "Sampling temperature; 0 = greedy.") var temperature = samplingDefaults.temperature
    @Option(help: "Keep the K most likely tokens, or 'off'.") var topK = samplingDefaults.topK.map(String.init) ?? "off"
    @Option(help: "Nucleus sampling: keep the most likely tokens up to this probability mass (1 = off).")
    var topP = samplingDefaults.topP
    @Option(help: "Keep tokens at least this fraction as likely as the best (0 = off).") var minP = samplingDefaults
        .minP
    @Option(help: "CTRL repetition penalty on tokens already present (1 = off).") var repetitionPenalty =
        samplingDefaults.repetitionPenalty
    @Option(help: "Subtract this × the count of each generated token.") var frequencyPenalty = samplingDefaults
        .frequencyPenalty
    @Option(help: "Subtract this from each token already generated.") var presencePenalty = samplingDefaults
        .presencePenalty
    @Option(help: "Never repeat an n-gram of this size (0 = off).") var noRepeatNgram = samplingDefaults.noRepeatNGram
    @Option(help: "Random seed (default: a fresh one, printed so the run can be repeated).") var seed: UInt64?
    @Option(help: "Stop before this text (repeatable; \\n is a newline).") var stop: [String] = []

    func generationOptions() throws -> GenerationOptions {
        try checkRange("--tokens", tokens, 1...1_000_000)
        try checkRange("--no-repeat-ngram", noRepeatNgram, 0...1024)
        var o = GenerationOptions()
        o.maxTokens = tokens
        o.stopStrings = stop.map(unescaped)
        var s = SamplingConfig()
        s.temperature = temperature
        if topK == "off" {
            s.topK = nil
        } else {
            guard let k = Int(topK) else { throw ValidationError("--top-k takes a count or 'off', not '\(topK)'.") }
            s.topK = k
        }
        (s.topP, s.minP, s.repetitionPenalty) = (topP, minP, repetitionPenalty)
        (s.frequencyPenalty, s.presencePenalty, s.noRepeatNGram, s.seed) =
            (frequencyPenalty, presencePenalty, noRepeatNgram, seed)
        try s.validate()
        o.sampling = s
        return o
    }
}

struct GenerateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "generate", abstract: "Generate text from a checkpoint (streamed; several prompts run as a batch)."
    )

    @Argument(help: "A run (its final/, else latest/) or a checkpoint folder.") var checkpoint: String
    @Option(help: "Text to continue (repeatable: several prompts run as one batch; \\n is a newline).") var prompt:
        [String] = []
    @Option(help: "A file of prompts, one per line (\\n for newlines), or JSONL with \"prompt\".") var promptFile:
        String?
    @OptionGroup var sampling: SamplingOptions
    @Option(help: "Never produce this word (repeatable).") var ban: [String] = []
    @Option(help: "Produce only the tokens of these words (repeatable; the end-of-sequence token stays allowed).")
    var allow: [String] = []
    @Flag(help: "Pilish: the letter counts of the words follow the digits of π.") var pilish = false
    @Flag(help: "Keep generating past the end-of-sequence token.") var ignoreEos = false
    @OptionGroup var threading: ThreadOptions

    func run() throws {
        do {
            var prompts = prompt.map(unescaped)
            if let promptFile { prompts += try readPrompts(promptFile, option: "--prompt-file") }
            guard !prompts.isEmpty else {
                throw ValidationError("give a prompt: --prompt TEXT (repeatable) or --prompt-file FILE.")
            }
            var options = try sampling.generationOptions()
            options.stopAtEndOfSequence = !ignoreEos
            let loaded = try RunCheckpoint.loadForInference(
                checkpoint, backend: CPUBackend(threadCount: threading.count))
            let generator = try inferenceGenerator(loaded)
            var processors: [any LogitsProcessor] = []
            if !ban.isEmpty { processors.append(BannedSequences(words: ban, tokenizer: loaded.tokenizer)) }
            if !allow.isEmpty {
                var ids = Set<Int32>()
                for word in allow { for spelling in [word, " " + word] { ids.formUnion(generator.encode(spelling)) } }
                if let eos = generator.endOfSequence { ids.insert(eos) }
                processors.append(AllowedTokens(tokens: ids.sorted()))
            }
            if pilish {
                processors.append(
                    try PilishConstraint(tokenizer: loaded.tokenizer, endOfSequence: generator.endOfSequence))
            }
            let ids = prompts.map(generator.encode)
            try generator.validate(prompts: ids, options: options)  // before the prompt is echoed
            if ids.count == 1 {
                say(prompts[0], terminator: "")
                let result = try generator.generate(prompt: ids[0], options: options, processors: processors) {
                    say($0, terminator: "")
                }
                say("")
                report(result)
            } else {
                let results = try generator.generate(prompts: ids, options: options, processors: processors)
                for (prompt, result) in zip(prompts, results) {
                    say("=== \(prompt.debugDescription)\n\(prompt)\(result.text)")
                    report(result)
                }
            }
        } catch let error as ValidationError {
            throw error
        } catch { exitWithError(error) }
    }

    func report(_ r: GenerationResult) {
        let reason: String
        switch r.finishReason {
        case .endOfSequence: reason = "end of sequence"
        case .stopString: reason = "stop string"
        case .length: reason = "token limit"
        case .context: reason = "the context window is full (prompt + output reached the model's context length)"
        case .noAllowedToken: reason = "no token satisfies the constraints"
        case .cancelled: reason = "cancelled"
        }
        note(
            String(
                format: "[%d prompt tokens, %d generated, first token %.0f ms, %.1f tokens/s, seed %llu; stopped: %@]",
                r.promptTokens, r.tokens.count, r.timeToFirstToken * 1000, r.decodeTokensPerSecond, r.seed,
                reason as NSString))
    }
}

struct ChatCLI: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "chat",
        abstract: "Chat with a checkpoint fine-tuned on questions and answers (at a terminal or through a pipe).")

    @Argument(help: "A run (its final/, else latest/) or a checkpoint folder.") var checkpoint: String
    @OptionGroup var sampling: SamplingOptions
    @OptionGroup var threading: ThreadOptions

    func run() throws {
        do {
            var options = try sampling.generationOptions()
            options.stopAtEndOfSequence = true
            let loaded = try RunCheckpoint.loadForInference(
                checkpoint, backend: CPUBackend(threadCount: threading.count))
            let format = try RunCheckpoint.loadFormat(loaded.folder)
            let generator = try Generator(
                model: loaded.model, tokenizer: loaded.tokenizer, format: format ?? SequenceFormat())
            let session = try ChatSession(generator: generator, format: format ?? SequenceFormat(), options: options)
            let interactive = isatty(0) != 0
            if interactive {
                say(
                    "Chatting with \(loaded.folder.path) (\(loaded.model.parameterCount) parameters, context \(generator.contextLength) tokens). /help for commands, /quit to leave."
                )
            }
            if format?.questionAnswerData != true {
                note(
                    "note: \(loaded.folder.path) was not fine-tuned on question/answer pairs\(format == nil ? " (it has no \(RunCheckpoint.formatFile))" : ""), so it has learned no way to answer: each message is wrapped in the template \((format ?? SequenceFormat()).questionAnswerTemplate.debugDescription) and the model continues the text until its end-of-sequence token or the token limit. For real replies, fine-tune it on Q&A data first (`make demo` makes runs/demo/chat that way)."
                )
            }
            ChatConsole(session: session, showPrompt: interactive).run(
                readLine: { Swift.readLine(strippingNewline: true) }, write: { say($0, terminator: "") })
        } catch let error as ValidationError {
            throw error
        } catch { exitWithError(error) }
    }
}

/// A line on standard error (statistics and notes stay out of piped output).
func note(_ text: String) {
    FileHandle.standardError.write(Data((text + "\n").utf8))
}

/// A generator for a loaded checkpoint that ends and begins sequences as its training data did (the EOS and
/// BOS of sequence-format.json; checkpoints without one use the default names).
func inferenceGenerator(_ loaded: (folder: URL, model: GPT, tokenizer: any Tokenizer)) throws -> Generator {
    let format = try RunCheckpoint.loadFormat(loaded.folder) ?? SequenceFormat()
    return try Generator(model: loaded.model, tokenizer: loaded.tokenizer, format: format)
}
