// ExportOutput: where an export or import is written. The output may not be, hold or lie inside its input;
// an existing output is replaced only with `overwrite` and only when Fledge wrote it as the same kind; the
// new folder is built complete beside it and put in place in one step (FolderSwap), so a crash leaves the
// old output or the new one, never half of one.

import FledgeFiles
import FledgeModel
import Foundation

enum ExportOutput {
    /// Builds a folder output of `kind` at `output` with `body` (which fills the folder it is given).
    static func writeFolder(
        _ output: String, kind: String, input: String, overwrite: Bool, option: String = "--output",
        _ body: (URL) throws -> Void
    ) throws {
        let target = try checked(output, kind: kind, input: input, overwrite: overwrite, option: option)
        let lock = try FolderLock.output(target)
        defer { withExtendedLifetime(lock) {} }
        let temporary = FolderSwap.temporary(for: target)
        try? FileManager.default.removeItem(at: temporary)
        try FileManager.default.createDirectory(at: temporary, withIntermediateDirectories: true)
        do {
            try body(temporary)
            try OwnedOutput.mark(temporary, kind: kind)
            try FolderSwap.install(temporary, at: target)
        } catch {
            try? FileManager.default.removeItem(at: temporary)
            throw error
        }
    }

    /// Writes a single-file output at `output` (atomically) with `body`.
    static func writeFile(_ output: String, input: String, overwrite: Bool, _ body: (FileHandle) throws -> Void) throws
    {
        try PathCheck.checkOutput(output, option: "--output", inputs: [(input, "the run")])
        let url = URL(fileURLWithPath: output)
        switch UserFile.kind(output) {
        case .missing: break
        case .folder, .other:
            throw InteropError("--output \(output) is a folder", hint: "name a file, e.g. model.gguf.")
        case .file:
            guard overwrite else {
                throw InteropError(
                    "--output \(output) exists", hint: "pass --overwrite to replace it, or choose another name.")
            }
            guard let handle = FileHandle(forReadingAtPath: output), let magic = try? handle.read(upToCount: 4),
                magic == Data("GGUF".utf8)
            else {
                throw InteropError(
                    "--output \(output) exists and is not a GGUF file; it will not be replaced",
                    hint: "choose another name, or move that file away yourself.")
            }
        }
        try FileManager.default.createDirectory(
            at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        try AtomicFile.write(to: url, body)
    }

    private static func checked(_ output: String, kind: String, input: String, overwrite: Bool, option: String) throws
        -> URL
    {
        try PathCheck.checkOutput(output, option: option, inputs: [(input, "the input")])
        let target = URL(fileURLWithPath: output)
        if UserFile.kind(output) != .missing {
            guard overwrite else {
                throw InteropError(
                    "\(option) \(output) exists", hint: "pass --overwrite to replace it, or choose another folder.")
            }
            try OwnedOutput.checkReplaceable(target, kind: kind, option: option)
        }
        try FileManager.default.createDirectory(
            at: target.deletingLastPathComponent(), withIntermediateDirectories: true)
        return target
    }

    /// Writes `tensors` as one F32 safetensors file (with the `format: pt` metadata transformers expects).
    static func writeSafetensors(_ tensors: [ExportTensor], to url: URL) throws {
        var all: [Float] = []
        all.reserveCapacity(tensors.reduce(0) { $0 + $1.values.count })
        var offsets: [Int] = []
        for t in tensors {
            offsets.append(all.count)
            all += t.values
        }
        try all.withUnsafeBytes { raw in
            let entries = zip(tensors, offsets).map { t, offset in
                SafetensorsWriter.Tensor(
                    name: t.name, shape: t.shape,
                    bytes: UnsafeRawBufferPointer(rebasing: raw[offset * 4..<(offset + t.values.count) * 4]))
            }
            try SafetensorsWriter.write(entries, metadata: ["format": "pt"], to: url)
        }
    }

    /// JSON text, pretty and with sorted keys.
    static func json(_ object: Any) throws -> Data {
        try JSONSerialization.data(
            withJSONObject: object, options: [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes])
    }

    /// A Float as the decimal it was written as (1e-05, not 9.999999747378752e-06).
    static func decimal(_ value: Float) -> Double { Double("\(value)") ?? Double(value) }
}
