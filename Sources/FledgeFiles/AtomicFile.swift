// AtomicFile: write a file through a temporary sibling, sync it and rename it into place
// (docs/file-safety.md), so a crash or a full disk never leaves a half-written file where a good one stood; the
// folder is synced too, so the rename itself survives a power cut.

import Foundation

/// Atomic file writes.
public enum AtomicFile {
    /// Writes the file at `url` by calling `body` with a handle to a temporary file in the same folder,
    /// syncing it and renaming it over `url`. On any error the temporary file is removed and `url` is untouched.
    public static func write(to url: URL, _ body: (FileHandle) throws -> Void) throws {
        let folder = url.deletingLastPathComponent()
        let temporary = folder.appendingPathComponent(
            ".\(url.lastPathComponent).tmp-\(getpid())-\(UInt32.random(in: 0...UInt32.max))")
        guard FileManager.default.createFile(atPath: temporary.path, contents: nil) else {
            throw FileError(
                "cannot create a file in \(folder.path)",
                hint: "check that the folder exists and is writable.")
        }
        do {
            let handle = try FileHandle(forWritingTo: temporary)
            do {
                try body(handle)
                try handle.synchronize()
                try handle.close()
            } catch {
                try? handle.close()
                throw error
            }
            if rename(temporary.path, url.path) != 0 {
                throw FileError(
                    "cannot move the new \(url.lastPathComponent) into place: \(String(cString: strerror(errno)))",
                    hint: "check permissions of \(folder.path); the previous file is untouched.")
            }
            Durable.syncFolder(folder)
        } catch let error as FileError {
            try? FileManager.default.removeItem(at: temporary)
            throw error
        } catch {
            try? FileManager.default.removeItem(at: temporary)
            throw FileError(
                "writing \(url.path) failed: \(error.localizedDescription)",
                hint: "check free disk space and permissions; the previous file, if any, is untouched.")
        }
    }

    /// Writes `data` to `url` atomically.
    public static func write(_ data: Data, to url: URL) throws {
        try write(to: url) { try $0.write(contentsOf: data) }
    }
}

/// fsync of folders, so that renames in them are on disk before Fledge reports them done.
public enum Durable {
    public static func syncFolder(_ folder: URL) {
        let descriptor = open(folder.path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard descriptor >= 0 else { return }
        _ = fsync(descriptor)
        close(descriptor)
    }

    /// fsync of every regular file directly inside `folder`, then of the folder.
    public static func syncTree(_ folder: URL) {
        for name in (try? FileManager.default.contentsOfDirectory(atPath: folder.path)) ?? [] {
            let descriptor = open(folder.appendingPathComponent(name).path, O_RDONLY | O_CLOEXEC)
            guard descriptor >= 0 else { continue }
            _ = fsync(descriptor)
            close(descriptor)
        }
        syncFolder(folder)
    }
}
