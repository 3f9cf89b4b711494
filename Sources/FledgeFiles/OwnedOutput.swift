// OwnedOutput: Fledge replaces or deletes a folder only when it can prove the folder is its own. Every
// folder Fledge writes as an output (prepared data, a run, an initialised model) carries a marker file,
// `.fledge-output`, naming what wrote it; `--overwrite` replaces a marked folder of the same kind (or a
// folder from before markers existed that holds nothing but Fledge's own files), and nothing else.

import Foundation

/// The marker that proves a folder is Fledge's output.
public enum OwnedOutput {
    public static let markerName = ".fledge-output"

    /// Writes the marker of `kind` ("prepared-data", "run", "model") into `folder`.
    public static func mark(_ folder: URL, kind: String) throws {
        let text = "{\"written_by\": \"fledge\", \"kind\": \"\(kind)\"}\n"
        try AtomicFile.write(Data(text.utf8), to: folder.appendingPathComponent(markerName))
    }

    /// The kind recorded in `folder`'s marker, nil when it has none.
    public static func kind(of folder: URL) -> String? {
        guard let data = FileManager.default.contents(atPath: folder.appendingPathComponent(markerName).path),
            let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any]
        else { return nil }
        return object["kind"] as? String
    }

    /// Throws unless the existing `folder` may be replaced as an output of `kind`: it must be a folder marked
    /// with that kind, or (`legacy`) hold only files Fledge writes for it.
    public static func checkReplaceable(
        _ folder: URL, kind: String, option: String, legacy: (_ names: [String]) -> Bool = { _ in false }
    ) throws {
        let path = folder.path
        switch UserFile.kind(path) {
        case .missing: return
        case .folder: break
        case .file, .other:
            throw FileError(
                "\(option) \(path) is a file; Fledge writes a folder there and will not replace a file it did not write",
                hint: "choose another \(option).")
        }
        if let found = self.kind(of: folder) {
            guard found == kind else {
                throw FileError(
                    "\(option) \(path) holds Fledge's \(found) output, not \(kind); it will not be replaced",
                    hint: "choose another \(option).")
            }
            return
        }
        let names = (try? FileManager.default.contentsOfDirectory(atPath: path)) ?? []
        if names.isEmpty || legacy(names) { return }
        throw FileError(
            "\(option) \(path) exists and was not written by Fledge (it has no \(markerName) marker); it will not be replaced",
            hint: "choose a new \(option), or move that folder away yourself if you mean to replace it.")
    }
}
