// PathCheck: refuses outputs that would destroy or pollute inputs. An output may not be one of the command's
// inputs, a folder that holds one of them, a folder inside an input folder, or a folder that holds the current
// folder (`--output .`), whatever way the paths are spelled (relative, `..`, symbolic links).

import Foundation

/// Relations between paths, on their canonical forms.
public enum PathCheck {
    /// The absolute path with symbolic links resolved; for a path that does not exist yet, its nearest existing
    /// ancestor is resolved and the rest appended.
    public static func canonical(_ path: String) -> String {
        var url = URL(fileURLWithPath: path).standardizedFileURL
        var rest: [String] = []
        while true {
            if let resolved = realpath(url.path, nil) {
                defer { free(resolved) }
                var result = URL(fileURLWithPath: String(cString: resolved))
                for component in rest.reversed() { result.appendPathComponent(component) }
                return result.standardizedFileURL.path
            }
            let parent = url.deletingLastPathComponent()
            if parent.path == url.path { return URL(fileURLWithPath: path).standardizedFileURL.path }
            rest.append(url.lastPathComponent)
            url = parent
        }
    }

    /// True when `inner` is `outer` or lies inside it.
    public static func isSameOrInside(_ inner: String, _ outer: String) -> Bool {
        let a = canonical(inner)
        let b = canonical(outer)
        return a == b || a.hasPrefix(b.hasSuffix("/") ? b : b + "/")
    }

    /// Refuses `output` (named by `option`) when it is an input, holds an input, lies inside an input folder
    /// (its files would be read as input next time), or holds the current folder.
    public static func checkOutput(_ output: String, option: String, inputs: [(path: String, option: String)]) throws {
        for input in inputs where isSameOrInside(input.path, output) {
            let same = canonical(input.path) == canonical(output)
            throw FileError(
                same
                    ? "\(option) \(output) is also the input \(input.option) \(input.path): writing it would destroy the input"
                    : "\(option) \(output) holds the input \(input.option) \(input.path): replacing it would destroy the input",
                hint: "write the output somewhere else, e.g. \(option) \(suggestion(for: output)).")
        }
        for input in inputs where UserFile.kind(input.path) == .folder && isSameOrInside(output, input.path) {
            throw FileError(
                "\(option) \(output) lies inside the input folder \(input.path): its files would be read as input next time",
                hint: "write the output beside the input folder, e.g. \(option) \(suggestion(for: input.path)).")
        }
        if isSameOrInside(FileManager.default.currentDirectoryPath, output) {
            throw FileError(
                "\(option) \(output) is the current folder or one that holds it; Fledge will not replace it",
                hint: "name a new folder, e.g. \(option) \(suggestion(for: output)).")
        }
    }

    static func suggestion(for output: String) -> String {
        let name = URL(fileURLWithPath: canonical(output)).lastPathComponent
        return name.isEmpty || name == "/" ? "out" : "\(name)-out"
    }
}
