// Errors of FledgeModel. Each message names the field, tensor or file, and ends with a hint.

/// An error raised while configuring, running, saving or loading a model.
public struct ModelError: Error, CustomStringConvertible, Equatable {
    /// What went wrong, naming the field/tensor/file and the value.
    public let message: String
    /// What the user can do about it.
    public let hint: String

    public init(_ message: String, hint: String) {
        self.message = message
        self.hint = hint
    }

    public var description: String { "\(message)\nHint: \(hint)" }
}
