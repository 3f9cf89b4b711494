// FledgeInterop against transformers' own files (fixtures from Scripts/make_interop_reference.py): import
// gives transformers' logits, export after import gives back every tensor, the GGUF file is well formed, and
// everything that cannot be mapped exactly is refused by name. Scripts/check_interop.py checks the same with
// the real transformers and gguf packages.

import FledgeInterop
import FledgeModel
import FledgeTensor
import FledgeTestSupport
import FledgeTraining
import Foundation
import Testing

/// A fresh scratch folder, removed when the test process exits (or by the test's `defer`).
func scratch() -> URL { ScratchFolder.make("interop") }

func fixture(_ name: String) -> URL {
    Bundle.module.url(forResource: name, withExtension: nil, subdirectory: "Fixtures")!
}

/// The error text of `body` ("" when it succeeds).
func errorText(_ body: () throws -> Void) -> String {
    do {
        try body()
        return ""
    } catch {
        return "\(error)"
    }
}

/// Copies a fixture folder so a test may change it.
func copyOfFixture(_ name: String, into folder: URL) throws -> URL {
    let copy = folder.appendingPathComponent("hf-\(name)")
    try FileManager.default.copyItem(at: fixture(name), to: copy)
    return copy
}

struct ImportExportTests {
    @Test(arguments: ["gpt2", "llama"])
    func importGivesTransformersLogits(variant: String) throws {
        let work = scratch()
        defer { try? FileManager.default.removeItem(at: work) }
        let run = work.appendingPathComponent("run").path
        let summary = try HuggingFaceImport.run(directory: fixture(variant).path, output: run)
        #expect(summary.architecture.rawValue == variant)
        let expected = try SafetensorsFile(url: fixture(variant).appendingPathComponent("expected.safetensors"))
        let tokens = try expected.int32s("tokens")
        let reference = try expected.floats("logits")
        let (_, model, tokenizer) = try RunCheckpoint.loadForInference(run, backend: CPUBackend(threadCount: 1))
        let text = "ROMEO: But soft, what light through yonder window breaks? It is the east, and Juliet is the sun."
        #expect(tokenizer.encode(bytes: Array(text.utf8), allowSpecial: false) == tokens)
        let acts = try Activations(model: model, batchSize: 1, sequenceLength: tokens.count, forTraining: false)
        try model.forward(tokens: tokens, targets: nil, activations: acts, training: false)
        let logits = acts.copyLogitsToHost()
        let scale = reference.map(abs).max()!
        let worst = zip(logits, reference).map { abs($0 - $1) }.max()!
        #expect(worst / scale < 1e-4, "\(variant): max relative difference \(worst / scale)")
        if variant == "llama" { #expect(model.config.headSize == 12 && model.config.kvHeads == 2) }
    }

    @Test(arguments: ["gpt2", "llama"])
    func exportAfterImportGivesBackEveryTensor(variant: String) throws {
        let work = scratch()
        defer { try? FileManager.default.removeItem(at: work) }
        let run = work.appendingPathComponent("run").path
        let back = work.appendingPathComponent("back").path
        try HuggingFaceImport.run(directory: fixture(variant).path, output: run)
        let summary = try HuggingFaceExport.write(run: run, output: back)
        let original = try SafetensorsFile(url: fixture(variant).appendingPathComponent("model.safetensors"))
        let exported = try SafetensorsFile(url: URL(fileURLWithPath: back).appendingPathComponent("model.safetensors"))
        #expect(Set(original.entries.keys) == Set(exported.entries.keys))
        #expect(summary.tensors == original.entries.count)
        for name in original.entries.keys.sorted() {
            #expect(try original.convertedFloats(name) == exported.floats(name), "\(name) differs")
        }
        for file in ["config.json", "tokenizer.json", "tokenizer_config.json", "generation_config.json"] {
            #expect(FileManager.default.fileExists(atPath: back + "/" + file), "\(file) missing")
        }
    }

    @Test func ggufIsWellFormed() throws {
        let work = scratch()
        defer { try? FileManager.default.removeItem(at: work) }
        let run = work.appendingPathComponent("run").path
        try HuggingFaceImport.run(directory: fixture("llama").path, output: run)
        for type in [GGUFTensorType.f32, .f16] {
            let path = work.appendingPathComponent("model-\(type).gguf").path
            let summary = try GGUFExport.write(run: run, output: path, type: type)
            let file = try GGUFTestReader(Data(contentsOf: URL(fileURLWithPath: path)))
            #expect(file.version == 3)
            #expect(file.strings["general.architecture"] == "llama")
            #expect(file.integers["llama.attention.head_count_kv"] == 2)
            #expect(file.integers["llama.rope.dimension_count"] == 12)
            #expect(file.strings["tokenizer.ggml.model"] == "gpt2")
            #expect(file.tensors.count == summary.tensors)
            let embedding = try #require(file.tensors["token_embd.weight"])
            #expect(embedding.dims == [32, 300] && embedding.type == (type == .f32 ? 0 : 1))
            #expect(file.tensors["output_norm.weight"]?.type == 0)  // norms stay f32
            #expect(file.tensors.values.allSatisfy { $0.offset % 32 == 0 })
            #expect(file.dataStart % 32 == 0)
        }
    }

    @Test func rotaryPairsInterleaveAndBack() {
        // Row 2j + k of a head is row k·HS/2 + j: the layout llama.cpp's rotary expects.
        let rows = Array(0..<16).map(Float.init)  // 2 heads × head size 8, one column
        let interleaved = GGUFExport.interleave(rows, heads: 2, headSize: 8, columns: 1)
        #expect(interleaved == [0, 4, 1, 5, 2, 6, 3, 7, 8, 12, 9, 13, 10, 14, 11, 15])
    }
}

struct InteropRefusalTests {
    /// Writes a Fledge checkpoint of `config` (random weights) with the fixture's tokenizer.
    func checkpoint(_ config: ModelConfig, in work: URL) throws -> String {
        let folder = work.appendingPathComponent("model-\(UUID().uuidString)")
        let model = try GPT(config: config, backend: ReferenceBackend())
        try ModelCheckpoint.save(model, to: folder)
        try FileManager.default.copyItem(
            at: fixture("gpt2").appendingPathComponent("tokenizer.json"),
            to: folder.appendingPathComponent("tokenizer.json"))
        return folder.path
    }

    @Test func architecturesWithoutAnExactTargetAreRefusedByName() throws {
        let work = scratch()
        defer { try? FileManager.default.removeItem(at: work) }
        let base = ModelConfig(vocabularySize: 300, contextLength: 16, layers: 1, width: 16, heads: 2)
        var cases: [(ModelConfig, String)] = []
        var c = base
        c.parallelBlock = true
        cases.append((c, "parallel"))
        c = base
        c.normPlacement = .post
        cases.append((c, "norm_placement post"))
        c = base
        c.positions = .rotary
        cases.append((c, "LayerNorm with rotary"))
        c = base
        c.norm = .rmsNorm
        cases.append((c, "RMSNorm with learned"))
        c = base
        c.explicitHeadSize = 4
        cases.append((c, "head size = width / heads"))
        for (config, words) in cases {
            let path = try checkpoint(config, in: work)
            let message = errorText { try HuggingFaceExport.write(run: path, output: work.path + "/out") }
            #expect(message.contains(words) && message.contains("Hint:"), "\(message)")
            #expect(!FileManager.default.fileExists(atPath: work.path + "/out"))
        }
        // The supported ones go through.
        let ok = try checkpoint(base, in: work)
        #expect(try HuggingFaceExport.write(run: ok, output: work.path + "/gpt2").architecture == .gpt2)
    }

    @Test func unsupportedConfigsAndDamagedWeightsAreRefused() throws {
        let work = scratch()
        defer { try? FileManager.default.removeItem(at: work) }
        func importing(_ edit: (URL) throws -> Void, variant: String = "llama") throws -> String {
            let folder = work.appendingPathComponent("case-\(UUID().uuidString)")
            try FileManager.default.copyItem(at: fixture(variant), to: folder)
            try edit(folder)
            return errorText { try HuggingFaceImport.run(directory: folder.path, output: folder.path + "-run") }
        }
        func editConfig(_ change: @escaping (inout [String: Any]) -> Void) -> (URL) throws -> Void {
            { folder in
                let url = folder.appendingPathComponent("config.json")
                var object = try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as! [String: Any]
                change(&object)
                try JSONSerialization.data(withJSONObject: object).write(to: url)
            }
        }
        #expect(
            try importing(editConfig { $0["rope_scaling"] = ["type": "linear", "factor": 2.0] }).contains(
                "rope_scaling"))
        #expect(try importing(editConfig { $0["sliding_window"] = 4096 }).contains("sliding_window"))
        #expect(try importing(editConfig { $0["hidden_act"] = "gelu" }).contains("hidden_act"))
        #expect(try importing(editConfig { $0["mlp_bias"] = true }).contains("attention_bias"))
        #expect(try importing(editConfig { $0["model_type"] = "mistral" }).contains("model_type 'mistral'"))
        #expect(
            try importing(editConfig { $0["num_hidden_layers"] = 3 }).contains(
                "'model.layers.2.input_layernorm.weight' is missing"))
        #expect(
            try importing(editConfig { $0["intermediate_size"] = 50 }).contains(
                "has shape [48, 32], but config.json implies [50, 32]"))
        #expect(
            try importing(editConfig { $0["num_hidden_layers"] = 1 }).contains(
                "'model.layers.1.input_layernorm.weight' has no place"))
        #expect(try importing(editConfig { $0["activation_function"] = "gelu" }, variant: "gpt2").contains("gelu_new"))
        #expect(try importing(editConfig { $0["n_head"] = 3 }, variant: "gpt2").contains("n_head"))
        #expect(
            try importing({ try FileManager.default.removeItem(at: $0.appendingPathComponent("tokenizer.json")) })
                .contains("no tokenizer.json"))
        #expect(
            try importing({ try FileManager.default.removeItem(at: $0.appendingPathComponent("model.safetensors")) })
                .contains("no model.safetensors"))
    }

    @Test func outputsAreNeverClobbered() throws {
        let work = scratch()
        defer { try? FileManager.default.removeItem(at: work) }
        let run = work.appendingPathComponent("run").path
        try HuggingFaceImport.run(directory: fixture("gpt2").path, output: run)
        // An existing folder needs --overwrite, and then only one Fledge wrote as that kind.
        #expect(
            errorText { try HuggingFaceImport.run(directory: fixture("gpt2").path, output: run) }.contains("exists"))
        try HuggingFaceImport.run(directory: fixture("gpt2").path, output: run, overwrite: true)
        let mine = work.appendingPathComponent("mine")
        try FileManager.default.createDirectory(at: mine, withIntermediateDirectories: true)
        try Data("thesis".utf8).write(to: mine.appendingPathComponent("thesis.txt"))
        #expect(
            errorText { try HuggingFaceExport.write(run: run, output: mine.path, overwrite: true) }.contains(
                "not written by Fledge"))
        #expect(FileManager.default.fileExists(atPath: mine.appendingPathComponent("thesis.txt").path))
        // The output may not be the input, and a file that is not GGUF is not replaced.
        #expect(errorText { try HuggingFaceExport.write(run: run, output: run, overwrite: true) } != "")
        let notes = work.appendingPathComponent("notes.txt")
        try Data("notes".utf8).write(to: notes)
        #expect(
            errorText { try GGUFExport.write(run: run, output: notes.path, overwrite: true) }.contains(
                "not a GGUF file"))
        #expect(try String(contentsOf: notes, encoding: .utf8) == "notes")
    }

    @Test func tokenizersWithoutAnExactGGUFFormAreRefused() throws {
        let work = scratch()
        defer { try? FileManager.default.removeItem(at: work) }
        let base = ModelConfig(vocabularySize: 300, contextLength: 16, layers: 1, width: 16, heads: 2)
        let path = try checkpoint(base, in: work)
        let word =
            #"{"version":"1.0","added_tokens":[],"normalizer":null,"pre_tokenizer":{"type":"Whitespace"},"post_processor":null,"decoder":null,"model":{"type":"WordLevel","vocab":{"a":0,"b":1,"<unk>":2},"unk_token":"<unk>"}}"#
        try Data(word.utf8).write(to: URL(fileURLWithPath: path).appendingPathComponent("tokenizer.json"))
        let message = errorText { try GGUFExport.write(run: path, output: work.path + "/m.gguf") }
        #expect(message.contains("no exact GGUF form") && message.contains("--format hf"), "\(message)")
    }
}

struct HalfFloatTests {
    @Test func everyHalfRoundTripsAndRoundingMatchesFloat16() {
        for bits in UInt16.min...UInt16.max {
            let value = HalfFloat.float(fromHalf: bits)
            #expect(value.isNaN || value.bitPattern == Float(Float16(bitPattern: bits)).bitPattern)
            if !value.isNaN { #expect(HalfFloat.half(from: value) == bits) }
        }
        // Floats across the half range (subnormals to overflow), rounded as Swift's Float16 rounds them.
        var state: UInt64 = 42
        for _ in 0..<200_000 {
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            let bits = UInt32(truncatingIfNeeded: state >> 32)
            let exponent = UInt32(127 - 26) + (bits >> 23) % 44  // 2^-26 … 2^17
            let x = Float(bitPattern: (bits & 0x8000_0000) | exponent << 23 | (bits & 0x7F_FFFF))
            #expect(HalfFloat.half(from: x) == Float16(x).bitPattern, "\(x)")
        }
    }
}

/// Just enough of a GGUF reader to check the writer's structure (the real check is Python's gguf package).
struct GGUFTestReader {
    var version: UInt32 = 0
    var strings: [String: String] = [:]
    var integers: [String: Int] = [:]
    var tensors: [String: (dims: [Int], type: UInt32, offset: Int)] = [:]
    var dataStart = 0

    init(_ data: Data) throws {
        var position = 0
        func read<T: FixedWidthInteger>(_: T.Type) -> T {
            defer { position += MemoryLayout<T>.size }
            return data.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: position, as: T.self) }
        }
        func string() -> String {
            let n = Int(read(UInt64.self))
            defer { position += n }
            return String(decoding: data[position..<position + n], as: UTF8.self)
        }
        guard data.prefix(4) == Data("GGUF".utf8) else { throw InteropError("not GGUF", hint: "") }
        position = 4
        version = read(UInt32.self)
        let tensorCount = Int(read(UInt64.self))
        let keyCount = Int(read(UInt64.self))
        func skip(_ type: UInt32) {
            switch type {
            case 0, 1, 7: position += 1
            case 2, 3: position += 2
            case 4, 5, 6: position += 4
            case 8: _ = string()
            case 10, 11, 12: position += 8
            default: break
            }
        }
        for _ in 0..<keyCount {
            let key = string()
            let type = read(UInt32.self)
            switch type {
            case 4: integers[key] = Int(read(UInt32.self))
            case 8: strings[key] = string()
            case 9:
                let element = read(UInt32.self)
                for _ in 0..<Int(read(UInt64.self)) { skip(element) }
            default: skip(type)
            }
        }
        for _ in 0..<tensorCount {
            let name = string()
            let dims = (0..<Int(read(UInt32.self))).map { _ in Int(read(UInt64.self)) }
            let type = read(UInt32.self)
            tensors[name] = (dims, type, Int(read(UInt64.self)))
        }
        dataStart = (position + 31) / 32 * 32
    }
}
