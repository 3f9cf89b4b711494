// Errors of FledgeDistributed: loading MPI, starting a job, a collective that fails or times out, ranks that
// disagree. Each names the rank or the value and ends with a hint.

/// An error raised while starting or running a job of several processes.
public struct DistributedError: Error, CustomStringConvertible, Equatable {
    public let message: String
    public let hint: String
    /// Raised by every rank at once (the ranks agreed on it, e.g. a configuration mismatch): each can stop
    /// cleanly. Otherwise only this rank knows, and the job must be aborted so the others do not wait for it.
    public let everyRank: Bool

    public init(_ message: String, hint: String, everyRank: Bool = false) {
        self.message = message
        self.hint = hint
        self.everyRank = everyRank
    }

    public var description: String { "\(message)\nHint: \(hint)" }
}
