// Communicator: what data-parallel training needs from the processes of a job — who am I (rank), how many
// are we (size), sum a buffer over all ranks (all-reduce), copy bytes from one rank to all (broadcast),
// wait for all (barrier), and stop the whole job (abort). Open MPI implements it for CPU processes
// (MPICommunicator); threads in one process implement it for tests (LocalGroup); NCCL would implement the
// same for GPU buffers. Collectives are called in the same order by every rank, from one thread.

import Foundation

/// The processes of one training job.
public protocol Communicator: AnyObject {
    /// This process's index, 0..<size; rank 0 prints, logs and writes checkpoints.
    var rank: Int { get }
    var size: Int { get }
    /// What carries the collectives, for the start-up line ("Open MPI v4.1.4", "one process").
    var name: String { get }
    /// Replaces `values` on every rank by their element-wise sum over all ranks. `what` names the call in a
    /// timeout message.
    func allReduceSum(_ values: UnsafeMutableBufferPointer<Float>, what: StaticString) throws(DistributedError)
    func allReduceSum(_ values: UnsafeMutableBufferPointer<Double>, what: StaticString) throws(DistributedError)
    /// Copies `bytes` of rank `root` into `bytes` of every other rank (all give the same count).
    func broadcast(_ bytes: UnsafeMutableRawBufferPointer, from root: Int, what: StaticString)
        throws(DistributedError)
    func barrier(what: StaticString) throws(DistributedError)
    /// Stops every rank of the job with `code` (after this rank printed why). Does not return.
    func abort(code: Int32) -> Never
    /// Leaves the job cleanly (every rank calls it at the end).
    func finish()
}

extension Communicator {
    public var isLeader: Bool { rank == 0 }

    /// Sums an array over all ranks.
    public func allReduceSum(_ values: inout [Double], what: StaticString) throws(DistributedError) {
        try values.withUnsafeMutableBufferPointer { (buffer) throws(DistributedError) in
            try allReduceSum(buffer, what: what)
        }
    }

    /// Rank `root`'s `data` on every rank (the others' argument is ignored).
    public func broadcast(_ data: Data, from root: Int, what: StaticString) throws -> Data {
        var length = [Double(data.count)]
        if rank != root { length[0] = 0 }
        try allReduceSum(&length, what: what)
        var bytes = [UInt8](repeating: 0, count: Int(length[0]))
        if rank == root { bytes = [UInt8](data) }
        try bytes.withUnsafeMutableBytes { try broadcast($0, from: root, what: what) }
        return Data(bytes)
    }

    /// Checks that every rank has the same value for each item (code, configuration, data, ...); throws the
    /// same error on every rank, naming the ranks that differ from rank 0 and in what.
    public func checkAgreement(_ items: [(label: String, value: String)]) throws {
        guard size > 1 else { return }
        let mine = items.map(\.value)
        let encoded = (try? JSONEncoder().encode(mine)) ?? Data()
        let leaders =
            (try? JSONDecoder().decode([String].self, from: try broadcast(encoded, from: 0, what: "start-up check")))
            ?? []
        var differs = [Double](repeating: 0, count: size * items.count)
        for (index, value) in mine.enumerated() where index >= leaders.count || leaders[index] != value {
            differs[rank * items.count + index] = 1
        }
        try allReduceSum(&differs, what: "start-up check")
        var lines: [String] = []
        for other in 1..<size {
            let labels = items.indices.filter { differs[other * items.count + $0] != 0 }.map { items[$0].label }
            if !labels.isEmpty {
                lines.append("rank \(other) differs from rank 0 in \(labels.joined(separator: ", "))")
            }
        }
        guard lines.isEmpty else {
            throw DistributedError(
                "the ranks of this job were not started alike: " + lines.joined(separator: "; "),
                hint:
                    "start every rank with the same fledge binary, the same options and the same data (on several hosts: the same files at the same paths).",
                everyRank: true)
        }
    }
}

/// A job of one process: every collective is the identity.
public final class SingleProcess: Communicator {
    public init() {}
    public var rank: Int { 0 }
    public var size: Int { 1 }
    public var name: String { "one process" }
    public func allReduceSum(_ values: UnsafeMutableBufferPointer<Float>, what: StaticString) {}
    public func allReduceSum(_ values: UnsafeMutableBufferPointer<Double>, what: StaticString) {}
    public func broadcast(_ bytes: UnsafeMutableRawBufferPointer, from root: Int, what: StaticString) {}
    public func barrier(what: StaticString) {}
    public func abort(code: Int32) -> Never { exit(code) }
    public func finish() {}
}
