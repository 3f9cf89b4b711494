// Errors of FledgeGeneration. Each message names the prompt, setting or checkpoint, and ends with a hint.

/// An error raised while setting up or running generation or a chat.
public struct GenerationError: Error, CustomStringConvertible, Equatable {
    public let message: String
    public let hint: String

    public init(_ message: String, hint: String) {
        self.message = message
        self.hint = hint
    }

    public var description: String { "\(message)\nHint: \(hint)" }
}
