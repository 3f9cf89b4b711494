// BinaryFiles: the plain file I/O of a streaming preparation — an input file read in blocks or by byte range
// (and checked for changes while it was read), and the append-only work files ("spills") that hold a run's
// tokens and signatures on disk instead of in memory, read back by position. Writes that fail (a full disk, a
// file-size limit) become a DataError naming the file and the space the run needs.

import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// An input file, open for reading.
final class InputFile {
    let path: String
    let size: Int
    let modified: Date?
    private let descriptor: Int32
    private var position = 0

    init(_ url: URL) throws {
        path = url.path
        descriptor = open(url.path, O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else {
            throw DataError(
                "cannot read \(url.path): \(String(cString: strerror(errno)))",
                hint: "check that the file exists and is readable.")
        }
        var info = stat()
        guard fstat(descriptor, &info) == 0, info.st_mode & S_IFMT == S_IFREG else {
            close(descriptor)
            throw DataError("cannot read \(url.path): not a regular file", hint: "give files or folders of files.")
        }
        size = Int(info.st_size)
        modified = InputFile.modificationDate(info)
    }

    deinit { close(descriptor) }

    static func modificationDate(_ info: stat) -> Date {
        Date(timeIntervalSince1970: Double(info.st_mtim.tv_sec) + Double(info.st_mtim.tv_nsec) / 1e9)
    }

    /// The next block of at most `count` bytes (empty at the end of the file).
    func read(upTo count: Int) throws -> [UInt8] {
        let bytes = try read(position..<min(size, position + count), allowShort: true)
        position += bytes.count
        return bytes
    }

    /// The bytes in `range` (a file that is now shorter is an error: it changed while it was read).
    func read(_ range: Range<Int>, allowShort: Bool = false) throws -> [UInt8] {
        guard !range.isEmpty else { return [] }
        var bytes = [UInt8](repeating: 0, count: range.count)
        var done = 0
        while done < range.count {
            let got = bytes.withUnsafeMutableBytes { raw in
                pread(descriptor, raw.baseAddress! + done, range.count - done, off_t(range.lowerBound + done))
            }
            if got < 0 && errno == EINTR { continue }
            guard got >= 0 else {
                throw DataError(
                    "cannot read \(path): \(String(cString: strerror(errno)))",
                    hint: "check the file and the disk it is on.")
            }
            if got == 0 { break }
            done += got
        }
        if done < range.count {
            guard allowShort else { throw changed(now: "shorter") }
            bytes.removeLast(range.count - done)
        }
        return bytes
    }

    /// The SHA-256 of the rest of the file (all of it, when nothing was read yet) and how many bytes that was.
    func sha256() throws -> (hex: String, bytes: Int) {
        var hasher = SHA256()
        var bytes = 0
        while true {
            let block = try read(upTo: 4 << 20)
            if block.isEmpty { break }
            hasher.update(block)
            bytes += block.count
        }
        return (hasher.finalizeHex(), bytes)
    }

    /// Throws when the file is not as it was when opened (another program wrote to it while it was read).
    func checkUnchanged(bytesRead: Int? = nil) throws {
        var info = stat()
        guard stat(path, &info) == 0 else { throw changed(now: "gone") }
        if Int(info.st_size) != size || InputFile.modificationDate(info) != modified
            || (bytesRead != nil && bytesRead != size)
        {
            throw changed(now: "\(info.st_size) bytes")
        }
    }

    private func changed(now: String) -> DataError {
        DataError(
            "\(path) changed while it was read (it had \(size) bytes, now \(now))",
            hint:
                "prepare from a copy that nothing writes to, or wait until the program writing it has finished; nothing was written."
        )
    }
}

/// An append-only work file of fixed-size elements, read back by position.
final class SpillFile {
    let url: URL
    private let descriptor: Int32
    /// Bytes written so far.
    private(set) var bytes = 0
    /// The run's total need on disk, estimated when a write fails (for the message).
    var estimateNeed: () -> Int = { 0 }

    /// Opens `url` empty, or (`keeping`) with the first `keeping` bytes of what it holds.
    init(_ url: URL, keeping: Int? = nil) throws {
        self.url = url
        descriptor = open(url.path, O_RDWR | O_CREAT | (keeping == nil ? O_TRUNC : 0) | O_CLOEXEC, 0o644)
        guard descriptor >= 0 else {
            throw DataError(
                "cannot create \(url.path): \(String(cString: strerror(errno)))",
                hint: "check that the output's parent folder is writable.")
        }
        if let keeping {
            var info = stat()
            guard fstat(descriptor, &info) == 0, Int(info.st_size) >= keeping,
                ftruncate(descriptor, off_t(keeping)) == 0
            else {
                close(descriptor)
                throw DataError(
                    "the work file \(url.path) is shorter than its checkpoint says (\(info.st_size) < \(keeping))",
                    hint: "delete \(url.deletingLastPathComponent().path) and run again.")
            }
            bytes = keeping
        }
    }

    /// Empties the file.
    func truncate() throws {
        guard ftruncate(descriptor, 0) == 0 else { throw SpillFile.writeFailed(url, error: errno, need: 0) }
        bytes = 0
    }

    /// Flushes the file to disk (before a checkpoint claims its length).
    func sync() { _ = fsync(descriptor) }

    deinit { close(descriptor) }

    /// Appends `raw`.
    func append(_ raw: UnsafeRawBufferPointer) throws {
        try SpillFile.write(descriptor, raw, at: bytes, url: url, need: estimateNeed)
        bytes += raw.count
    }

    func append<T>(_ values: [T]) throws {
        try values.withUnsafeBytes { try append($0) }
    }

    /// Reads `buffer.count` bytes at byte `offset`.
    func read(at offset: Int, into buffer: UnsafeMutableRawBufferPointer) throws {
        var done = 0
        while done < buffer.count {
            let got = pread(descriptor, buffer.baseAddress! + done, buffer.count - done, off_t(offset + done))
            if got < 0 && errno == EINTR { continue }
            guard got > 0 else {
                throw DataError(
                    "cannot read back the work file \(url.path): \(got < 0 ? String(cString: strerror(errno)) : "it is shorter than written")",
                    hint: "something else changed the output's temporary folder; run again.")
            }
            done += got
        }
    }

    /// Writes all of `raw` at `offset` of `descriptor`; a failure names the file and the space needed.
    static func write(
        _ descriptor: Int32, _ raw: UnsafeRawBufferPointer, at offset: Int, url: URL, need: () -> Int
    ) throws {
        var done = 0
        while done < raw.count {
            let wrote = pwrite(descriptor, raw.baseAddress! + done, raw.count - done, off_t(offset + done))
            if wrote < 0 && errno == EINTR { continue }
            guard wrote > 0 else { throw writeFailed(url, error: errno, need: need()) }
            done += wrote
        }
    }

    /// The error of a write that failed: a full disk (or a file-size limit) says how much space the run needs.
    static func writeFailed(_ url: URL, error: Int32, need: Int) -> DataError {
        let folder = url.deletingLastPathComponent()
        var info = statvfs()
        let free = statvfs(folder.path, &info) == 0 ? Int(info.f_bavail) * Int(info.f_frsize) : nil
        let full = error == ENOSPC || error == EFBIG || error == EDQUOT
        let space =
            need > 0
            ? " This preparation needs about \(megabytes(need)) on that disk\(free.map { " (\(megabytes($0)) free now)" } ?? "")."
            : ""
        return DataError(
            "cannot write \(url.path): \(String(cString: strerror(error))).\(space)",
            hint: full
                ? "free disk space (or raise the file-size limit) and run again; nothing was left at the output."
                : "check that the output folder is writable; nothing was left at the output.")
    }

    static func megabytes(_ bytes: Int) -> String { String(format: "%.1f MB", Double(bytes) / 1e6) }
}

/// A file written front to back in one go (a shard, documents.jsonl): buffered appends, and the SHA-256 of
/// everything written.
final class SequentialFile {
    let url: URL
    private let descriptor: Int32
    private var buffer: [UInt8] = []
    private var written = 0
    private var hasher = SHA256()
    private let need: () -> Int

    init(_ url: URL, need: @escaping () -> Int) throws {
        self.url = url
        self.need = need
        descriptor = open(url.path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard descriptor >= 0 else { throw SpillFile.writeFailed(url, error: errno, need: need()) }
        buffer.reserveCapacity(1 << 20)
    }

    deinit { close(descriptor) }

    func append(_ raw: UnsafeRawBufferPointer) throws {
        if buffer.count + raw.count > 1 << 20 { try flush() }
        if raw.count >= 1 << 20 {
            hasher.update(raw.bindMemory(to: UInt8.self))
            try SpillFile.write(descriptor, raw, at: written, url: url, need: need)
            written += raw.count
        } else {
            buffer.append(contentsOf: raw.bindMemory(to: UInt8.self))
        }
    }

    func append(_ bytes: [UInt8]) throws { try bytes.withUnsafeBytes { try append($0) } }

    private func flush() throws {
        guard !buffer.isEmpty else { return }
        try buffer.withUnsafeBytes { raw in
            hasher.update(raw.bindMemory(to: UInt8.self))
            try SpillFile.write(descriptor, raw, at: written, url: url, need: need)
        }
        written += buffer.count
        buffer.removeAll(keepingCapacity: true)
    }

    /// Writes what is buffered; returns the file's SHA-256.
    func finish() throws -> String {
        try flush()
        return hasher.finalizeHex()
    }
}
