// Errors of FledgeTokenizer. Each names the file, field or value and ends with a hint.

/// An error raised while loading, training or using a tokenizer.
public struct TokenizerError: Error, CustomStringConvertible, Equatable {
    public let message: String
    public let hint: String

    public init(_ message: String, hint: String) {
        self.message = message
        self.hint = hint
    }

    public var description: String { "\(message)\nHint: \(hint)" }
}
