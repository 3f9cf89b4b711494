// Errors of FledgeData. Each message names the file, line or field and the value, and ends with a hint.

/// An error raised while reading, preparing or loading data.
public struct DataError: Error, CustomStringConvertible, Equatable {
    /// What went wrong, naming the file, line or field.
    public let message: String
    /// What the user can do about it.
    public let hint: String

    public init(_ message: String, hint: String) {
        self.message = message
        self.hint = hint
    }

    public var description: String { "\(message)\nHint: \(hint)" }
}
