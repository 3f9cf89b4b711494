// ShardVerification: the facts manifest.json records about a prepared folder — each shard's SHA-256, the
// tokenizer's SHA-256, token ids below the vocabulary, mask values of 0 or 1 — checked before the data is
// used. A full check reads every byte, so its result is remembered in `.verified` (each shard's size,
// modification time and inode): the common case, data unchanged since the last check, costs a few `stat`s;
// any change to a shard brings the full check back.

import FledgeFiles
import Foundation

/// Verification of a prepared folder against its manifest.
public enum ShardVerification {
    /// The stamp of the last full check, inside the prepared folder.
    public static let stampName = ".verified"

    /// Checks every shard of `dataset` against its manifest (SHA-256, ids < vocabulary, mask values), unless
    /// `.verified` shows the same files passed before and `force` is false. Returns true when it read the data.
    @discardableResult
    public static func verify(_ dataset: PreparedDataset, force: Bool = false) throws -> Bool {
        let folder = dataset.folder
        let manifest = dataset.manifest
        let files = manifest.splits.keys.sorted().flatMap { name in
            manifest.splits[name]!.shards.flatMap { [$0.file] + ($0.maskFile.map { [$0] } ?? []) }
        }
        let stamp = try files.map { try identity(folder.appendingPathComponent($0)) }.joined(separator: "\n")
        let stampURL = folder.appendingPathComponent(stampName)
        if !force, let recorded = FileManager.default.contents(atPath: stampURL.path),
            String(decoding: recorded, as: UTF8.self) == stamp
        {
            return false
        }
        let vocabulary = manifest.tokenizer.vocabularySize
        let fix = "the folder was changed after preparation; re-run `fledge data prepare`."
        for name in manifest.splits.keys.sorted() {
            for shard in manifest.splits[name]!.shards {
                let url = folder.appendingPathComponent(shard.file)
                let tokens = try TokenShard(url)  // header and size first: the most specific message
                let hash = tokens.sha256()
                guard hash == shard.sha256 else {
                    throw DataError(
                        "shard \(url.path) has SHA-256 \(hash.prefix(12))… but manifest.json records \(shard.sha256.prefix(12))…",
                        hint: fix)
                }
                if let bad = tokens.firstIndex(where: { $0 < 0 || Int($0) >= vocabulary }) {
                    throw DataError(
                        "shard \(url.path) holds token id \(tokens[bad]) at position \(bad), outside the tokenizer's vocabulary (0..<\(vocabulary))",
                        hint: fix)
                }
                if let maskFile = shard.maskFile {
                    let mask = try TokenShard(folder.appendingPathComponent(maskFile), expect: [.mask])
                    if let bad = mask.firstIndex(where: { $0 > 1 }) {
                        throw DataError(
                            "loss mask \(folder.appendingPathComponent(maskFile).path) holds \(mask[bad]) at position \(bad); values must be 0 or 1",
                            hint: fix)
                    }
                }
            }
        }
        try? AtomicFile.write(Data(stamp.utf8), to: stampURL)  // a read-only folder is checked again next time
        return true
    }

    /// Size, modification time (ns) and inode of a file: what changes when the file does.
    static func identity(_ url: URL) throws -> String {
        var info = stat()
        guard stat(url.path, &info) == 0 else {
            throw DataError(
                "shard \(url.path) is missing", hint: "the folder is incomplete; re-run `fledge data prepare`.")
        }
        return
            "\(url.lastPathComponent) \(info.st_size) \(info.st_mtim.tv_sec).\(info.st_mtim.tv_nsec) \(info.st_ino)"
    }
}

extension TokenShard {
    /// The first position whose value satisfies `predicate`.
    func firstIndex(where predicate: (Int32) -> Bool) -> Int? {
        for i in 0..<count where predicate(self[i]) { return i }
        return nil
    }
}
