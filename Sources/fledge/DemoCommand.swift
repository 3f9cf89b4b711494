// `fledge demo`: train a byte-level GPT on a text file for a few minutes and print a sample.

import ArgumentParser
import FledgeKit
import Foundation

struct DemoCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "demo",
        abstract: "Train a small byte-level GPT on a text file for a few minutes, then sample from it.")

    @Option(help: "Text file to learn from.") var text = "data/shakespeare/shakespeare.txt"
    @Option(help: "Training time budget in seconds.") var seconds: Double = 180
    @Option(help: "Most training steps.") var steps = 3000
    @Option(help: "Prompt for the sample.") var prompt = "ROMEO:\n"
    @Option(help: "Where to save the trained model (config.json + model.safetensors).") var output = "runs/demo"
    @OptionGroup var threading: ThreadOptions

    func run() throws {
        guard let data = FileManager.default.contents(atPath: text) else {
            exitWithError(ModelError("cannot read \(text)", hint: "pass --text with a readable UTF-8 text file."))
        }
        var config = ByteLevelDemoConfig()
        config.seconds = seconds
        config.maxSteps = steps
        let backend = CPUBackend(threadCount: threading.threads)
        let m = config.model
        print(
            "fledge demo: byte-level GPT, \(m.layers) layers, width \(m.width), \(m.heads) heads, context \(m.contextLength)"
        )
        print(
            "  \(ParameterLayout(config: m).totalCount) parameters; \(data.count) bytes of \(text); \(threading.threads) threads; BLAS \(BLAS.libraryName)"
        )
        print(
            "  training for up to \(Int(seconds)) s or \(steps) steps, batch \(config.batchSize) × \(m.contextLength)")
        do {
            let (model, loss) = try ByteLevelDemo.train(text: Array(data), config: config, backend: backend) { p in
                print(
                    String(
                        format: "  step %5d  train loss %.3f  val loss %.3f (%.2f bits/byte)  %6.0f tokens/s  %4.0f s",
                        p.step,
                        p.trainLoss, p.validationLoss ?? .nan, (p.validationLoss ?? .nan) / Float(M_LN2),
                        p.tokensPerSecond, p.elapsed))
            }
            try ModelCheckpoint.save(model, to: URL(fileURLWithPath: output))
            print(
                String(
                    format: "final validation loss %.3f (%.2f bits per byte); model saved to %@/", loss,
                    loss / Float(M_LN2), output))
            print("\n--- sample (temperature 0.8, top-k 40), prompt \(prompt.debugDescription) ---")
            print(prompt + (try ByteLevelDemo.sample(model: model, prompt: prompt, length: config.sampleLength)))
        } catch { exitWithError(error) }
    }
}
