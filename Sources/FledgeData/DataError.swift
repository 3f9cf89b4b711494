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

/// A preparation stopped because its caller asked it to (`DataPreparer.shouldStop`, e.g. after Ctrl-C): nothing
/// was written at the output, and the work folder stays only when it holds a checkpoint.
public struct PreparationInterrupted: Error, CustomStringConvertible {
    public init() {}
    public var description: String { "interrupted: no dataset was written" }
}
