// ThreadPool: a persistent pool of worker threads that run one parallel region at a time.
// The calling thread takes part, so `threadCount` 1 means "run inline". Workers spin briefly and then sleep
// on a condition variable between regions, so back-to-back kernels start quickly.
// A region has `threadCount` shares (share i is what "thread i" computes, so results do not depend on which
// OS thread runs it); each participant claims the next unclaimed share until none is left, and the region
// ends when every share is done. A worker that is late (asleep, or preempted by another process on a busy
// machine) therefore delays nothing: the threads that are running take its share.
// A region's work is a value of a `ParallelJob` / `ParallelRangeJob` type, not a closure: workers reach it
// through a pointer to the caller's stack and a specialised static trampoline, so starting a region
// allocates nothing (a closure would need `withoutActuallyEscaping`, which heap-allocates on every call).
// Not a task scheduler: regions must not be nested (a nested call runs inline, serially).

import Foundation
import Synchronization

/// Work run once on every thread of a region.
public protocol ParallelJob {
    /// Runs the share of thread `thread` (0 ..< threadCount; 0 is the calling thread).
    func run(thread: Int, of threadCount: Int)
}

/// Work over the indices 0..<count, split into one contiguous chunk per thread.
public protocol ParallelRangeJob {
    /// Runs the indices in `range`.
    func run(_ range: Range<Int>)
}

extension ParallelJob {
    /// Calls `run` on the job behind `context` (a pointer to a value of this type).
    static func trampoline(_ context: UnsafeRawPointer, _ thread: Int, _ threadCount: Int) {
        context.assumingMemoryBound(to: Self.self).pointee.run(thread: thread, of: threadCount)
    }
}

/// A range job cut into one chunk per thread, chunk boundaries on multiples of `alignment`.
struct ChunkedJob<Body: ParallelRangeJob>: ParallelJob {
    let body: Body
    let count: Int
    let threads: Int
    let alignment: Int

    func run(thread index: Int, of threadCount: Int) {
        guard index < threads else { return }
        let chunk = ThreadPool.chunk(count, share: index, of: threads, alignment: alignment)
        if !chunk.isEmpty { body.run(chunk) }
    }
}

extension ThreadPool {
    /// Share `index` of `0..<count` cut into `shares` contiguous chunks whose boundaries are multiples of
    /// `alignment` (empty when there is nothing left for it).
    static func chunk(_ count: Int, share index: Int, of shares: Int, alignment: Int = 1) -> Range<Int> {
        let units = (count + alignment - 1) / alignment
        let lo = min(count, (units * index / shares) * alignment)
        let hi = min(count, (units * (index + 1) / shares) * alignment)
        return lo..<max(lo, hi)
    }
}

/// A fixed set of threads that run parallel regions; the caller is thread 0.
public final class ThreadPool: @unchecked Sendable {
    /// Number of threads taking part in a region, including the caller.
    public let threadCount: Int

    private let busy = Atomic<Bool>(false)
    /// What the workers share with the pool. Each worker holds it strongly, so a worker that wakes after the
    /// pool is gone (the pool only signals the stop) still reads live memory, and then exits.
    private let shared: Shared

    final class Shared: @unchecked Sendable {
        let threadCount: Int
        let generation = Atomic<Int>(0)
        /// The next share of the current region to claim, and the shares finished.
        let claimed = Atomic<Int>(Int.max / 2)  // no region yet: nothing to claim
        let finished = Atomic<Int>(0)
        let stopping = Atomic<Bool>(false)
        let condition = NSCondition()
        // The current region: a pointer to the job on the caller's stack and the trampoline that runs it.
        var jobContext: UnsafeRawPointer?
        var jobEntry: ((UnsafeRawPointer, Int, Int) -> Void)?

        init(threadCount: Int) { self.threadCount = threadCount }

        /// Starts a region (or, with `stopping` set, the workers' exit).
        func wake() {
            condition.lock()
            generation.add(1, ordering: .releasing)
            condition.broadcast()
            condition.unlock()
        }

        func workerLoop(index: Int) {
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
                runShares()
            }
        }

        /// Claims and runs shares of the current region until none is left. The job is read only after a claim
        /// succeeds, and the region cannot end before a claimed share is finished, so the job is still alive.
        func runShares() {
            while true {
                let share = claimed.add(1, ordering: .acquiringAndReleasing).oldValue
                guard share < threadCount else { return }
                if let entry = jobEntry, let context = jobContext { entry(context, share, threadCount) }
                finished.add(1, ordering: .releasing)
            }
        }
    }

    /// The number of cores this process may use.
    public static var coreCount: Int { ProcessInfo.processInfo.activeProcessorCount }

    /// The most threads a pool starts: more than this only thrashes (and tens of thousands exhaust the machine).
    public static var maximumThreads: Int { max(64, 4 * coreCount) }

    /// Creates a pool of `threadCount` threads (default: the core count), clamped to 1...maximumThreads.
    public init(threadCount: Int = ThreadPool.coreCount) {
        self.threadCount = min(max(1, threadCount), ThreadPool.maximumThreads)
        let shared = Shared(threadCount: self.threadCount)
        self.shared = shared
        for index in 1..<self.threadCount {
            let thread = Thread { shared.workerLoop(index: index) }
            thread.name = "fledge-worker-\(index)"
            thread.start()
        }
    }

    deinit {
        shared.stopping.store(true, ordering: .releasing)
        shared.wake()
    }

    /// Runs `job` once for each share 0..<threadCount (`run(thread: share, of:)`), spread over the pool's
    /// threads, and returns when all are done.
    public func parallel<Job: ParallelJob>(_ job: Job) {
        if threadCount == 1 || busy.exchange(true, ordering: .acquiring) {
            // Inline: a single-threaded pool, or a nested region.
            for index in 0..<threadCount { job.run(thread: index, of: threadCount) }
            return
        }
        withUnsafePointer(to: job) { pointer in
            shared.jobContext = UnsafeRawPointer(pointer)
            shared.jobEntry = Job.trampoline
            shared.finished.store(0, ordering: .relaxed)
            // Publishes the job: a claim that reads this reset also sees the job.
            shared.claimed.store(0, ordering: .releasing)
            shared.wake()
            shared.runShares()
            while shared.finished.load(ordering: .acquiring) != threadCount {}
            // Late workers find every share claimed (claimed ≥ threadCount) and never read the job.
            shared.jobContext = nil
            shared.jobEntry = nil
        }
        busy.store(false, ordering: .releasing)
    }

    /// Splits `0..<count` into one contiguous chunk per thread and runs `job` on each non-empty chunk.
    /// Chunks are multiples of `alignment` elements (except the last), so SIMD loops stay aligned; fewer
    /// threads are used when a thread would get fewer than `minimumPerThread` indices.
    public func parallelFor<Job: ParallelRangeJob>(
        _ count: Int, alignment: Int = 1, minimumPerThread: Int = 1, _ job: Job
    ) {
        guard count > 0 else { return }
        let threads = min(threadCount, max(1, count / max(1, minimumPerThread)))
        if threads == 1 {
            job.run(0..<count)
            return
        }
        parallel(ChunkedJob(body: job, count: count, threads: threads, alignment: alignment))
    }
}
