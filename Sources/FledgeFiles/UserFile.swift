// UserFile: reading the files a user names, with messages that say what was expected at the path (a file, a
// folder) and what was found there, instead of Foundation's "NSCocoaErrorDomain error 256". Sizes are checked
// before a file is read into memory.

import Foundation

/// What is at a path.
public enum PathKind: Equatable, Sendable {
    case missing
    case file
    case folder
    /// A device, socket or pipe.
    case other
}

/// Checked access to the files and folders a user names.
public enum UserFile {
    /// What `path` names (symbolic links followed).
    public static func kind(_ path: String) -> PathKind {
        var info = stat()
        guard stat(path, &info) == 0 else { return .missing }
        switch info.st_mode & S_IFMT {
        case S_IFREG: return .file
        case S_IFDIR: return .folder
        default: return .other
        }
    }

    /// Throws unless `path` is a regular file; `what` names it in the message ("the tokenizer", "--config").
    public static func requireFile(_ path: String, _ what: String) throws {
        switch kind(path) {
        case .file: return
        case .missing:
            throw FileError(
                "\(what) \(path) does not exist", hint: "check the path (it is relative to \(currentFolder)).")
        case .folder:
            throw FileError("\(what) \(path) is a folder, not a file", hint: "name a file inside it.")
        case .other:
            throw FileError("\(what) \(path) is not a regular file", hint: "name a regular file.")
        }
    }

    /// Throws unless `path` is a folder.
    public static func requireFolder(_ path: String, _ what: String) throws {
        switch kind(path) {
        case .folder: return
        case .missing:
            throw FileError(
                "\(what) \(path) does not exist", hint: "check the path (it is relative to \(currentFolder)).")
        case .file, .other:
            throw FileError("\(what) \(path) is a file, not a folder", hint: "name the folder that holds it.")
        }
    }

    /// The bytes of the regular file at `path`, refusing files over `limit` bytes before reading them.
    public static func read(_ path: String, _ what: String, limit: Int = 1 << 31) throws -> Data {
        try requireFile(path, what)
        var info = stat()
        if stat(path, &info) == 0, Int(info.st_size) > limit {
            throw FileError(
                "\(what) \(path) is \(info.st_size) bytes, more than the \(limit) this reader accepts",
                hint: "check that this is the right file.")
        }
        guard let data = FileManager.default.contents(atPath: path) else {
            throw FileError(
                "cannot read \(what) \(path): \(String(cString: strerror(errno)))", hint: "check its permissions.")
        }
        return data
    }

    static var currentFolder: String { FileManager.default.currentDirectoryPath }
}
