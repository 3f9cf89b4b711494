// `fledge report RUN...`: several runs on one chart, with a table of the settings that differ.

import ArgumentParser
import FledgeKit
import Foundation

struct ReportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "report", abstract: "Compare runs: validation loss on one chart and the settings that differ.")

    @Argument(help: "Run folders (written by fledge train --run).") var runs: [String]
    @Option(help: "The HTML file to write.") var output = "runs-compared.html"
    @Flag(help: "Replace --output if it exists.") var overwrite = false

    func validate() throws {
        guard !runs.isEmpty else { throw ValidationError("name at least one run.") }
        if UserFile.kind(output) == .folder {
            throw ValidationError("--output \(output) is a folder; name an HTML file, e.g. \(output)/compared.html.")
        }
        if UserFile.kind(output) != .missing && !overwrite {
            throw ValidationError("--output \(output) already exists: pass --overwrite to replace it.")
        }
        try PathCheck.checkOutput(output, option: "--output", inputs: runs.map { ($0, "run") })
    }

    func run() throws {
        do {
            try RunComparison.write(runs: runs.map { URL(fileURLWithPath: $0) }, to: URL(fileURLWithPath: output))
            print("wrote \(output): \(runs.count) runs")
        } catch { exitWithError(error) }
    }
}
