// StopRequest: how a long command stops on a signal. The first Ctrl-C (or another of `signals`) only sets a flag
// that the library asks at its next safe point (the trainer after a step, data preparation after a batch), so the
// thread that writes files is the one that finishes or deletes them. A second one exits at once (130), after
// `beforeExit`. `requestOnly` signals (SIGUSR1, which mpirun forwards to every rank) set the flag and never exit.

import Foundation

final class StopRequest: @unchecked Sendable {
    private let lock = NSLock()
    private var flag = false
    private var sources: [DispatchSourceSignal] = []
    private let handled: [Int32]

    /// `message`: what the first signal prints (nil: nothing, as on data-parallel ranks other than 0).
    init(
        signals: [Int32], requestOnly: [Int32] = [], message: String?, beforeExit: @escaping () -> Void = {}
    ) {
        handled = signals + requestOnly
        for number in handled {
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
            let exits = signals.contains(number)
            source.setEventHandler { [unowned self] in
                lock.lock()
                let again = flag
                flag = true
                lock.unlock()
                guard exits else { return }
                if again {
                    beforeExit()
                    Foundation.exit(130)
                }
                if let message { FileHandle.standardError.write(Data(message.utf8)) }
            }
            source.resume()
            sources.append(source)
        }
    }

    /// Whether a stop was asked for.
    var requested: Bool {
        lock.lock()
        defer { lock.unlock() }
        return flag
    }

    deinit {
        for source in sources { source.cancel() }
        for number in handled { signal(number, SIG_DFL) }
    }
}
