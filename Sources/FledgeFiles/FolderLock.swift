// FolderLock: one process at a time per run folder and per output. An exclusive `flock` on a lock file: the
// kernel releases it when the holder exits or dies (kill -9 included), so a lock file left by a dead process
// is stale by construction and the next process simply takes it. The holder deletes the file when it lets
// go; a process that locked a file just deleted by its holder sees that the path no longer names its file
// and tries again. The file records the holder's pid and command for the message another process gets.

import Foundation

/// An exclusive lock held for the life of this object (or the process).
public final class FolderLock: @unchecked Sendable {
    public let url: URL
    private let descriptor: Int32

    private final class Entry {
        weak var lock: FolderLock?
        init(_ lock: FolderLock) { self.lock = lock }
    }
    private static let registry = NSLock()
    nonisolated(unsafe) private static var held: [String: Entry] = [:]

    private init(url: URL, descriptor: Int32) {
        self.url = url
        self.descriptor = descriptor
    }

    /// Released when the last holder in this process lets go: the file goes first, then the lock.
    deinit {
        unlink(url.path)
        close(descriptor)
    }

    /// Locks `lockFile` (created if needed) for `what` ("the run runs/a"); the lock is shared within this
    /// process, refused with a message naming the holder when another process has it.
    public static func acquire(_ lockFile: URL, what: String) throws -> FolderLock {
        let path = PathCheck.canonical(lockFile.path)
        registry.lock()
        defer { registry.unlock() }
        if let lock = held[path]?.lock { return lock }
        _ = exitHook
        var descriptor: Int32 = -1
        for _ in 0..<100 {
            descriptor = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
            guard descriptor >= 0 else {
                throw FileError(
                    "cannot create the lock file \(path): \(String(cString: strerror(errno)))",
                    hint: "check that the folder exists and is writable.")
            }
            guard flock(descriptor, LOCK_EX | LOCK_NB) == 0 else {
                let holder = String(decoding: FileManager.default.contents(atPath: path) ?? Data(), as: UTF8.self)
                    .trimmingCharacters(in: .whitespacesAndNewlines)
                close(descriptor)
                throw FileError(
                    "\(what) is in use by another Fledge process\(holder.isEmpty ? "" : " (\(holder))")",
                    hint: "wait for it to finish or stop it; two processes must never write the same folder.")
            }
            var mine = stat()
            var named = stat()
            if fstat(descriptor, &mine) == 0, stat(path, &named) == 0, mine.st_ino == named.st_ino,
                mine.st_dev == named.st_dev
            {
                break
            }
            close(descriptor)  // the previous holder deleted this file as we locked it: take the new one
            descriptor = -1
        }
        guard descriptor >= 0 else {
            throw FileError("cannot hold the lock file \(path)", hint: "another process keeps replacing it; stop it.")
        }
        let note = "pid \(getpid()): \(CommandLine.arguments.prefix(4).joined(separator: " "))\n"
        _ = ftruncate(descriptor, 0)
        _ = note.withCString { write(descriptor, $0, strlen($0)) }
        let lock = FolderLock(url: URL(fileURLWithPath: path), descriptor: descriptor)
        held[path] = Entry(lock)
        return lock
    }

    /// At a normal exit, locks still held are let go like at deinit (their files deleted); the kernel
    /// releases the flocks themselves in any case, even after kill -9.
    private static let exitHook: Void = { atexit { FolderLock.deleteHeldFiles() } }()

    private static func deleteHeldFiles() {
        registry.lock()
        defer { registry.unlock() }
        for (path, entry) in held where entry.lock != nil { unlink(path) }
    }

    /// The lock of a run folder (`RUN/.lock`; the folder is created).
    public static func run(_ folder: URL) throws -> FolderLock {
        do {
            try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        } catch {
            var ancestor = folder
            while ancestor.path != "/" && UserFile.kind(ancestor.path) == .missing {
                ancestor.deleteLastPathComponent()
            }
            if UserFile.kind(ancestor.path) == .file || UserFile.kind(ancestor.path) == .other {
                throw FileError(
                    "cannot make the folder \(folder.path): \(ancestor.path) is a file",
                    hint: "name a folder path; every part before the last must be a folder.")
            }
            throw FileError(
                "cannot create \(folder.path): \(String(cString: strerror(errno)))",
                hint: "check that you can write in \(ancestor.path).")
        }
        return try acquire(folder.appendingPathComponent(".lock"), what: "the run \(folder.path)")
    }

    /// The lock of an output that is replaced whole (`PARENT/.NAME.lock`, beside it).
    public static func output(_ target: URL) throws -> FolderLock {
        let parent = target.deletingLastPathComponent()
        try UserFile.requireFolder(parent.path, "the folder of \(target.lastPathComponent),")
        return try acquire(
            parent.appendingPathComponent(".\(target.lastPathComponent).lock"), what: "the output \(target.path)")
    }

}
