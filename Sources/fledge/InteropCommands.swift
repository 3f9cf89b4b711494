// `fledge export` and `fledge import`: models out to Hugging Face transformers and GGUF (llama.cpp), and in
// from transformers (FledgeInterop does the work; docs/interop.md says what maps).

import ArgumentParser
import FledgeKit
import Foundation

enum ExportFormat: String, ExpressibleByArgument, CaseIterable {
    case hf
    case gguf
}

enum GGUFType: String, ExpressibleByArgument, CaseIterable {
    case f32
    case f16
}

struct ExportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "export",
        abstract: "Export a run's model for Hugging Face transformers (--format hf) or llama.cpp (--format gguf).")

    @Argument(help: "A run folder (its final/, latest/ or best/ checkpoint) or a checkpoint folder.") var source: String
    @Option(help: "hf (a folder for AutoModelForCausalLM) or gguf (one file).") var format: ExportFormat
    @Option(help: "The folder (hf) or file (gguf) to write.") var output: String
    @Option(help: "GGUF matrix type: f32 or f16 (norms and biases stay f32).") var dtype: GGUFType = .f32
    @Flag(help: "Replace an existing export Fledge wrote.") var overwrite = false

    func validate() throws {
        if format == .hf && dtype != .f32 { throw ValidationError("--dtype applies to --format gguf only.") }
    }

    func run() throws {
        do {
            switch format {
            case .hf:
                let s = try HuggingFaceExport.write(run: source, output: output, overwrite: overwrite)
                print("wrote \(output): \(s.className), \(s.tensors) tensors, \(s.parameters) parameters (float32)")
                print(
                    "load it with: AutoModelForCausalLM.from_pretrained(\"\(output)\"), AutoTokenizer.from_pretrained(\"\(output)\")"
                )
            case .gguf:
                let s = try GGUFExport.write(
                    run: source, output: output, type: dtype == .f32 ? .f32 : .f16, overwrite: overwrite)
                print(
                    "wrote \(output): GGUF v3, architecture \(s.architecture.rawValue), \(s.tensors) tensors, \(s.metadataKeys) keys, \(s.bytes) bytes (\(dtype.rawValue))"
                )
            }
        } catch { exitWithError(error) }
    }
}

struct ImportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "import", abstract: "Import a model from elsewhere as a Fledge run.",
        subcommands: [HF.self])

    struct HF: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "hf",
            abstract:
                "A transformers GPT2LMHeadModel or LlamaForCausalLM folder (config.json, safetensors, tokenizer.json) as a run."
        )

        @Argument(help: "The folder save_pretrained wrote.") var directory: String
        @Option(help: "The run folder to write (its final/ holds the checkpoint).") var output: String
        @Flag(help: "Replace an existing run Fledge wrote.") var overwrite = false

        func run() throws {
            do {
                let s = try HuggingFaceImport.run(directory: directory, output: output, overwrite: overwrite)
                print(
                    "imported \(directory) as \(s.checkpoint.path): \(s.architecture.rawValue), \(s.config.parameterCount) parameters"
                )
                print("use it with: fledge generate \(output) --prompt ..., fledge train --init-from \(output) ...")
            } catch { exitWithError(error) }
        }
    }
}
