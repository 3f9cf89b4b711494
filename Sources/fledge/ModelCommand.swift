// `fledge model`: presets, architecture facts, and writing a freshly initialised checkpoint.

import ArgumentParser
import FledgeKit
import Foundation

extension ModelPreset: ExpressibleByArgument {}

struct ModelCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "model", abstract: "Model presets and checkpoints.",
        subcommands: [Presets.self, Info.self, Init.self, Logits.self])

    struct Presets: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List the presets with their exact parameter counts.")

        func run() {
            print("preset  layers  width  heads   mlp  context  vocab   parameters  12·L·d²+V·d")
            for preset in ModelPreset.allCases {
                let c = preset.config()
                print(
                    String(
                        format: "%-6@  %6d  %5d  %5d  %4d  %7d  %5d  %11d  %11d", preset.rawValue as NSString, c.layers,
                        c.width,
                        c.heads, c.mlpWidth, c.contextLength, c.vocabularySize, c.parameterCount,
                        c.estimatedParameterCount))
            }
        }
    }

    struct Info: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Show the tensors and size of a config.json or a preset.")

        @Option(help: "A preset: \(ModelPreset.allCases.map(\.rawValue).joined(separator: ", ")).")
        var preset: ModelPreset?

        @Option(help: "A config.json file.")
        var config: String?

        func run() throws {
            let model: ModelConfig
            do {
                model = try loadConfig(preset: preset, path: config)
            } catch { exitWithError(error) }
            let layout = ParameterLayout(config: model)
            for entry in layout.entries {
                print(
                    "\(entry.name.padding(toLength: 28, withPad: " ", startingAt: 0)) \(entry.shape)  offset \(entry.offset)"
                )
            }
            print("parameters: \(layout.totalCount) (estimate 12·L·d² + V·d = \(model.estimatedParameterCount))")
        }
    }

    struct Init: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Write a freshly initialised model (config.json + model.safetensors) to a directory.")

        @Option(help: "A preset.") var preset: ModelPreset?
        @Option(help: "A config.json file.") var config: String?
        @Option(help: "Random seed for the initialisation.") var seed: UInt64 = 1337
        @Option(help: "Output directory.") var output: String
        @Flag(help: "Replace --output if it holds a model written by `fledge model init`.") var overwrite = false

        func run() throws {
            do {
                let folder = URL(fileURLWithPath: output)
                if let config { try PathCheck.checkOutput(output, option: "--output", inputs: [(config, "--config")]) }
                if UserFile.kind(output) != .missing {
                    let names = (try? FileManager.default.contentsOfDirectory(atPath: output)) ?? []
                    guard overwrite || names.isEmpty else {
                        throw ValidationError(
                            "--output \(output) already exists: pass --overwrite to replace a model `fledge model init` wrote there, or choose a new folder."
                        )
                    }
                    try OwnedOutput.checkReplaceable(folder, kind: "model", option: "--output")
                }
                let model = try GPT(config: loadConfig(preset: preset, path: config), backend: CPUBackend(), seed: seed)
                try ModelCheckpoint.save(model, to: folder)
                try OwnedOutput.mark(folder, kind: "model")
                print(
                    "wrote \(output)/config.json and \(output)/model.safetensors (\(model.parameterCount) parameters)")
            } catch { exitWithError(error) }
        }
    }
}

/// A config from `--preset` or `--config` (exactly one).
func loadConfig(preset: ModelPreset?, path: String?) throws -> ModelConfig {
    switch (preset, path) {
    case (let preset?, nil):
        return preset.config()
    case (nil, let path?):
        let data = try UserFile.read(path, "--config", limit: 1 << 20)
        return try ModelCheckpoint.parseConfig(data, path: path)
    default:
        throw ModelError("give exactly one of --preset and --config", hint: "e.g. `--preset tiny`.")
    }

}

extension ModelCommand {
    struct Logits: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract:
                "Write a model's token ids and logits for a text (and a greedy continuation) as safetensors, to compare with another implementation."
        )

        @Argument(help: "A run or checkpoint folder.") var checkpoint: String
        @Option(help: "A UTF-8 text file (its tokens must fit in the context).") var text: String
        @Option(help: "The safetensors file to write: tokens (I32), logits (F32, tokens × vocabulary), greedy (I32).")
        var output: String
        @Option(help: "Tokens to continue greedily (argmax) after the text.") var greedy = 0
        @OptionGroup var threading: ThreadOptions

        func validate() throws { try checkRange("--greedy", greedy, 0...4096) }

        func run() throws {
            do {
                let (_, model, tokenizer) = try RunCheckpoint.loadForInference(
                    checkpoint, backend: CPUBackend(threadCount: threading.count))
                let bytes = [UInt8](try UserFile.read(text, "--text", limit: 1 << 24))
                let tokens = tokenizer.encode(bytes: bytes, allowSpecial: false)
                let v = model.config.vocabularySize
                guard !tokens.isEmpty, tokens.count + greedy <= model.config.contextLength else {
                    throw ValidationError(
                        "--text \(text) is \(tokens.count) tokens; with --greedy \(greedy) it must fit in the context of \(model.config.contextLength)."
                    )
                }
                func logits(_ ids: [Int32]) throws -> [Float] {
                    let acts = try Activations(
                        model: model, batchSize: 1, sequenceLength: ids.count, forTraining: false)
                    try model.forward(tokens: ids, targets: nil, activations: acts, training: false)
                    return acts.copyLogitsToHost()
                }
                let all = try logits(tokens)
                var sequence = tokens
                var continuation: [Int32] = []
                for _ in 0..<greedy {
                    let last = Array(try logits(sequence).suffix(v))
                    let next = Int32(last.indices.max { last[$0] < last[$1] }!)
                    continuation.append(next)
                    sequence.append(next)
                }
                try tokens.withUnsafeBytes { t in
                    try all.withUnsafeBytes { l in
                        try continuation.withUnsafeBytes { g in
                            try SafetensorsWriter.write(
                                [
                                    .init(name: "tokens", dtype: "I32", shape: [tokens.count], bytes: t),
                                    .init(name: "logits", shape: [tokens.count, v], bytes: l),
                                    .init(name: "greedy", dtype: "I32", shape: [continuation.count], bytes: g),
                                ], to: URL(fileURLWithPath: output))
                        }
                    }
                }
                print("wrote \(output): \(tokens.count) tokens × \(v) logits, \(continuation.count) greedy tokens")
            } catch { exitWithError(error) }
        }
    }
}
