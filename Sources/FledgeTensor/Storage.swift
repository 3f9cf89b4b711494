// Storage: an owned, 64-byte aligned buffer of elements with closure-scoped raw access.
// It is not a tensor type with shapes or autograd: layouts (ParameterLayout, ActivationPlan) give meaning
// to ranges of it. Modelled on swift-nio's `withUnsafeReadableBytes`: no pointer escapes its closure.

import Foundation

/// `bytes` zeroed bytes of host memory (at least one), 64-byte aligned; release them with `free`. Throws when
/// they cannot be had. Host storage and the host-memory backends' allocations both come from here.
public func allocateAlignedZeroed(bytes: Int) throws(TensorError) -> UnsafeMutableRawPointer {
    precondition(bytes >= 0, "an allocation must not be negative")
    var raw: UnsafeMutableRawPointer?
    guard posix_memalign(&raw, 64, max(1, bytes)) == 0, let raw else { throw .outOfMemory(bytes: max(1, bytes)) }
    memset(raw, 0, max(1, bytes))
    return raw
}

/// A fixed-size, zero-initialised, 64-byte aligned buffer of `Element`s, freed when the last reference goes.
public final class Storage<Element: BitwiseCopyable>: @unchecked Sendable {
    /// Number of elements.
    public let count: Int
    private let base: UnsafeMutablePointer<Element>

    /// Allocates `count` zeroed elements. Throws when the memory cannot be had.
    public init(count: Int) throws(TensorError) {
        precondition(count >= 0, "Storage count must not be negative")
        self.count = count
        base = try allocateAlignedZeroed(bytes: count * MemoryLayout<Element>.stride)
            .bindMemory(to: Element.self, capacity: max(1, count))
    }

    /// Copies `values` into new storage.
    public convenience init(_ values: [Element]) throws(TensorError) {
        try self.init(count: values.count)
        values.withUnsafeBufferPointer { src in
            guard let s = src.baseAddress else { return }
            base.update(from: s, count: values.count)
        }
    }

    deinit { free(base) }

    /// Calls `body` with mutable access to every element.
    @inlinable
    public func withUnsafeMutableBufferPointer<R, E: Error>(
        _ body: (UnsafeMutableBufferPointer<Element>) throws(E) -> R
    ) throws(E) -> R {
        try body(UnsafeMutableBufferPointer(start: unsafeBase, count: count))
    }

    /// Calls `body` with read access to every element.
    @inlinable
    public func withUnsafeBufferPointer<R, E: Error>(
        _ body: (UnsafeBufferPointer<Element>) throws(E) -> R
    ) throws(E) -> R {
        try body(UnsafeBufferPointer(start: unsafeBase, count: count))
    }

    /// The elements as an array (a copy; for tests, I/O and small values).
    public var array: [Element] { withUnsafeBufferPointer { Array($0) } }

    /// Sets every element to zero.
    public func zero() { memset(base, 0, count * MemoryLayout<Element>.stride) }

    @usableFromInline var unsafeBase: UnsafeMutablePointer<Element> { base }
}
