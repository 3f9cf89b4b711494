// `fledge model`: presets, architecture facts, and writing a freshly initialised checkpoint.

import ArgumentParser
import FledgeKit
import Foundation

extension ModelPreset: ExpressibleByArgument {}

struct ModelCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "model", abstract: "Model presets and checkpoints.",
        subcommands: [Presets.self, Info.self, Init.self])

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
