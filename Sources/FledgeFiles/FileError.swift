// Errors of FledgeFiles: the file-safety layer every module writes and reads user files through. Each error
// names the path and ends with a hint.

/// An error raised while checking, locking, reading or replacing a user's file or folder.
public struct FileError: Error, CustomStringConvertible, Equatable {
    public let message: String
    public let hint: String

    public init(_ message: String, hint: String) {
        self.message = message
        self.hint = hint
    }

    public var description: String { "\(message)\nHint: \(hint)" }
}
