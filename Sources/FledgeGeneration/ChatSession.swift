// ChatSession: a conversation with a model fine-tuned on question/answer data. Each message is wrapped in the
// same template the fine-tuning data used (SequenceFormat, saved with the checkpoint); earlier turns are kept
// as tokens — question, the reply exactly as generated, and the template's closing (EOS) — and the oldest are
// dropped when the next prompt plus room for the reply would not fit the context window.
// ChatConsole runs the conversation over lines of input (a terminal or a pipe) with /commands.

import FledgeData
import FledgeTokenizer
import Foundation

/// One conversation.
public final class ChatSession {
    public let generator: Generator
    public let encoder: DocumentEncoder
    public var options: GenerationOptions
    public var processors: [any LogitsProcessor] = []
    /// The tokens of each completed turn, oldest first.
    public private(set) var turns: [[Int32]] = []
    private var mergeCache = MergeCache()

    /// What one message produced.
    public struct Reply {
        public let result: GenerationResult
        /// Earlier turns dropped to make room.
        public let droppedTurns: Int
        /// Tokens of the whole prompt the model saw.
        public let promptTokens: Int
    }

    public init(generator: Generator, format: SequenceFormat, options: GenerationOptions) throws {
        self.generator = generator
        encoder = try DocumentEncoder(tokenizer: generator.tokenizer, format: format)
        self.options = options
    }

    /// Tokens kept free for a reply: the token limit, but at most half the context.
    public var replyReserve: Int { max(1, min(options.maxTokens, generator.contextLength / 2)) }

    /// Sends a message; the reply's text streams to `onText`.
    public func send(_ message: String, onText: ((String) -> Void)? = nil) throws -> Reply {
        let (prompt, closing) = encoder.turn(question: message, cache: &mergeCache)
        let context = generator.contextLength
        guard prompt.count + replyReserve <= context else {
            throw GenerationError(
                "this message is \(prompt.count) tokens; with \(replyReserve) kept for the reply it does not fit the context of \(context) tokens",
                hint: "send a shorter message, or lower the reply length (/tokens N).")
        }
        var dropped = 0
        var history = turns.reduce(0) { $0 + $1.count }
        while !turns.isEmpty && history + prompt.count + replyReserve > context {
            history -= turns.removeFirst().count
            dropped += 1
        }
        let full = Array(turns.joined()) + prompt
        var options = self.options
        options.maxTokens = min(options.maxTokens, context - full.count + 1)
        let result = try generator.generate(prompt: full, options: options, processors: processors, onText: onText)
        turns.append(prompt + result.tokens + closing)
        return Reply(result: result, droppedTurns: dropped, promptTokens: full.count)
    }

    /// Forgets the conversation.
    public func reset() { turns.removeAll() }
}

/// A line of chat input.
public enum ChatCommand: Equatable {
    case message(String)
    case reset
    case help
    case quit
    case temperature(Float)
    case topK(Int?)
    case topP(Float)
    case tokens(Int)
    case seed(UInt64)

    public static let helpText = """
        Type a message and press Enter. Commands:
          /reset             forget the conversation
          /temperature T     sampling temperature (0 = greedy)
          /top-k K | off     keep the K most likely tokens
          /top-p P           nucleus sampling mass (1 = off)
          /tokens N          longest reply in tokens
          /seed N            fix the random seed
          /help              this text
          /quit              leave (also Ctrl-D)
        """

    /// The command of a line; nil for a blank line. Unknown commands and bad values throw.
    public static func parse(_ line: String) throws -> ChatCommand? {
        let text = line.trimmingCharacters(in: .whitespacesAndNewlines)
        guard !text.isEmpty else { return nil }
        guard text.hasPrefix("/") else { return .message(text) }
        let parts = text.split(separator: " ", omittingEmptySubsequences: true).map(String.init)
        let argument = parts.count > 1 ? parts[1] : nil
        func value<T>(_ parse: (String) -> T?, _ what: String) throws -> T {
            guard let argument, let value = parse(argument) else {
                throw GenerationError("\(parts[0]) needs \(what)", hint: "type /help for the commands.")
            }
            return value
        }
        switch parts[0] {
        case "/reset": return .reset
        case "/help", "/?": return .help
        case "/quit", "/exit", "/bye": return .quit
        case "/temperature", "/temp": return .temperature(try value({ Float($0) }, "a number, e.g. /temperature 0.7"))
        case "/top-k", "/topk":
            if argument == "off" { return .topK(nil) }
            return .topK(try value({ Int($0) }, "a count or off"))
        case "/top-p", "/topp": return .topP(try value({ Float($0) }, "a number in (0, 1], e.g. /top-p 0.9"))
        case "/tokens": return .tokens(try value({ Int($0) }, "a count, e.g. /tokens 200"))
        case "/seed": return .seed(try value({ UInt64($0) }, "a whole number"))
        default:
            throw GenerationError("unknown command \(parts[0])", hint: "type /help for the commands.")
        }
    }
}

/// Runs a chat over lines of input.
public struct ChatConsole {
    public let session: ChatSession
    /// Print the "you> " prompt (only at a terminal).
    public var showPrompt: Bool

    public init(session: ChatSession, showPrompt: Bool) {
        self.session = session
        self.showPrompt = showPrompt
    }

    /// Reads lines until the end of input or /quit; writes replies, statistics and errors to `write`.
    public func run(readLine: () -> String?, write: @escaping (String) -> Void) {
        while true {
            if showPrompt { write("you> ") }
            guard let line = readLine() else { break }
            do {
                guard let command = try ChatCommand.parse(line) else { continue }
                switch command {
                case .quit: return
                case .help: write(ChatCommand.helpText + "\n")
                case .reset:
                    session.reset()
                    write("(conversation cleared)\n")
                case .temperature(let t): try set { $0.temperature = t }
                case .topK(let k): try set { $0.topK = k }
                case .topP(let p): try set { $0.topP = p }
                case .seed(let seed): try set { $0.seed = seed }
                case .tokens(let n):
                    guard n >= 1 else { throw GenerationError("/tokens \(n) allows no reply", hint: "use 1 or more.") }
                    guard n <= 1_000_000 else {
                        throw GenerationError("/tokens \(n) is more than 1000000", hint: "use a count such as 200.")
                    }
                    session.options.maxTokens = n
                    write("(replies up to \(n) tokens)\n")
                case .message(let text):
                    if showPrompt { write("bot> ") }
                    let reply = try session.send(text) { write($0) }
                    let r = reply.result
                    var notes = [String(format: "%d tokens, %.1f tokens/s", r.tokens.count, r.decodeTokensPerSecond)]
                    if reply.droppedTurns > 0 { notes.append("dropped \(reply.droppedTurns) oldest turns") }
                    if r.finishReason == .length || r.finishReason == .context {
                        notes.append("cut at the token limit")
                    }
                    write("\n[\(notes.joined(separator: ", "))]\n")
                }
            } catch {
                write("error: \(error)\n")
            }
        }
    }

    private func set(_ change: (inout SamplingConfig) -> Void) throws {
        var sampling = session.options.sampling
        change(&sampling)
        try sampling.validate()
        session.options.sampling = sampling
    }
}
