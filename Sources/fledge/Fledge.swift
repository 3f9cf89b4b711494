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
            ChatCLI.self, ReportCommand.self, ModelCommand.self, ExportCommand.self, ImportCommand.self,
            ServeCommand.self,
            BenchCommand.self,
        ])
}

/// Shared `--threads` option.
struct ThreadOptions: ParsableArguments {
    @Option(help: "Worker threads (default: all cores).")
    var threads: Int = ThreadPool.coreCount

    func validate() throws {
        try checkRange("--threads", threads, 1...ThreadPool.maximumThreads)
    }
}

/// Prints an error the library raised and exits non-zero (only the CLI exits).
func exitWithError(_ error: Error) -> Never {
    FileHandle.standardError.write(Data("error: \(error)\n".utf8))
    ConsoleLog.write("error: \(error)\n")
    Foundation.exit(1)
}

/// Prompts from a text file (one per line, \n for newlines; blank lines skipped) or JSONL ({"prompt": ...}).
func readPrompts(_ path: String, option: String) throws -> [String] {
    let data = try UserFile.read(path, option, limit: 1 << 28)
    var result: [String] = []
    for (number, line) in String(decoding: data, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false)
        .enumerated()
    where !line.trimmingCharacters(in: .whitespaces).isEmpty {
        if line.hasPrefix("{") {
            guard let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
                let prompt = object["prompt"] as? String
            else { throw ValidationError("\(path), line \(number + 1): expected {\"prompt\": \"...\"}.") }
            result.append(prompt)
        } else {
            result.append(unescaped(String(line)))
        }
    }
    return result
}

/// Throws a message naming `option` unless `value` lies in `range` (hostile numbers stop here, before any
/// allocation or loop they would size).
func checkRange<T: Comparable>(_ option: String, _ value: T, _ range: ClosedRange<T>) throws {
    guard range.contains(value) else {
        throw ValidationError("\(option) must be between \(range.lowerBound) and \(range.upperBound) (got \(value)).")
    }
}

/// As `checkRange`, for a floating-point value that must also be finite.
func checkFinite(_ option: String, _ value: Double, _ range: ClosedRange<Double>) throws {
    guard value.isFinite, range.contains(value) else {
        throw ValidationError(
            "\(option) must be a number between \(range.lowerBound) and \(range.upperBound) (got \(value)).")
    }
}
