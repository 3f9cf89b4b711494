// Errors of FledgeTraining. Each message names the run, file, step or setting, and ends with a hint.

/// An error raised while setting up, running, saving or resuming training.
public struct TrainingError: Error, CustomStringConvertible, Equatable {
    public let message: String
    public let hint: String

    public init(_ message: String, hint: String) {
        self.message = message
        self.hint = hint
    }

    public var description: String { "\(message)\nHint: \(hint)" }
}
