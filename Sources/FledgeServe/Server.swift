// Server: `fledge serve` — Hummingbird routes for the OpenAI API over a ModelService, server-sent events for
// streams, the chat page, bearer-token auth, optional CORS, a body-size limit, an idle timeout, and a graceful
// stop on SIGTERM/SIGINT (no new requests; running streams end with a final chunk and [DONE]).

import FledgeFiles
import FledgeGeneration
import Foundation
import Hummingbird
import Logging
import NIOCore

/// A start-up failure of the server, with what to do about it.
public struct ServeError: Error, CustomStringConvertible {
    public let message: String
    public let hint: String

    public init(_ message: String, hint: String) {
        self.message = message
        self.hint = hint
    }

    public var description: String { "\(message)\nHint: \(hint)" }
}

/// How `fledge serve` runs.
public struct ServeConfig: Sendable {
    public var host = "127.0.0.1"
    public var port = 8000
    /// Sequences decoded at once (KV-cache slots).
    public var slots = 8
    /// Requests that may wait for a slot; beyond them a 503 with Retry-After.
    public var queue = 32
    /// Largest request body accepted (bytes).
    public var maxBodyBytes = 1 << 20
    /// Seconds a connection may stay silent (a slow or stalled request is closed).
    public var idleTimeoutSeconds = 30
    /// Bearer token required on /v1/ (nil: none).
    public var apiKey: String?
    /// Allowed CORS origin (nil: no CORS headers).
    public var corsOrigin: String?
    public var modelName: String?
    public var threads = ProcessInfo.processInfo.activeProcessorCount
    /// Milliseconds a stream's new text may wait to go out with the next tokens' (a stream's first text goes at
    /// once). Fewer, larger events cost the server less per token: about 20% more tokens/s at 1 and 16 clients
    /// on config (b), measured with 25. A client that disconnects is noticed at the next write, so at most this
    /// much later. 0 sends every token's text as soon as it is decoded.
    public var streamIntervalMilliseconds = 25

    public init() {}
}

/// The server.
public enum Server {
    /// Serves `path` until SIGTERM/SIGINT; `onReady` is called with the bound port.
    public static func run(path: String, config: ServeConfig, onReady: @escaping @Sendable (Int) -> Void) async throws {
        let service = try ModelService(
            path: path, id: config.modelName, slots: config.slots, queue: config.queue, threads: config.threads,
            streamInterval: Double(config.streamIntervalMilliseconds) / 1000)
        let router = Router(context: BasicRequestContext.self)
        router.add(middleware: ErrorMiddleware())
        if let origin = config.corsOrigin {
            router.add(
                middleware: CORSMiddleware(
                    allowOrigin: origin == "*" ? .all : .custom(origin), allowHeaders: [.contentType, .authorization],
                    allowMethods: [.get, .post, .options]))
        }
        let auth = AuthMiddleware<BasicRequestContext>(key: config.apiKey)
        router.get("/") { _, _ in
            Response(
                status: .ok, headers: [.contentType: "text/html; charset=utf-8"],
                body: .init(byteBuffer: ByteBuffer(string: ChatPage.html)))
        }
        router.get("/health") { _, _ in
            let (active, queued) = service.batcher.load
            let batcher = service.batcher
            return jsonResponse([
                "status": "ok", "model": service.id, "active": active, "queued": queued, "steps": batcher.steps,
                "row_steps": batcher.rowSteps, "prefills": batcher.prefills,
            ])
        }
        let v1 = router.group("v1").add(middleware: auth)
        v1.get("models") { _, _ in
            jsonResponse([
                "object": "list",
                "data": [["id": service.id, "object": "model", "created": service.created, "owned_by": "fledge"]],
            ])
        }
        v1.get("models/:id") { _, context in
            guard context.parameters.get("id") == service.id else {
                throw APIError(
                    .notFound, "The model '\(context.parameters.get("id") ?? "")' does not exist", param: "model",
                    code: "model_not_found")
            }
            return jsonResponse(["id": service.id, "object": "model", "created": service.created, "owned_by": "fledge"])
        }
        let limit = config.maxBodyBytes
        v1.post("completions") { request, _ in
            let fields = try RequestFields(try await body(request, limit: limit))
            return try await respond(service, try service.prepareCompletion(fields), chat: false)
        }
        v1.post("chat/completions") { request, _ in
            let fields = try RequestFields(try await body(request, limit: limit))
            return try await respond(service, try service.prepareChat(fields), chat: true)
        }
        let app = Application(
            router: router,
            server: .http1(configuration: .init(idleTimeout: .seconds(Int64(config.idleTimeoutSeconds)))),
            configuration: .init(address: .hostname(config.host, port: config.port), serverName: "fledge"),
            onServerRunning: { channel in onReady(channel.localAddress?.port ?? config.port) },
            logger: {
                var logger = Logger(label: "fledge-serve")
                logger.logLevel = .warning
                return logger
            }())
        do {
            try await app.runService()  // SIGTERM and SIGINT stop it gracefully
        } catch let error as IOError where error.errnoCode == EADDRINUSE {
            service.batcher.shutdown()
            throw ServeError(
                "port \(config.port) on \(config.host) is in use",
                hint: "choose another with --port, or stop the other server.")
        } catch {
            service.batcher.shutdown()
            throw error
        }
        service.batcher.shutdown()
        service.batcher.waitUntilStopped()
    }

    static func body(_ request: Request, limit: Int) async throws -> Data {
        do {
            var buffer = try await request.body.collect(upTo: limit)
            return buffer.readData(length: buffer.readableBytes) ?? Data()
        } catch let error as HTTPError where error.status == .contentTooLarge {
            throw APIError(
                .contentTooLarge, "the request body is larger than the server's limit of \(limit) bytes",
                code: "request_too_large")
        } catch is NIOTooManyBytesError {
            throw APIError(
                .contentTooLarge, "the request body is larger than the server's limit of \(limit) bytes",
                code: "request_too_large")
        }
    }

    static func jsonResponse(_ object: [String: Any], status: HTTPResponse.Status = .ok) -> Response {
        let data =
            (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes]))
            ?? Data()
        return Response(
            status: status, headers: [.contentType: "application/json"],
            body: .init(byteBuffer: ByteBuffer(bytes: data)))
    }

    /// Submits every choice of `prepared`; a full engine cancels what it took and answers 503.
    static func submit(_ service: ModelService, _ prepared: ModelService.Prepared) throws(APIError) -> [BatchTicket] {
        var tickets: [BatchTicket] = []
        do {
            for request in prepared.requests { tickets.append(try service.batcher.submit(request)) }
        } catch {
            for t in tickets { t.cancel() }
            if case BatcherRefusal.busy(let active, let queued) = error {
                var e = APIError(
                    .serviceUnavailable,
                    "the server is busy (\(active) sequences running, \(queued) waiting); retry shortly",
                    type: "server_error", code: "server_busy")
                e.retryAfter = 1
                throw e
            }
            if case BatcherRefusal.shuttingDown = error {
                throw APIError(
                    .serviceUnavailable, "the server is shutting down", type: "server_error", code: "shutting_down")
            }
            throw APIError(.badRequest, "\(error)")
        }
        return tickets
    }

    static func respond(_ service: ModelService, _ prepared: ModelService.Prepared, chat: Bool) async throws -> Response
    {
        let tickets = try submit(service, prepared)
        let id = (chat ? "chatcmpl-" : "cmpl-") + UUID().uuidString.replacingOccurrences(of: "-", with: "").lowercased()
        let created = Int(Date().timeIntervalSince1970)
        let fingerprint = "fledge"
        if !prepared.stream {
            var choices: [[String: Any]] = []
            var completionTokens = 0
            for (index, ticket) in tickets.enumerated() {
                var text = prepared.echo ?? ""
                var logprobs: [TokenLogprob] = []
                var reason = FinishReason.length
                for await event in ticket.events {
                    switch event {
                    case .started: break
                    case .text(let t, let lp):
                        text += t
                        logprobs += lp
                    case .finished(let r, let n):
                        reason = r
                        completionTokens += n
                    }
                }
                var choice: [String: Any] = ["index": index, "finish_reason": ModelService.finishReason(reason)]
                if chat {
                    choice["message"] = ["role": "assistant", "content": text, "refusal": NSNull()]
                    choice["logprobs"] = prepared.topLogprobs == nil ? NSNull() : service.chatLogprobs(logprobs)
                } else {
                    choice["text"] = text
                    choice["logprobs"] =
                        prepared.topLogprobs == nil
                        ? NSNull() : service.completionLogprobs(logprobs, offset: prepared.echo?.utf8.count ?? 0)
                }
                choices.append(choice)
            }
            return jsonResponse([
                "id": id, "object": chat ? "chat.completion" : "text_completion", "created": created,
                "model": service.id, "system_fingerprint": fingerprint, "choices": choices,
                "usage": ModelService.usage(prompt: prepared.promptTokens, completion: completionTokens),
            ])
        }
        // Server-sent events: every choice's events merged in arrival order.
        let merged = AsyncStream<(Int, BatchEvent)> { continuation in
            let group = Task {
                await withTaskGroup(of: Void.self) { group in
                    for (i, ticket) in tickets.enumerated() {
                        group.addTask { for await event in ticket.events { continuation.yield((i, event)) } }
                    }
                }
                continuation.finish()
            }
            continuation.onTermination = { _ in group.cancel() }
        }
        let object = chat ? "chat.completion.chunk" : "text_completion"
        let includeUsage = prepared.includeUsage
        let body = ResponseBody { writer in
            func send(_ payload: [String: Any]) async throws {
                var chunk = payload
                chunk["id"] = id
                chunk["object"] = object
                chunk["created"] = created
                chunk["model"] = service.id
                chunk["system_fingerprint"] = fingerprint
                if includeUsage && chunk["usage"] == nil { chunk["usage"] = NSNull() }
                let data = try JSONSerialization.data(
                    withJSONObject: chunk, options: [.sortedKeys, .withoutEscapingSlashes])
                var buffer = ByteBuffer(string: "data: ")
                buffer.writeBytes(data)
                buffer.writeString("\n\n")
                try await writer.write(buffer)
            }
            // The common event, a text delta without log-probabilities, is written by hand (JSONSerialization
            // per token costs more than the token); every other event goes through JSONSerialization.
            let tail =
                ",\"created\":\(created),\"id\":\"\(id)\",\"model\":\(JSONNumber.string(service.id)),\"object\":\"\(object)\",\"system_fingerprint\":\"\(fingerprint)\""
                + (includeUsage ? ",\"usage\":null}\n\n" : "}\n\n")
            func sendText(_ index: Int, _ text: String) async throws {
                let quoted = JSONNumber.string(text)
                let head =
                    chat
                    ? "data: {\"choices\":[{\"delta\":{\"content\":\(quoted)},\"finish_reason\":null,\"index\":\(index),\"logprobs\":null}]"
                    : "data: {\"choices\":[{\"finish_reason\":null,\"index\":\(index),\"logprobs\":null,\"text\":\(quoted)}]"
                try await writer.write(ByteBuffer(string: head + tail))
            }
            func choice(_ index: Int, delta: [String: Any]?, text: String?, logprobs: Any, finish: Any) -> [String: Any]
            {
                var c: [String: Any] = ["index": index, "logprobs": logprobs, "finish_reason": finish]
                if chat { c["delta"] = delta ?? [:] } else { c["text"] = text ?? "" }
                return c
            }
            var completionTokens = 0
            var offsets = [Int](repeating: prepared.echo?.utf8.count ?? 0, count: tickets.count)
            do {
                for await (index, event) in merged {
                    switch event {
                    case .started:
                        if chat {
                            try await send([
                                "choices": [
                                    choice(
                                        index, delta: ["role": "assistant", "content": ""], text: nil,
                                        logprobs: NSNull(), finish: NSNull())
                                ]
                            ])
                        } else if let echo = prepared.echo {
                            try await send([
                                "choices": [choice(index, delta: nil, text: echo, logprobs: NSNull(), finish: NSNull())]
                            ])
                        }
                    case .text(let text, _) where prepared.topLogprobs == nil:
                        offsets[index] += text.utf8.count
                        try await sendText(index, text)
                    case .text(let text, let lp):
                        let logprobs: Any =
                            prepared.topLogprobs == nil
                            ? NSNull()
                            : chat ? service.chatLogprobs(lp) : service.completionLogprobs(lp, offset: offsets[index])
                        offsets[index] += text.utf8.count
                        try await send([
                            "choices": [
                                choice(
                                    index, delta: ["content": text], text: text, logprobs: logprobs, finish: NSNull())
                            ]
                        ])
                    case .finished(let reason, let n):
                        completionTokens += n
                        try await send([
                            "choices": [
                                choice(
                                    index, delta: [:], text: "", logprobs: NSNull(),
                                    finish: ModelService.finishReason(reason))
                            ]
                        ])
                    }
                }
                if includeUsage {
                    try await send([
                        "choices": [[String: Any]](),
                        "usage": ModelService.usage(prompt: prepared.promptTokens, completion: completionTokens),
                    ])
                }
                try await writer.write(ByteBuffer(string: "data: [DONE]\n\n"))
                try await writer.finish(nil)
            } catch {
                // The client went away: free its slots at the next step.
                for ticket in tickets { ticket.cancel() }
                throw error
            }
        }
        return Response(
            status: .ok,
            headers: [.contentType: "text/event-stream", .cacheControl: "no-cache", .init("X-Accel-Buffering")!: "no"],
            body: body)
    }
}

/// Every error becomes OpenAI's error object with its status (unknown routes and methods included).
struct ErrorMiddleware<Context: RequestContext>: RouterMiddleware {
    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws
        -> Response
    {
        do {
            return try await next(request, context)
        } catch let error as APIError {
            return Self.response(error)
        } catch let error as HTTPError {
            let message: String
            switch error.status {
            case .notFound: message = "Unknown route \(request.method) \(request.uri.path)"
            case .methodNotAllowed: message = "Method \(request.method) is not allowed on \(request.uri.path)"
            case .contentTooLarge: message = "the request body is too large"
            default: message = error.body ?? "\(error.status)"
            }
            let type = error.status.code >= 500 ? "server_error" : "invalid_request_error"
            return Self.response(
                APIError(error.status, message, type: type, code: error.status.code == 404 ? "unknown_url" : nil))
        } catch {
            return Self.response(APIError(.internalServerError, "internal error: \(error)", type: "server_error"))
        }
    }

    static func response(_ error: APIError) -> Response {
        var headers: HTTPFields = [.contentType: "application/json"]
        if let retry = error.retryAfter { headers[.retryAfter] = String(retry) }
        return Response(status: error.status, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: error.json)))
    }
}

/// Bearer-token auth on /v1/ when a key is set; the comparison takes the same time wherever the tokens differ.
struct AuthMiddleware<Context: RequestContext>: RouterMiddleware {
    let key: String?

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws
        -> Response
    {
        guard let key else { return try await next(request, context) }
        let given = request.headers[.authorization] ?? ""
        let expected = "Bearer " + key
        guard Self.constantTimeEqual(Array(given.utf8), Array(expected.utf8)) else {
            throw APIError(
                .unauthorized, "Incorrect API key provided: send 'Authorization: Bearer <key>' with the server's key",
                code: "invalid_api_key")
        }
        return try await next(request, context)
    }

    static func constantTimeEqual(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        var difference = UInt8(a.count == b.count ? 0 : 1)
        for i in 0..<max(a.count, b.count) {
            difference |= (i < a.count ? a[i] : 0) ^ (i < b.count ? b[i] : 0)
        }
        return difference == 0
    }
}
