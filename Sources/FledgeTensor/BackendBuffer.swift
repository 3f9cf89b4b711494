// BackendBuffer: memory that a backend allocated and owns (parameters, gradients, optimizer moments,
// activations, KV caches). Code outside the backend passes its address, and addresses computed from it, to the
// backend's kernels and never dereferences them; reading or writing from the host is an explicit copy, or a
// `withHostAccess` scope that is in place on a backend that shares the host's memory and staged through a host
// copy on one that does not. `Storage` remains the type for memory that is only ever the host's.

/// `count` zeroed elements of a backend's memory, freed by that backend when the last reference goes.
public final class BackendBuffer<Element: BitwiseCopyable>: @unchecked Sendable {
    /// Number of elements.
    public let count: Int
    /// The backend whose memory this is.
    public let backend: any Backend
    /// The first element's address in the backend's memory: for the backend's kernels, not for the host.
    public let address: UnsafeMutablePointer<Element>

    /// Allocates `count` zeroed elements on `backend`; throws with the size when they cannot be had.
    public init(backend: any Backend, count: Int) throws(TensorError) {
        precondition(count >= 0, "a buffer's count must not be negative")
        let (bytes, overflow) = count.multipliedReportingOverflow(by: MemoryLayout<Element>.stride)
        guard !overflow else { throw .outOfMemory(bytes: .max) }
        self.count = count
        self.backend = backend
        address = try backend.allocate(bytes: bytes).bindMemory(to: Element.self, capacity: max(1, count))
    }

    deinit { backend.deallocate(UnsafeMutableRawPointer(address)) }

    /// Bytes of the buffer.
    public var byteCount: Int { count * MemoryLayout<Element>.stride }

    /// Sets every element to zero.
    public func zero() { backend.zero(UnsafeMutableRawPointer(address), bytes: byteCount) }

    /// The elements of `range`, copied to the host.
    public func copyToHost(_ range: Range<Int>) -> [Element] {
        precondition(range.lowerBound >= 0 && range.upperBound <= count, "range \(range) is outside 0..<\(count)")
        return [Element](unsafeUninitializedCapacity: range.count) { host, initialized in
            if let base = host.baseAddress, !range.isEmpty {
                backend.copyToHost(base, from: address + range.lowerBound, count: range.count)
            }
            initialized = range.count
        }
    }

    /// Every element, copied to the host (for tests, I/O and small values).
    public var array: [Element] { copyToHost(0..<count) }

    /// Writes `values` from the host into the buffer, from element `offset` on.
    public func copyFromHost(_ values: UnsafeBufferPointer<Element>, at offset: Int = 0) {
        precondition(
            offset >= 0 && offset + values.count <= count, "\(values.count) values at \(offset) overflow \(count)")
        guard let base = values.baseAddress, !values.isEmpty else { return }
        backend.copyFromHost(address + offset, from: base, count: values.count)
    }

    /// Calls `body` with the buffer's elements in host memory, for reading and writing: the buffer itself when the
    /// backend shares the host's memory, else a host copy that is written back when `body` returns normally.
    public func withHostAccess<R, E: Error>(_ body: (UnsafeMutableBufferPointer<Element>) throws(E) -> R) throws(E)
        -> R
    {
        if backend.sharesHostMemory { return try body(UnsafeMutableBufferPointer(start: address, count: count)) }
        var staged = array
        let result = try staged.withUnsafeMutableBufferPointer { (host) throws(E) -> R in try body(host) }
        staged.withUnsafeBufferPointer { copyFromHost($0) }
        return result
    }

    /// Calls `body` with the buffer's elements in host memory, for reading only (no copy back).
    public func withHostReadAccess<R, E: Error>(_ body: (UnsafeBufferPointer<Element>) throws(E) -> R) throws(E) -> R {
        if backend.sharesHostMemory { return try body(UnsafeBufferPointer(start: address, count: count)) }
        let staged = array
        return try staged.withUnsafeBufferPointer { (host) throws(E) -> R in try body(host) }
    }

    /// Whether `other` lives in memory this buffer's kernels can read: the same backend, or two backends that
    /// both use the host's memory.
    public func isReadable(by other: any Backend) -> Bool {
        other === backend || (other.sharesHostMemory && backend.sharesHostMemory)
    }
}
