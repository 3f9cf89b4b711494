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

/// Limits that protect the machine, checked before anything is allocated.
public enum TokenizerLimits {
    /// The largest vocabulary Fledge builds or loads (uint32 shards hold more; models this size do not fit).
    public static let maximumVocabulary = 1 << 24
}
