// libFuzzer entry point for Fledge's parsers of user files (Scripts/fuzz.sh builds and runs it). The target
// is chosen by FLEDGE_FUZZ_TARGET: tokenizer (tokenizer.json), safetensors (header and tensors), config
// (config.json), shard (token shard header and body), manifest (manifest.json), jsonl (JSONL documents),
// qa (question/answer JSON). Any input may be refused with an error; none may crash, trap or hang.

import FledgeData
import FledgeFiles
import FledgeModel
import FledgeTokenizer
import Foundation

nonisolated(unsafe) let target = ProcessInfo.processInfo.environment["FLEDGE_FUZZ_TARGET"] ?? "tokenizer"
nonisolated(unsafe) let scratch = FileManager.default.temporaryDirectory.appendingPathComponent(
    "fledge-fuzz-\(getpid())")

/// The input written to a file (for readers that take a path).
func file(_ data: Data, _ name: String) -> URL {
    try? FileManager.default.createDirectory(at: scratch, withIntermediateDirectories: true)
    let url = scratch.appendingPathComponent(name)
    try? data.write(to: url)
    return url
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ bytes: UnsafePointer<UInt8>, _ count: Int) -> Int32 {
    let data = Data(bytes: bytes, count: count)
    switch target {
    case "tokenizer":
        if let tokenizer = try? TokenizerJSON.loadAny(data, path: "fuzz.json") {
            let ids = tokenizer.encode(bytes: Array("Hello, world! <eos> 123".utf8), allowSpecial: true)
            _ = try? tokenizer.decodeBytes(ids)
        }
    case "safetensors":
        if let file = try? SafetensorsFile(url: file(data, "model.safetensors")) {
            for (name, entry) in file.entries where entry.dtype == "F32" && entry.elementCount < 1 << 20 {
                _ = try? file.floats(name)
            }
        }
    case "config":
        if let config = try? ModelCheckpoint.parseConfig(data, path: "config.json") {
            _ = config.parameterCount
        }
    case "shard":
        if let shard = try? TokenShard(file(data, "train_000000.bin")) {
            _ = shard.maximum()
        }
    case "manifest":
        _ = try? DataManifest.parse(data, url: URL(fileURLWithPath: "manifest.json"))
    case "jsonl", "qa":
        var config = InputConfig()
        config.format = target == "qa" ? .qa : .jsonl
        config.onBadRecord = count % 2 == 0 ? .skip : .stop
        var reader = DocumentReader(config)
        var documents: [Document] = []
        _ = try? reader.read(
            file(data, target == "qa" ? "pairs.json" : "docs.jsonl"), source: 0, file: 0, into: &documents)
    default:
        fatalError("unknown FLEDGE_FUZZ_TARGET \(target)")
    }
    return 0
}
