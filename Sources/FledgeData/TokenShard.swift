// TokenShard: the token shard files — a header of 256 little-endian int32
// (magic, version, token count; the rest zero) followed by the tokens, as llm.c writes them
// (dev/data/data_common.py): magic 20240520 / version 1 for uint16 tokens, magic 20240801 / version 7 for
// uint32 tokens (vocabularies over 65,536). A loss-mask shard (question/answer data) has the same header with
// magic 20241121 / version 1 and one uint8 per token (1 = the token is a training target).

import Foundation

/// The kind of a shard file, from its header.
public enum ShardKind: Sendable, Equatable {
    case tokens16
    case tokens32
    case mask

    /// (magic, version) in the header.
    public var header: (magic: Int32, version: Int32) {
        switch self {
        case .tokens16: return (20_240_520, 1)
        case .tokens32: return (20_240_801, 7)
        case .mask: return (20_241_121, 1)
        }
    }

    /// Bytes per element after the header.
    public var elementSize: Int {
        switch self {
        case .tokens16: return 2
        case .tokens32: return 4
        case .mask: return 1
        }
    }

    /// The token kind that can hold ids of a vocabulary of `size`.
    public static func tokens(forVocabularySize size: Int) -> ShardKind { size <= 65_536 ? .tokens16 : .tokens32 }

    public static let headerBytes = 256 * 4
}

/// Writes shard files.
public enum ShardWriter {
    /// Writes `values` (token ids, or mask bytes for `.mask`) with a header to `url`; returns the file's SHA-256.
    @discardableResult
    public static func write(_ values: [Int32], kind: ShardKind, to url: URL) throws -> String {
        var data = Data(count: ShardKind.headerBytes + values.count * kind.elementSize)
        data.withUnsafeMutableBytes { raw in
            let header = raw.bindMemory(to: Int32.self)  // little-endian hosts only (x86-64, arm64)
            (header[0], header[1]) = kind.header
            header[2] = Int32(values.count)
            let body = raw.baseAddress! + ShardKind.headerBytes
            switch kind {
            case .tokens16:
                let out = body.assumingMemoryBound(to: UInt16.self)
                for (i, value) in values.enumerated() { out[i] = UInt16(truncatingIfNeeded: value) }
            case .tokens32:
                let out = body.assumingMemoryBound(to: UInt32.self)
                for (i, value) in values.enumerated() { out[i] = UInt32(bitPattern: value) }
            case .mask:
                let out = body.assumingMemoryBound(to: UInt8.self)
                for (i, value) in values.enumerated() { out[i] = UInt8(truncatingIfNeeded: value) }
            }
        }
        do {
            try data.write(to: url)
        } catch {
            throw DataError(
                "cannot write \(url.path): \(error.localizedDescription)",
                hint: "check free disk space and that the output folder is writable.")
        }
        return SHA256.hex(data)
    }
}

/// A shard file mapped into memory (read-only); the pages are loaded as the loader touches them.
public final class TokenShard: @unchecked Sendable {
    public let url: URL
    public let kind: ShardKind
    /// Tokens (or mask values) in the shard.
    public let count: Int
    private let base: UnsafeRawPointer
    private let mappedBytes: Int

    /// Maps `url` and checks its header against the file size; `expect` limits the kinds accepted.
    public init(_ url: URL, expect: [ShardKind] = [.tokens16, .tokens32]) throws {
        self.url = url
        let descriptor = open(url.path, O_RDONLY)
        guard descriptor >= 0 else {
            throw DataError(
                "cannot open shard \(url.path): \(String(cString: strerror(errno)))",
                hint: "check the path; re-run `fledge data prepare` if the folder is incomplete.")
        }
        defer { close(descriptor) }
        var info = stat()
        fstat(descriptor, &info)
        let size = Int(info.st_size)
        let fix = "re-run `fledge data prepare` to rewrite the shards."
        guard size >= ShardKind.headerBytes else {
            throw DataError("shard \(url.path) is \(size) bytes, shorter than its 1024-byte header", hint: fix)
        }
        guard let mapping = mmap(nil, size, PROT_READ, MAP_PRIVATE, descriptor, 0), mapping != MAP_FAILED else {
            throw DataError("cannot map shard \(url.path): \(String(cString: strerror(errno)))", hint: fix)
        }
        let header = UnsafeRawPointer(mapping)
        let magic = header.load(fromByteOffset: 0, as: Int32.self)
        let version = header.load(fromByteOffset: 4, as: Int32.self)
        let count = Int(header.load(fromByteOffset: 8, as: Int32.self))
        guard let kind = expect.first(where: { $0.header == (magic, version) }) else {
            munmap(mapping, size)
            let expected = expect.map { "magic \($0.header.magic) version \($0.header.version)" }.joined(
                separator: " or ")
            throw DataError(
                "shard \(url.path) has header magic \(magic) version \(version), expected \(expected)",
                hint: "this is not a \(expect == [.mask] ? "loss-mask" : "token") shard of this format; \(fix)")
        }
        let expectedSize = ShardKind.headerBytes + count * kind.elementSize
        guard count >= 0, size == expectedSize else {
            munmap(mapping, size)
            throw DataError(
                "shard \(url.path) is \(size) bytes but its header says \(count) tokens (\(expectedSize) bytes)",
                hint: "the file is truncated or was changed; \(fix)")
        }
        self.kind = kind
        self.count = count
        self.base = header
        self.mappedBytes = size
    }

    deinit { munmap(UnsafeMutableRawPointer(mutating: base), mappedBytes) }

    /// Element `i` (a token id, or a mask value).
    @inline(__always) public subscript(i: Int) -> Int32 {
        let data = base + ShardKind.headerBytes
        switch kind {
        case .tokens16: return Int32(data.load(fromByteOffset: 2 * i, as: UInt16.self))
        case .tokens32: return Int32(bitPattern: data.loadUnaligned(fromByteOffset: 4 * i, as: UInt32.self))
        case .mask: return Int32(data.load(fromByteOffset: i, as: UInt8.self))
        }
    }

    /// The SHA-256 of the whole file (header included), from the mapping: no second read of the file.
    public func sha256() -> String {
        var hash = SHA256()
        hash.update(UnsafeBufferPointer(start: base.assumingMemoryBound(to: UInt8.self), count: mappedBytes))
        return hash.finalizeHex()
    }

    /// The largest value in the shard (to check token ids against a vocabulary).
    public func maximum() -> Int32 {
        var largest: Int32 = 0
        for i in 0..<count { largest = max(largest, self[i]) }
        return largest
    }
}
