// ThreadPool: a persistent pool of worker threads that run one parallel region at a time.
// The calling thread takes part as worker 0, so `threadCount` 1 means "run inline". Workers spin briefly
// and then sleep on a condition variable between regions, so back-to-back kernels start quickly.
// Not a task scheduler: regions must not be nested (a nested call runs inline, serially).

import Foundation
import Synchronization

/// A fixed set of threads that run `parallel` regions; the caller is thread 0.
public final class ThreadPool: @unchecked Sendable {
    /// Number of threads taking part in a region, including the caller.
    public let threadCount: Int

    private let generation = Atomic<Int>(0)
    private let pending = Atomic<Int>(0)
    private let busy = Atomic<Bool>(false)
    private let stopping = Atomic<Bool>(false)
    private let condition = NSCondition()
    private var job: ((Int) -> Void)?

    /// The number of cores this process may use.
    public static var coreCount: Int { ProcessInfo.processInfo.activeProcessorCount }

    /// Creates a pool of `threadCount` threads (default: the core count).
    public init(threadCount: Int = ThreadPool.coreCount) {
        self.threadCount = max(1, threadCount)
        for index in 1..<self.threadCount {
            let thread = Thread { [unowned self] in self.workerLoop(index: index) }
            thread.name = "fledge-worker-\(index)"
            thread.start()
        }
    }

    deinit {
        stopping.store(true, ordering: .releasing)
        condition.lock()
        generation.add(1, ordering: .releasing)
        condition.broadcast()
        condition.unlock()
    }

    /// Runs `body(threadIndex)` once on each of the `threadCount` threads and returns when all are done.
    public func parallel(_ body: (Int) -> Void) {
        if threadCount == 1 || busy.exchange(true, ordering: .acquiring) {
            // Inline: a single-threaded pool, or a nested region.
            if threadCount == 1 { body(0) } else { for index in 0..<threadCount { body(index) } }
            return
        }
        withoutActuallyEscaping(body) { escapable in
            job = escapable
            pending.store(threadCount - 1, ordering: .relaxed)
            condition.lock()
            generation.add(1, ordering: .releasing)
            condition.broadcast()
            condition.unlock()
            escapable(0)
            while pending.load(ordering: .acquiring) != 0 {}
            job = nil
        }
        busy.store(false, ordering: .releasing)
    }

    /// Splits `0..<count` into one contiguous chunk per thread and runs `body` on each non-empty chunk.
    /// Chunks are multiples of `alignment` elements (except the last), so SIMD loops stay aligned.
    public func parallelFor(_ count: Int, alignment: Int = 1, minimumPerThread: Int = 1, _ body: (Range<Int>) -> Void)
    {
        guard count > 0 else { return }
        let threads = min(threadCount, max(1, count / max(1, minimumPerThread)))
        if threads == 1 {
            body(0..<count)
            return
        }
        let units = (count + alignment - 1) / alignment
        parallel { index in
            guard index < threads else { return }
            let lo = min(count, (units * index / threads) * alignment)
            let hi = min(count, (units * (index + 1) / threads) * alignment)
            if lo < hi { body(lo..<hi) }
        }
    }

    private func workerLoop(index: Int) {
        var seen = 0
        while true {
            var spins = 0
            while generation.load(ordering: .acquiring) == seen && spins < 50_000 { spins += 1 }
            if generation.load(ordering: .acquiring) == seen {
                condition.lock()
                while generation.load(ordering: .acquiring) == seen { condition.wait() }
                condition.unlock()
            }
            seen = generation.load(ordering: .acquiring)
            if stopping.load(ordering: .acquiring) { return }
            job?(index)
            pending.subtract(1, ordering: .releasing)
        }
    }
}
