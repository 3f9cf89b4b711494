// Errors of FledgeInterop. Each message names the file, field, tensor or feature, and ends with a hint.

/// An error raised while exporting or importing a model.
public struct InteropError: Error, CustomStringConvertible, Equatable {
    /// What went wrong, naming the field/tensor/file/feature and the value.
    public let message: String
    /// What the user can do about it.
    public let hint: String

    public init(_ message: String, hint: String) {
        self.message = message
        self.hint = hint
    }

    public var description: String { "\(message)\nHint: \(hint)" }
}
