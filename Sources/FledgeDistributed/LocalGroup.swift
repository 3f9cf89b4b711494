// LocalGroup: a job of threads in one process, each thread one rank. It is the reference implementation of
// the collectives (sums in rank order, so every rank gets bit-identical results) and lets the test suite run
// data-parallel training without MPI.

import Foundation

/// Ranks as threads of this process: `LocalGroup(size: 2).members` gives one communicator per thread.
public final class LocalGroup: @unchecked Sendable {
    public let size: Int
    private let condition = NSCondition()
    private var arrived = 0
    private var generation = 0
    /// Each rank's buffer during a collective.
    private var slots: [UnsafeMutableRawPointer?]

    public init(size: Int) {
        precondition(size >= 1)
        self.size = size
        slots = Array(repeating: nil, count: size)
    }

    /// One communicator per rank; each must be used by its own thread.
    public var members: [Communicator] { (0..<size).map { Member(group: self, rank: $0) } }

    /// Blocks until every rank has arrived.
    fileprivate func wait() {
        condition.lock()
        defer { condition.unlock() }
        let mine = generation
        arrived += 1
        if arrived == size {
            arrived = 0
            generation += 1
            condition.broadcast()
        } else {
            while generation == mine { condition.wait() }
        }
    }

    fileprivate func deposit(_ pointer: UnsafeMutableRawPointer?, rank: Int) {
        condition.lock()
        slots[rank] = pointer
        condition.unlock()
        wait()
    }

    fileprivate func slot(_ rank: Int) -> UnsafeMutableRawPointer? {
        condition.lock()
        defer { condition.unlock() }
        return slots[rank]
    }

    fileprivate func sum<T: BinaryFloatingPoint>(_ values: UnsafeMutableBufferPointer<T>, rank: Int) {
        deposit(UnsafeMutableRawPointer(values.baseAddress), rank: rank)
        var total = [T](repeating: 0, count: values.count)
        for other in 0..<size {
            guard let pointer = slot(other)?.assumingMemoryBound(to: T.self) else { continue }
            for i in 0..<values.count { total[i] += pointer[i] }
        }
        wait()  // every rank has read every buffer
        for i in 0..<values.count { values[i] = total[i] }
        wait()
    }

    private final class Member: Communicator {
        let group: LocalGroup
        let rank: Int
        init(group: LocalGroup, rank: Int) {
            self.group = group
            self.rank = rank
        }
        var size: Int { group.size }
        var name: String { "\(group.size) threads" }
        func allReduceSum(_ values: UnsafeMutableBufferPointer<Float>, what: StaticString) {
            group.sum(values, rank: rank)
        }
        func allReduceSum(_ values: UnsafeMutableBufferPointer<Double>, what: StaticString) {
            group.sum(values, rank: rank)
        }
        func broadcast(_ bytes: UnsafeMutableRawBufferPointer, from root: Int, what: StaticString) {
            group.deposit(bytes.baseAddress, rank: rank)
            if rank != root, bytes.count > 0, let source = group.slot(root) {
                bytes.baseAddress!.copyMemory(from: source, byteCount: bytes.count)
            }
            group.wait()
        }
        func barrier(what: StaticString) { group.wait() }
        func abort(code: Int32) -> Never { fatalError("LocalGroup rank \(rank) aborted with code \(code)") }
        func finish() {}
    }
}
