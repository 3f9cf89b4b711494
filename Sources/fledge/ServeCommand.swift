// `fledge serve`: the OpenAI-compatible server with continuous batching and the web chat page (FledgeServe;
// docs/serve.md).

import ArgumentParser
import FledgeKit
import FledgeServe
import Foundation

/// The library's defaults, which the options take (each lives in ServeConfig alone).
private let serveDefaults = ServeConfig()

struct ServeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Serve a model over the OpenAI API (/v1/completions, /v1/chat/completions) with a web chat at /.")

    @Argument(help: "A run (its final/, latest/ or best/) or a checkpoint folder.") var checkpoint: String
    @Option(help: "Address to bind (0.0.0.0 exposes it: set an API key).") var host = serveDefaults.host
    @Option(help: "Port (0 picks a free one).") var port = serveDefaults.port
    @Option(help: "Sequences decoded together (KV-cache slots).") var slots = serveDefaults.slots
    @Option(help: "Requests that may wait for a slot; beyond them the server answers 503 with Retry-After.")
    var queue = serveDefaults.queue
    @Option(help: "Largest request body in bytes.") var maxBody = serveDefaults.maxBodyBytes
    @Option(help: "Seconds a silent connection (a stalled request) is kept.") var idleTimeout = serveDefaults
        .idleTimeoutSeconds
    @Option(help: "A file holding the API key clients must send as 'Authorization: Bearer KEY'.") var apiKeyFile:
        String?
    @Option(help: "Allow browser pages from this origin (CORS; * for any). Off by default.") var cors: String?
    @Option(help: "The model id clients use (default: the run's folder name).") var modelName: String?
    @Option(
        help:
            "Milliseconds a stream's new text may wait to go out with the next tokens' (fewer, larger events; 0: every token at once)."
    ) var streamInterval = serveDefaults.streamIntervalMilliseconds
    @OptionGroup var threading: ThreadOptions

    func validate() throws {
        try checkRange("--port", port, 0...65535)
        try checkRange("--slots", slots, 1...256)
        try checkRange("--queue", queue, 0...100_000)
        try checkRange("--max-body", maxBody, 1024...(1 << 30))
        try checkRange("--idle-timeout", idleTimeout, 1...3600)
        try checkRange("--stream-interval", streamInterval, 0...1000)
    }

    func run() throws {
        var config = ServeConfig()
        (config.host, config.port, config.slots, config.queue) = (host, port, slots, queue)
        (config.maxBodyBytes, config.idleTimeoutSeconds, config.corsOrigin, config.modelName) =
            (maxBody, idleTimeout, cors, modelName)
        config.threads = threading.count
        config.streamIntervalMilliseconds = streamInterval
        do {
            if let apiKeyFile {
                let text = String(decoding: try UserFile.read(apiKeyFile, "--api-key-file", limit: 4096), as: UTF8.self)
                    .trimmingCharacters(in: .whitespacesAndNewlines)
                guard !text.isEmpty, !text.contains(where: { $0.isWhitespace }) else {
                    throw ValidationError(
                        "--api-key-file \(apiKeyFile) must hold one key (no spaces), e.g. the output of `openssl rand -hex 24`."
                    )
                }
                config.apiKey = text
            }
            if host != "127.0.0.1" && host != "localhost" && host != "::1" && config.apiKey == nil {
                note("warning: serving on \(host) without --api-key-file: anyone who can reach it can use it")
            }
        } catch { exitWithError(error) }
        let outcome = Outcome()
        let semaphore = DispatchSemaphore(value: 0)
        let (path, host, settings) = (checkpoint, host, config)
        Task {
            do {
                try await Server.run(path: path, config: settings) { bound in
                    let line =
                        "serving at http://\(host):\(bound)/v1 (chat page http://\(host):\(bound)/); \(settings.slots) slots, queue \(settings.queue); Ctrl-C stops\n"
                    FileHandle.standardOutput.write(Data(line.utf8))
                }
            } catch {
                outcome.error = error
            }
            semaphore.signal()
        }
        semaphore.wait()
        if let error = outcome.error { exitWithError(error) }
        print("stopped")
    }
}

/// Carries the server's failure out of its task.
private final class Outcome: @unchecked Sendable {
    var error: Error?
}
