// The `fledge` command: thin subcommands that parse options, build typed values and call the library.

import ArgumentParser
import FledgeKit
import Foundation

@main
struct Fledge: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Train small GPT-style language models from scratch.",
        subcommands: [
            TokenizerCommand.self, DataCommand.self, TrainCommand.self, EvalCommand.self, GenerateCommand.self,
            ChatCLI.self, ModelCommand.self, BenchCommand.self,
        ])
}

/// Shared `--threads` option.
struct ThreadOptions: ParsableArguments {
    @Option(help: "Worker threads (default: all cores).")
    var threads: Int = ThreadPool.coreCount

    func validate() throws {
        guard threads >= 1 else { throw ValidationError("--threads must be at least 1.") }
    }
}

/// Prints an error the library raised and exits non-zero (only the CLI exits).
func exitWithError(_ error: Error) -> Never {
    FileHandle.standardError.write(Data("error: \(error)\n".utf8))
    Foundation.exit(1)
}
