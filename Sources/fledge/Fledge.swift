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
    @Option(help: "Worker threads (default: all cores; under mpirun, the cores shared among this host's ranks).")
    var threads: Int?

    /// The threads to run: `--threads`, or this host's cores divided among the ranks mpirun put on it.
    var count: Int { threads ?? max(1, ThreadPool.coreCount / Launcher.detect().ranksOnThisHost) }

    func validate() throws {
        if let threads { try checkRange("--threads", threads, 1...ThreadPool.maximumThreads) }
    }
}

/// The job this process belongs to (`fledge train` under mpirun), so that an error stops every rank.
enum Job {
    nonisolated(unsafe) static var communicator: Communicator?
}

/// Prints an error the library raised and exits non-zero (only the CLI exits). In a job of several ranks, an
/// error every rank raised together ends each cleanly (rank 0 prints it); an error of this rank alone is
/// printed with the rank and aborts the job, so the others do not wait for it.
func exitWithError(_ error: Error) -> Never {
    if let job = Job.communicator, job.size > 1 {
        if let error = error as? DistributedError, error.everyRank {
            if job.isLeader { FileHandle.standardError.write(Data("error: \(error)\n".utf8)) }
            job.finish()
            Foundation.exit(1)
        }
        FileHandle.standardError.write(Data("error: rank \(job.rank) of \(job.size): \(error)\n".utf8))
        ConsoleLog.write("error: rank \(job.rank) of \(job.size): \(error)\n")
        job.abort(code: 1)
    }
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
