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

        func run() throws {
            do {
                let model = try GPT(config: loadConfig(preset: preset, path: config), backend: CPUBackend(), seed: seed)
                try ModelCheckpoint.save(model, to: URL(fileURLWithPath: output))
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
        guard let data = FileManager.default.contents(atPath: path) else {
            throw ModelError("cannot read \(path)", hint: "check the path of the config.json file.")
        }
        return try ModelCheckpoint.parseConfig(data, path: path)
    default:
        throw ModelError("give exactly one of --preset and --config", hint: "e.g. `--preset tiny`.")
    }
}
