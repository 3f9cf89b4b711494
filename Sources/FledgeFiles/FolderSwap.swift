// FolderSwap: a folder output (a checkpoint, prepared data) is built complete under a temporary sibling
// name, `.NAME.tmp-PID`, and then put in place so that a complete folder stands at NAME at every instant:
// when NAME exists the two are exchanged in one atomic renameat2(RENAME_EXCHANGE) and the old one (now under
// the temporary name) is deleted. Where the file system cannot exchange, NAME is first renamed to
// `.NAME.old-PID`; a kill between the two renames then leaves no NAME, and `recover` (run under the folder's
// lock before the next use) puts the newest complete leftover back. Leftovers of dead processes are removed
// by the same call.

import Foundation

/// Atomic replacement of folders, and recovery after a kill.
public enum FolderSwap {
    /// The temporary sibling a new `target` is built in.
    public static func temporary(for target: URL) -> URL {
        target.deletingLastPathComponent().appendingPathComponent(".\(target.lastPathComponent).tmp-\(getpid())")
    }

    /// Puts the complete folder `new` at `target`, replacing what stood there only once `new` is in place.
    public static func install(_ new: URL, at target: URL) throws {
        Durable.syncTree(new)
        let parent = target.deletingLastPathComponent()
        if UserFile.kind(target.path) != .missing {
            if exchangeAllowed, let exchange = renameat2, exchange(AT_FDCWD, new.path, AT_FDCWD, target.path, 2) == 0 {
                Durable.syncFolder(parent)
                try? FileManager.default.removeItem(at: new)  // now the previous folder
                return
            }
            // No atomic exchange here: move the old folder aside, then the new one in (recover() mends a kill between).
            let old = parent.appendingPathComponent(".\(target.lastPathComponent).old-\(getpid())")
            try? FileManager.default.removeItem(at: old)
            guard rename(target.path, old.path) == 0 else { throw renameError(target, old) }
            guard rename(new.path, target.path) == 0 else {
                let error = renameError(new, target)
                _ = rename(old.path, target.path)
                throw error
            }
            Durable.syncFolder(parent)
            try? FileManager.default.removeItem(at: old)
            return
        }
        guard rename(new.path, target.path) == 0 else { throw renameError(new, target) }
        Durable.syncFolder(parent)
    }

    /// The temporary and old siblings of `target` left by earlier processes (`.NAME.tmp-*`, `.NAME.old-*`).
    public static func leftovers(of target: URL) -> [URL] {
        let parent = target.deletingLastPathComponent()
        let name = target.lastPathComponent
        let names = (try? FileManager.default.contentsOfDirectory(atPath: parent.path)) ?? []
        return names.filter { $0.hasPrefix(".\(name).tmp-") || $0.hasPrefix(".\(name).old-") }.sorted()
            .map { parent.appendingPathComponent($0) }
    }

    /// Run with `target`'s lock held: when `target` is missing, the newest complete leftover (largest `rank`;
    /// `rank` nil means incomplete) is moved into place; every other leftover is deleted. Returns what was
    /// restored, if anything.
    @discardableResult
    public static func recover(_ target: URL, rank: (URL) -> Double?) -> URL? {
        let found = leftovers(of: target)
        var restored: URL?
        if UserFile.kind(target.path) == .missing {
            let ranked = found.compactMap { url in rank(url).map { (url, $0) } }
            if let best = ranked.max(by: { $0.1 < $1.1 })?.0, rename(best.path, target.path) == 0 {
                Durable.syncFolder(target.deletingLastPathComponent())
                restored = best
            }
        }
        for url in found where url != restored { try? FileManager.default.removeItem(at: url) }
        return restored
    }

    /// Set FLEDGE_NO_RENAME_EXCHANGE=1 to take the two-rename path (tests of the recovery).
    public static var exchangeAllowed: Bool { ProcessInfo.processInfo.environment["FLEDGE_NO_RENAME_EXCHANGE"] != "1" }

    typealias RenameAt2 = @convention(c) (Int32, UnsafePointer<CChar>, Int32, UnsafePointer<CChar>, UInt32) -> Int32

    /// glibc's renameat2 (2.28 and later), looked up at run time: Swift's Glibc module does not declare it.
    static let renameat2: RenameAt2? = {
        guard let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "renameat2") else { return nil }
        return unsafeBitCast(symbol, to: RenameAt2.self)
    }()

    static func renameError(_ from: URL, _ to: URL) -> FileError {
        FileError(
            "cannot rename \(from.path) to \(to.path): \(String(cString: strerror(errno)))",
            hint: "check permissions and free space in \(to.deletingLastPathComponent().path).")
    }
}
