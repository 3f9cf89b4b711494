// ModelConfig validation messages, preset sizes, initialisation, and checkpoint I/O including bad files.

import FledgeModel
import FledgeTensor
import Foundation
import Testing

struct ConfigTests {
    func message(_ config: ModelConfig) -> String {
        do {
            try config.validate()
            return ""
        } catch {
            return error.description
        }
    }

    @Test func impossibleCombinationsSayWhatToChange() {
        let base = ModelConfig(vocabularySize: 100, contextLength: 32, layers: 2, width: 64, heads: 4)
        #expect(message(base) == "")
        var c = base
        c.heads = 5
        c.kvHeads = 5
        #expect(message(c).contains("width 64 is not divisible by n_head 5") && message(c).contains("n_head 4"))
        c = base
        c.kvHeads = 3
        #expect(message(c).contains("not divisible by n_kv_head 3") && message(c).contains("1, 2, 4"))
        c = base
        c.positions = .rotary
        c.width = 60
        c.heads = 4  // head size 15
        #expect(message(c).contains("even head size"))
        c = base
        c.dropout = 1
        #expect(message(c).contains("dropout"))
        c = base
        c.layers = 0
        #expect(message(c).contains("n_layer is 0"))
        #expect(throws: ModelError.self) { try GPT(config: c, backend: ReferenceBackend()) }
    }

    @Test func presetsHaveTheDocumentedShapesAndSizes() {
        let expected: [(ModelPreset, Int, Int, Int, Int, ClosedRange<Int>)] = [
            (.tiny, 4, 128, 4, 512, 900_000...1_300_000),
            (.m20, 10, 384, 6, 1536, 18_000_000...23_000_000),
            (.m50, 12, 512, 8, 2048, 40_000_000...55_000_000),
            (.m100, 16, 640, 10, 2560, 90_000_000...110_000_000),
        ]
        for (preset, layers, width, heads, mlp, range) in expected {
            let c = preset.config()
            #expect(c.layers == layers && c.width == width && c.heads == heads && c.mlpWidth == mlp)
            #expect(range.contains(c.parameterCount), "\(preset.rawValue): \(c.parameterCount)")
            #expect((try? c.validate()) != nil)
            // The rule of thumb ignores biases, norms and positions: within 10% here.
            let ratio = Double(c.estimatedParameterCount) / Double(c.parameterCount)
            #expect(ratio > 0.9 && ratio < 1.1, "\(preset.rawValue) estimate ratio \(ratio)")
        }
    }

    @Test func headSizeOfItsOwn() throws {
        // width 64 with 5 heads of 16 channels: attention works in 80 channels, proj maps them back to 64.
        var c = ModelConfig(vocabularySize: 50, contextLength: 16, layers: 1, width: 64, heads: 5, headSize: 16)
        #expect(message(c) == "")
        #expect(c.headSize == 16 && c.qkvWidth == 15 * 16 && c.attentionWidth == 80)
        let layout = ParameterLayout(config: c)
        #expect(layout["h.0.attn.proj.weight"]?.shape == [64, 80])
        #expect(layout["h.0.attn.qkv.weight"]?.shape == [240, 64])
        // Without head_size the old rule holds, and the error names the new way out.
        c.explicitHeadSize = nil
        #expect(message(c).contains("not divisible by n_head 5") && message(c).contains("head_size"))
        c.explicitHeadSize = 15
        c.positions = .rotary
        #expect(message(c).contains("even head size, but head_size is 15"))
        c.explicitHeadSize = 0
        #expect(message(c).contains("head_size is 0"))
        // config.json leaves head_size out when it is width / heads, so older files and readers are unchanged…
        let plain = ModelConfig(vocabularySize: 50, contextLength: 16, layers: 1, width: 64, heads: 4)
        let plainJSON = String(decoding: try ModelCheckpoint.configJSON(plain), as: UTF8.self)
        #expect(!plainJSON.contains("head_size"))
        // …and writes it when it is set; both round-trip.
        let wide = ModelConfig(vocabularySize: 50, contextLength: 16, layers: 1, width: 64, heads: 4, headSize: 32)
        let wideJSON = try ModelCheckpoint.configJSON(wide)
        #expect(String(decoding: wideJSON, as: UTF8.self).contains("\"head_size\" : 32"))
        #expect(try ModelCheckpoint.parseConfig(wideJSON, path: "c") == wide)
        // A partial file may set it over a base that has none, or clear it with null.
        let partial = try ModelCheckpoint.parseConfig(Data(#"{"head_size": 24}"#.utf8), path: "p", over: plain)
        #expect(partial.headSize == 24 && partial.width == 64)
        let cleared = try ModelCheckpoint.parseConfig(Data(#"{"head_size": null}"#.utf8), path: "p", over: wide)
        #expect(cleared.headSize == 16 && cleared.explicitHeadSize == nil)
        do {
            _ = try ModelCheckpoint.parseConfig(Data(#"{"head_size": 2.5}"#.utf8), path: "p", over: plain)
            Issue.record("a fractional head_size was accepted")
        } catch {
            #expect("\(error)".contains("'head_size' is 2.5"))
        }
    }

    @Test func exactParameterCountOfGPT2Style() {
        // wte V·C + wpe T·C + L·(2 LN 4C + qkv 3C²+3C + proj C²+C + fc 4C²+4C + proj 4C²+C) + ln_f 2C
        let c = ModelConfig(vocabularySize: 8000, contextLength: 128, layers: 6, width: 128, heads: 4)
        let perLayer =
            4 * 128 + (3 * 128 * 128 + 3 * 128) + (128 * 128 + 128) + (4 * 128 * 128 + 4 * 128) + (4 * 128 * 128 + 128)
        #expect(c.parameterCount == 8000 * 128 + 128 * 128 + 6 * perLayer + 2 * 128)
    }

    @Test func initialisationIsSeededAndScaled() throws {
        let c = ModelConfig(vocabularySize: 512, contextLength: 64, layers: 4, width: 128, heads: 4)
        let a = try GPT(config: c, backend: ReferenceBackend(), seed: 7)
        let b = try GPT(config: c, backend: ReferenceBackend(), seed: 7)
        let d = try GPT(config: c, backend: ReferenceBackend(), seed: 8)
        #expect(a.parameters.array == b.parameters.array)
        #expect(a.parameters.array != d.parameters.array)
        let p = a.parameters.array
        func std(_ name: String) -> Double {
            let e = a.layout[name]!
            let values = p[e.range].map(Double.init)
            let mean = values.reduce(0, +) / Double(values.count)
            return (values.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Double(values.count)).squareRoot()
        }
        #expect(abs(std("h.0.attn.qkv.weight") - 0.02) < 0.001)
        #expect(abs(std("h.0.mlp.proj.weight") - 0.02 / (8.0).squareRoot()) < 0.0005)
        #expect(p[a.layout["h.0.ln_1.weight"]!.range].allSatisfy { $0 == 1 })
        #expect(p[a.layout["h.0.attn.qkv.bias"]!.range].allSatisfy { $0 == 0 })
    }

    /// The activation arena against a count written from the model's definition (what the backward needs saved,
    /// and its scratch), not from the planner: the tiny preset (GPT-2 style: pre-norm, sequential block, GELU,
    /// MLP 4C) at batch 4 × 64, where every buffer is a multiple of 16 floats (no alignment padding).
    @Test func activationMemoryMatchesAClosedFormCount() throws {
        let c = ModelPreset.tiny.config()
        #expect(c.layers == 4 && c.width == 128 && c.heads == 4 && c.kvHeads == 4 && c.mlpWidth == 512)
        #expect(c.vocabularySize == 2048 && c.normPlacement == .pre && !c.parallelBlock && c.activation == .gelu)
        let (b, t) = (4, 64)
        let (bt, width, vocabulary, layers) = (b * t, 128, 2048, 4)
        // The attention is tiled: it saves one log-sum-exp per head and row, no T×T softmax (which a KV cache's
        // decoding keeps, below).
        let logSumExps = b * 4 * t
        // Saved per layer: ln_1 out, mean and rstd; q, k, v; the attention's log-sum-exps; the attention output; the
        // first residual; ln_2 out, mean and rstd; the MLP's hidden layer before and after GELU; the second residual.
        let perLayer =
            bt * width + 2 * bt + 3 * bt * width + logSumExps + bt * width + bt * width + bt * width + 2 * bt
            + 4 * bt * width + 4 * bt * width + bt * width
        // Once: the embedding sum; ln_f out, mean and rstd; the logits; per-position losses and log-sum-exps.
        let once = bt * width + bt * width + 2 * bt + bt * vocabulary + 2 * bt
        // The backward's scratch: gradients of the residual stream, a norm's output and a branch; of the
        // attention output and of q, k, v; of the MLP's hidden layer before and after GELU.
        let scratch = 3 * bt * width + bt * width + 3 * bt * width + 4 * bt * width + 4 * bt * width
        let training = layers * perLayer + once + scratch
        let model = try GPT(config: c, backend: ReferenceBackend())
        #expect(try Activations(model: model, batchSize: b, sequenceLength: t).count == training)
        #expect(Activations.estimatedBytes(config: c, batchSize: b, sequenceLength: t) == 4 * training)
        // Inference keeps no layer's activations for a backward: one layer's buffers are reused, no scratch.
        #expect(
            try Activations(model: model, batchSize: b, sequenceLength: t, forTraining: false).count == perLayer + once)
        // With a KV cache of K positions, the probabilities (B, NH, T, K) instead of the log-sum-exps.
        let k = 96
        #expect(
            try Activations(model: model, batchSize: b, sequenceLength: t, keyCapacity: k, forTraining: false).count
                == perLayer - logSumExps + b * 4 * t * k + once)
        // Linear in T: doubling the sequence doubles the arena (the logits and every saved tensor are per position).
        #expect(
            try Activations(model: model, batchSize: b, sequenceLength: 2 * t).count == 2 * training)
    }

    @Test func weightDecayAppliesToMatricesOnly() {
        let defaults = AdamWConfig()
        #expect(AdamW.decays(.matrix, defaults) && AdamW.decays(.residualMatrix, defaults))
        #expect(
            !AdamW.decays(.normWeight, defaults) && !AdamW.decays(.bias, defaults)
                && !AdamW.decays(.embedding, defaults))
        #expect(AdamW.decays(.embedding, AdamWConfig(decayEmbeddings: true)))
    }
}

struct CheckpointTests {
    func temporaryDirectory() -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("fledge-test-\(UUID().uuidString)")
        try! FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }

    func errorText(_ body: () throws -> Void) -> String {
        do {
            try body()
            return ""
        } catch {
            return "\(error)"
        }
    }

    @Test(arguments: Fixture.variants)
    func saveAndLoadRoundTrip(variant: String) throws {
        let fixture = try Fixture(variant)
        let model = try fixture.model(backend: ReferenceBackend())
        let dir = temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        try ModelCheckpoint.save(model, to: dir)
        let loaded = try ModelCheckpoint.load(from: dir, backend: ReferenceBackend())
        #expect(loaded.config == model.config)
        #expect(loaded.parameters.array == model.parameters.array)
        // No temporary files are left behind.
        let names = try FileManager.default.contentsOfDirectory(atPath: dir.path).sorted()
        #expect(names == ["config.json", "model.safetensors"])
    }

    @Test func badSafetensorsFilesGetClearErrors() throws {
        let fixture = try Fixture("gpt2")
        let model = try fixture.model(backend: ReferenceBackend())
        let dir = temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        try ModelCheckpoint.save(model, to: dir)
        let weights = dir.appendingPathComponent("model.safetensors")
        let good = try Data(contentsOf: weights)
        func load(_ data: Data) -> String {
            try! data.write(to: weights)
            return errorText { _ = try ModelCheckpoint.load(from: dir, backend: ReferenceBackend()) }
        }
        #expect(load(good) == "")
        #expect(load(good.prefix(good.count - 100)).contains("reach past the end of the data"))
        #expect(load(good.prefix(5)).contains("too short"))
        var badLength = good
        badLength[7] = 0x7F
        #expect(load(badLength).contains("header length"))
        var badJSON = good
        badJSON[8] = UInt8(ascii: "x")
        #expect(load(badJSON).contains("not a JSON object"))
        // Two tensors sharing bytes would load one's weights into the other; a shape whose size overflows.
        func raw(_ header: String, dataBytes: Int) -> Data {
            var data = Data((0..<8).map { UInt8((header.utf8.count >> (8 * $0)) & 255) })
            data.append(Data(header.utf8))
            data.append(Data(count: dataBytes))
            return data
        }
        #expect(
            load(
                raw(
                    #"{"a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}, "b": {"dtype": "F32", "shape": [4], "data_offsets": [8, 24]}}"#,
                    dataBytes: 24)
            ).contains("overlap"))
        #expect(
            load(
                raw(
                    #"{"a": {"dtype": "F32", "shape": [4294967296, 4294967296, 16], "data_offsets": [0, 16]}}"#,
                    dataBytes: 16)
            ).contains("shape"))

        // A missing tensor, a wrong shape, a wrong dtype, an extra tensor: write variants with the writer.
        func write(_ edit: (inout [(String, String, [Int], [Float])]) -> Void) -> String {
            var tensors = model.layout.entries.map { e in
                (e.name, "F32", e.shape, Array(model.parameters.array[e.range]))
            }
            edit(&tensors)
            let bytes = tensors.map { t in t.3.withUnsafeBytes { Data($0) } }
            var raw: [SafetensorsWriter.Tensor] = []
            let storage = bytes.map { d -> UnsafeMutableRawBufferPointer in
                let p = UnsafeMutableRawBufferPointer.allocate(byteCount: max(1, d.count), alignment: 8)
                _ = d.copyBytes(to: p)
                return UnsafeMutableRawBufferPointer(rebasing: p[0..<d.count])
            }
            defer { storage.forEach { $0.deallocate() } }
            for (t, s) in zip(tensors, storage) {
                raw.append(
                    SafetensorsWriter.Tensor(name: t.0, dtype: t.1, shape: t.2, bytes: UnsafeRawBufferPointer(s)))
            }
            try! SafetensorsWriter.write(raw, to: weights)
            return errorText { _ = try ModelCheckpoint.load(from: dir, backend: ReferenceBackend()) }
        }
        #expect(write { $0.removeAll { $0.0 == "h.1.mlp.fc.bias" } }.contains("tensor 'h.1.mlp.fc.bias' is missing"))
        let shape = write { t in
            let i = t.firstIndex { $0.0 == "wpe.weight" }!
            t[i].2 = [t[i].2[1], t[i].2[0]]
        }
        #expect(shape.contains("tensor 'wpe.weight'") && shape.contains("expects [16, 32]"))
        let dtype = write { t in
            let i = t.firstIndex { $0.0 == "ln_f.bias" }!
            t[i] = (t[i].0, "I32", t[i].2, t[i].3)
        }
        #expect(dtype.contains("'ln_f.bias'") && dtype.contains("I32"))
        #expect(write { $0.append(("h.9.attn.qkv.weight", "F32", [2], [1, 2])) }.contains("does not have"))
    }

    @Test func badConfigFilesNameTheField() throws {
        let config = ModelConfig(vocabularySize: 100, contextLength: 32, layers: 2, width: 64, heads: 4)
        var object = try JSONSerialization.jsonObject(with: ModelCheckpoint.configJSON(config)) as! [String: Any]
        func parse(_ o: [String: Any]) -> String {
            errorText {
                _ = try ModelCheckpoint.parseConfig(try JSONSerialization.data(withJSONObject: o), path: "config.json")
            }
        }
        #expect(parse(object) == "")
        var missing = object
        missing["n_head"] = nil
        #expect(parse(missing).contains("'n_head' is missing"))
        var wrongValue = object
        wrongValue["norm"] = "batchnorm"
        #expect(parse(wrongValue).contains("'norm'"))
        var wrongType = object
        wrongType["n_layer"] = "six"
        #expect(parse(wrongType).contains("'n_layer'"))
        var fraction = object
        fraction["n_embd"] = 64.5
        #expect(parse(fraction).contains("field 'n_embd' is 64.5, which is not a whole number"))
        var huge = object
        huge["n_layer"] = 1_000_000_000
        #expect(parse(huge).contains("n_layer is 1000000000, more than Fledge's limit"))
        var tooBig = ModelConfig(vocabularySize: 1 << 24, contextLength: 1024, layers: 4096, width: 4096, heads: 32)
        tooBig.mlpWidth = 16384
        #expect(errorText { try tooBig.checkFitsInMemory() }.contains("GB"))
        // A partial file overrides only what it names; an unknown field is an error.
        let base = ModelConfig(vocabularySize: 100, contextLength: 32, layers: 2, width: 64, heads: 4)
        let partial = try ModelCheckpoint.parseConfig(
            Data(#"{"n_layer": 3, "norm": "rmsnorm"}"#.utf8), path: "part.json", over: base)
        #expect(partial.layers == 3 && partial.norm == .rmsNorm && partial.width == 64 && partial.heads == 4)
        #expect(
            errorText { _ = try ModelCheckpoint.parseConfig(Data(#"{"n_layers": 3}"#.utf8), path: "p", over: base) }
                .contains("unknown field 'n_layers'"))
        object["n_kv_head"] = 3
        #expect(parse(object).contains("n_kv_head 3"))
        object["fledge_format_version"] = 9
        #expect(parse(object).contains("version 9"))
    }

    @Test func outOfRangeTokensAreRejectedBeforeAnyKernelRuns() throws {
        let fixture = try Fixture("gpt2")
        let model = try fixture.model(backend: ReferenceBackend())
        let acts = try Activations(model: model, batchSize: 1, sequenceLength: 4)
        let text = errorText { try model.forward(tokens: [1, 2, 67, 3], targets: nil, activations: acts) }
        #expect(text.contains("token id 67 at position 2"))
        let target = errorText { try model.forward(tokens: [1, 2, 3, 4], targets: [1, -5, 2, 3], activations: acts) }
        #expect(target.contains("target id -5"))
        #expect(throws: ModelError.self) { try Activations(model: model, batchSize: 1, sequenceLength: 17) }
    }

    /// Activations, a KV cache or a slot cache planned for another model are refused by name before any kernel
    /// touches them (they would be read and written out of bounds).
    @Test func aPlanForAnotherModelIsRefused() throws {
        let fixture = try Fixture("gpt2")
        let model = try fixture.model(backend: ReferenceBackend())
        var wider = model.config
        wider.width *= 2
        let other = try Activations(
            model: GPT(config: wider, backend: ReferenceBackend()), batchSize: 1, sequenceLength: 4)
        let text = errorText { try model.forward(tokens: [1, 2, 3, 4], targets: [2, 3, 4, 5], activations: other) }
        #expect(text.contains("these activations were planned for another model (width \(wider.width)"))
        #expect(text.contains("this model has width \(model.config.width)"))
        var otherNorm = model.config
        otherNorm.norm = otherNorm.norm == .layerNorm ? .rmsNorm : .layerNorm
        let sameSizes = try Activations(
            model: GPT(config: otherNorm, backend: ReferenceBackend()), batchSize: 1, sequenceLength: 4)
        #expect(
            errorText { try model.forward(tokens: [1, 2, 3, 4], targets: nil, activations: sameSizes) }
                .contains("this model has width"))
        // backward on a plan of another model, and caches made for another model.
        let own = try Activations(model: model, batchSize: 1, sequenceLength: 4)
        try model.forward(tokens: [1, 2, 3, 4], targets: [2, 3, 4, 5], activations: own)
        #expect(errorText { try model.backward(activations: other) }.contains("planned for another model"))
        var deeper = try Fixture("llama").model(backend: ReferenceBackend())
        if deeper.config == model.config { deeper = try Fixture("smallm").model(backend: ReferenceBackend()) }
        let cache = try KVCache(model: deeper, batchSize: 1)
        #expect(
            errorText { _ = try model.decode(tokens: [1, 2], count: 2, cache: cache) }.contains("this KV cache was"))
        let slots = try SlotCache(model: deeper, slots: 1, chunkSize: 2)
        var logits = [Float](repeating: 0, count: model.config.vocabularySize)
        let refused = errorText {
            try logits.withUnsafeMutableBufferPointer {
                try model.pass(
                    slots: [], tokens: [], prompts: [PromptChunk(slot: 0, tokens: [1, 2][...])], cache: slots,
                    logits: $0)
            }
        }
        #expect(refused.contains("this slot cache was"))
    }
}
