// The trainer: resume is bit-identical to an uninterrupted run, schedules have their shapes, masked
// (question) positions contribute no gradient, NaN is caught (stop or skip), checkpoints and the report are
// written, and setups that cannot work are refused with a message.

import FledgeData
import FledgeModel
import FledgeTensor
import FledgeTestSupport
import FledgeTokenizer
import FledgeTraining
import Foundation
import Testing

enum TrainingFixtures {
    static let text = TestCorpus.shakespeareText(prefix: 120_000)
    static let tokenizer = TestCorpus.bpe(vocabularySize: 300, text: text)

    /// A fresh scratch folder, removed when the test process exits.
    static func scratch(_ name: String = #function) -> URL { ScratchFolder.make("train-tests", name) }

    /// A prepared folder of Shakespeare paragraphs (or question/answer pairs).
    static func dataset(in folder: URL, questions: Bool = false) throws -> PreparedDataset {
        let input = folder.appendingPathComponent(questions ? "qa.jsonl" : "text.txt")
        if questions {
            let lines = (0..<200).map { i in
                "{\"question\": \"What follows \(i)?\", \"answer\": \"After \(i) comes \(i + 1), good sir.\"}"
            }
            try Data(lines.joined(separator: "\n").utf8).write(to: input)
        } else {
            try Data(text.utf8).write(to: input)
        }
        var config = PreparationConfig()
        config.sources = [SourceSpec(name: "s", path: input.path)]
        config.input.boundary = .blankLine
        config.split.validationFraction = 0.1
        config.removeNearDuplicates = !questions
        let output = folder.appendingPathComponent("data")
        _ = try DataPreparer(config: config, tokenizer: tokenizer, threads: 2).run(output: output)
        return try PreparedDataset(output)
    }

    static func model(dropout: Float = 0.1, seed: UInt64 = 3, backend: any Backend = CPUBackend(threadCount: 2)) throws
        -> GPT
    {
        let config = ModelConfig(
            vocabularySize: 300, contextLength: 32, layers: 2, width: 32, heads: 2, dropout: dropout)
        return try GPT(config: config, backend: backend, seed: seed)
    }

    /// Trains a fresh fixture model with `config` on `dataset` into `run`.
    @discardableResult
    static func train(_ config: TrainingConfig, on dataset: PreparedDataset, into run: URL) throws -> Trainer {
        let model = try model()
        let trainer = try Trainer(
            model: model, optimizer: try AdamW(model: model), config: config, dataset: dataset, run: run)
        _ = try trainer.train()
        return trainer
    }

    static func trainingConfig(steps: Int = 20) -> TrainingConfig {
        var config = TrainingConfig()
        config.batchSize = 4
        config.accumulationSteps = 2
        config.maxSteps = steps
        config.schedule.warmupSteps = 5
        config.schedule.peak = 3e-3
        config.evalEvery = 5
        config.evalBatches = 2
        config.sampleTokens = 8
        config.checkpointEvery = 7
        config.checkpointMinutes = nil
        return config
    }
}

struct TrainingLoopTests {
    func losses(_ run: URL) throws -> [Float] {
        try MetricsLog.read(run.appendingPathComponent("metrics.jsonl")).filter { $0.kind == "train" }.map { $0.loss! }
    }

    /// The default evaluation reads 5% of the training tokens between evaluations (2 to 20 batches), and a run
    /// says up front what each evaluation reads and costs.
    @Test func theEvaluationBudgetIsASmallShareOfTraining() throws {
        var config = TrainingConfig()
        #expect(config.evalBatches == nil && config.evaluationBatches == 5)  // every 100 updates
        config.evalEvery = 10
        #expect(config.evaluationBatches == 2)
        config.evalEvery = 5_000
        #expect(config.evaluationBatches == 20)
        (config.evalEvery, config.accumulationSteps) = (100, 2)
        #expect(config.evaluationBatches == 10)
        config.evalBatches = 7
        #expect(config.evaluationBatches == 7)
        // A training.json written before the budget existed (evalBatches 20) reads back as 20.
        var old = try JSONSerialization.jsonObject(with: JSONEncoder().encode(TrainingConfig())) as! [String: Any]
        old["evalBatches"] = 20
        let decoded = try JSONDecoder().decode(TrainingConfig.self, from: JSONSerialization.data(withJSONObject: old))
        #expect(decoded.evaluationBatches == 20)

        let folder = TrainingFixtures.scratch()
        defer { try? FileManager.default.removeItem(at: folder) }
        var short = TrainingFixtures.trainingConfig(steps: 6)
        short.evalBatches = nil
        let model = try TrainingFixtures.model()
        let trainer = try Trainer(
            model: model, optimizer: try AdamW(model: model), config: short,
            dataset: try TrainingFixtures.dataset(in: folder), run: folder.appendingPathComponent("run"))
        var messages: [String] = []
        trainer.observe = { if case .message(let m) = $0 { messages.append(m) } }
        _ = try trainer.train()
        #expect(trainer.evaluationBatches == 2)
        #expect(
            messages.filter { $0.hasPrefix("each evaluation reads") }.count == 1
                && messages.contains { $0.contains("(2 batches) and takes about") }, "\(messages)")
    }

    @Test func resumeIsBitIdenticalToAnUninterruptedRun() throws {
        let folder = TrainingFixtures.scratch()
        let dataset = try TrainingFixtures.dataset(in: folder)
        let config = TrainingFixtures.trainingConfig(steps: 20)
        // 20 steps straight.
        let straight = try TrainingFixtures.model()
        let runA = folder.appendingPathComponent("a")
        _ = try Trainer(
            model: straight, optimizer: try AdamW(model: straight, config: config.optimizer), config: config,
            dataset: dataset, run: runA
        ).train()
        // 10 steps, stopped (as Ctrl-C does), then resumed from latest/ in a fresh model and optimizer.
        let first = try TrainingFixtures.model()
        let runB = folder.appendingPathComponent("b")
        let trainer = try Trainer(
            model: first, optimizer: try AdamW(model: first, config: config.optimizer), config: config,
            dataset: dataset,
            run: runB)
        trainer.shouldStop = { trainer.state.step >= 10 }
        let stopped = try trainer.train()
        #expect(stopped.interrupted && stopped.state.step == 10)
        let (model, optimizer, state, savedConfig) = try RunCheckpoint.load(
            runB.appendingPathComponent("latest"), backend: CPUBackend(threadCount: 2))
        #expect(savedConfig == config)
        let resumed = try Trainer(
            model: model, optimizer: optimizer, config: savedConfig, dataset: dataset, run: runB, state: state)
        let outcome = try resumed.train()
        #expect(!outcome.interrupted && outcome.state.step == 20)
        let a = try losses(runA)
        let b = try losses(runB)
        #expect(a.count == 20 && b.count == 20)
        #expect(a.map(\.bitPattern) == b.map(\.bitPattern), "losses differ: \(a) vs \(b)")
        #expect(straight.parameters.array.map(\.bitPattern) == model.parameters.array.map(\.bitPattern))
        #expect(a.last! < a.first!)
        // Both runs wrote the same checkpoints and a report.
        for kind in ["latest", "best", "final"] {
            #expect(
                FileManager.default.fileExists(atPath: runB.appendingPathComponent("\(kind)/model.safetensors").path))
        }
        let report = try String(contentsOf: runB.appendingPathComponent("report.html"), encoding: .utf8)
        #expect(report.contains("<svg") && report.contains("validation loss") && report.contains("Samples"))
        let evals = try MetricsLog.read(runB.appendingPathComponent("metrics.jsonl")).filter { $0.kind == "eval" }
        #expect(evals.map(\.step) == [0, 5, 10, 15, 20])
        #expect(evals.allSatisfy { ($0.bitsPerByte ?? 0) > 0 && ($0.perplexity ?? 0) > 1 })
        let reloaded = try ModelCheckpoint.load(from: runB.appendingPathComponent("final"), backend: CPUBackend())
        #expect(reloaded.parameters.array == model.parameters.array)
    }

    /// A whole run (dropout, gradient accumulation, evaluations, samples, checkpoints, a stop and a resume) on a
    /// backend whose memory the host cannot address gives the CPU backend's losses and weights bit for bit: the
    /// trainer, evaluator, sampler and checkpoints reach the model's memory only through backend calls.
    @Test func aRunOnMemoryTheHostCannotAddressGivesTheCPUBackendsNumbers() throws {
        let folder = TrainingFixtures.scratch()
        let dataset = try TrainingFixtures.dataset(in: folder)
        let config = TrainingFixtures.trainingConfig(steps: 8)
        let cpu = try TrainingFixtures.model()
        let runA = folder.appendingPathComponent("cpu")
        _ = try Trainer(
            model: cpu, optimizer: try AdamW(model: cpu, config: config.optimizer), config: config, dataset: dataset,
            run: runA
        ).train()
        let opaque = OpaqueMemoryBackend(inner: CPUBackend(threadCount: 2))
        let first = try TrainingFixtures.model(backend: opaque)
        let runB = folder.appendingPathComponent("opaque")
        let trainer = try Trainer(
            model: first, optimizer: try AdamW(model: first, config: config.optimizer), config: config,
            dataset: dataset, run: runB)
        trainer.shouldStop = { trainer.state.step >= 4 }
        #expect(try trainer.train().state.step == 4)
        let (model, optimizer, state, savedConfig) = try RunCheckpoint.load(
            runB.appendingPathComponent("latest"), backend: opaque)
        #expect(opaque.isOpaque(model.parameters.address) && opaque.isOpaque(optimizer.firstMoment.address))
        _ = try Trainer(
            model: model, optimizer: optimizer, config: savedConfig, dataset: dataset, run: runB, state: state
        ).train()
        let (a, b) = (try losses(runA), try losses(runB))
        #expect(a.count == 8 && a.map(\.bitPattern) == b.map(\.bitPattern), "losses: \(a) vs \(b)")
        #expect(cpu.parameters.array.map(\.bitPattern) == model.parameters.array.map(\.bitPattern))
        func texts(_ run: URL, _ kind: String) throws -> [String] {
            try MetricsLog.read(run.appendingPathComponent("metrics.jsonl")).filter { $0.kind == kind }.map {
                "\($0.step) \($0.text ?? "") \($0.validationLoss.map { String($0.bitPattern) } ?? "")"
            }
        }
        let samples = try texts(runA, "sample")
        let opaqueSamples = try texts(runB, "sample")
        #expect(!samples.isEmpty && samples == opaqueSamples, "the samples differ")
        #expect(try texts(runA, "eval") == texts(runB, "eval"), "the evaluations differ")
    }

    @Test func schedulesHaveTheirShapes() {
        var schedule = LearningRateSchedule()
        schedule.peak = 1
        schedule.warmupSteps = 10
        schedule.minimumFraction = 0.1
        #expect(schedule.rate(step: 0, progress: 0) == 0.1)
        #expect(schedule.rate(step: 9, progress: 0.09) == 1)
        #expect(abs(schedule.rate(step: 50, progress: 0.5) - 0.55) < 1e-6)
        #expect(abs(schedule.rate(step: 100, progress: 1) - 0.1) < 1e-6)
        schedule.kind = .linear
        #expect(abs(schedule.rate(step: 50, progress: 0.5) - 0.55) < 1e-6)
        #expect(abs(schedule.rate(step: 75, progress: 0.75) - 0.325) < 1e-6)
        schedule.kind = .constant
        #expect(schedule.rate(step: 99, progress: 0.99) == 1)
        schedule.kind = .wsd
        schedule.decayFraction = 0.2
        #expect(schedule.rate(step: 79, progress: 0.79) == 1)
        #expect(abs(schedule.rate(step: 90, progress: 0.9) - 0.55) < 1e-6)
        #expect(abs(schedule.rate(step: 100, progress: 1) - 0.1) < 1e-6)
    }

    @Test func theDecayStartsAtThePeakWhereWarmupEnds() throws {
        // The rate climbs to the peak over the warmup and decays from it to the floor, with no drop (with a time
        // budget too, whose decay is measured from the moment warmup ended).
        let folder = TrainingFixtures.scratch()
        let dataset = try TrainingFixtures.dataset(in: folder)
        var config = TrainingFixtures.trainingConfig(steps: 25)
        config.evalEvery = 100
        config.sampleTokens = 0
        for (name, seconds) in [("steps", nil), ("time", 3600.0)] as [(String, Double?)] {
            config.maxSeconds = seconds
            let run = folder.appendingPathComponent(name)
            try TrainingFixtures.train(config, on: dataset, into: run)
            let rates = try MetricsLog.read(run.appendingPathComponent("metrics.jsonl")).filter { $0.kind == "train" }
                .map { $0.learningRate! }
            let peak = config.schedule.peak
            #expect(rates[4] == peak, "\(name): warmup ends at the peak")
            #expect(rates[5] > 0.99 * peak, "\(name): the first decayed rate is \(rates[5]), not a drop")
            #expect(zip(rates.dropFirst(5), rates.dropFirst(6)).allSatisfy { $0 >= $1 }, "\(name): decays")
            if seconds == nil { #expect(abs(rates.last! - peak * config.schedule.minimumFraction) < peak * 0.02) }
        }
    }

    @Test func maskedPositionsContributeNoGradient() throws {
        let folder = TrainingFixtures.scratch()
        let dataset = try TrainingFixtures.dataset(in: folder, questions: true)
        #expect(dataset.manifest.lossMask)
        let model = try TrainingFixtures.model(dropout: 0)
        let T = 32
        let loader = try DataLoader(
            stream: try dataset.stream("train"), batchSize: 1, sequenceLength: T, order: .sequential, seed: 0)
        var inputs = [Int32](repeating: 0, count: T)
        var targets = inputs
        loader.next(inputs: &inputs, targets: &targets)
        let counted = targets.indices.filter { targets[$0] != GPT.ignoreIndex }
        #expect(counted.count > 4 && counted.count < T - 4)  // both question and answer positions in the window
        let acts = try Activations(model: model, batchSize: 1, sequenceLength: T)
        model.zeroGradients()
        try model.forward(tokens: inputs, targets: targets, activations: acts, training: false)
        try model.backward(activations: acts)
        let masked = model.gradients.array
        // The same gradient, built from the answer positions alone: each position's gradient on its own, averaged.
        var sum = [Double](repeating: 0, count: masked.count)
        for position in counted {
            var single = [Int32](repeating: GPT.ignoreIndex, count: T)
            single[position] = targets[position]
            model.zeroGradients()
            try model.forward(tokens: inputs, targets: single, activations: acts, training: false)
            try model.backward(activations: acts)
            for (i, g) in model.gradients.array.enumerated() { sum[i] += Double(g) }
        }
        var worst = 0.0
        for i in masked.indices {
            worst = max(
                worst, abs(Double(masked[i]) - sum[i] / Double(counted.count)) / (abs(Double(masked[i])) + 1e-4))
        }
        #expect(worst < 1e-3, "relative difference \(worst)")
    }

    @Test func nonFiniteLossStopsOrSkips() throws {
        let folder = TrainingFixtures.scratch()
        let dataset = try TrainingFixtures.dataset(in: folder)
        var config = TrainingFixtures.trainingConfig(steps: 4)
        config.evalEvery = 100
        for policy in NonFinitePolicy.allCases {
            config.onNonFinite = policy
            let model = try TrainingFixtures.model()
            model.parameters.withHostAccess { $0[0] = .nan }  // poison the token embedding
            let trainer = try Trainer(
                model: model, optimizer: try AdamW(model: model), config: config, dataset: dataset,
                run: folder.appendingPathComponent(policy.rawValue))
            var messages: [String] = []
            trainer.observe = { if case .message(let text) = $0 { messages.append(text) } }
            if policy == .stop {
                do {
                    _ = try trainer.train()
                    Issue.record("no error")
                } catch let error as TrainingError {
                    #expect(error.message.contains("step 1"), "\(error)")
                    #expect(error.hint.contains("--lr") && error.hint.contains("--warmup"))
                }
            } else {
                let outcome = try trainer.train()
                #expect(outcome.state.step == 4)
                #expect(messages.filter { $0.contains("update skipped") }.count == 4)
            }
        }
        // Skipping every update is divergence, not training: the run stops at the limit with the advice.
        config.onNonFinite = .skip
        config.maxSteps = 100
        let model = try TrainingFixtures.model()
        model.parameters.withHostAccess { $0[0] = .nan }
        let trainer = try Trainer(
            model: model, optimizer: try AdamW(model: model), config: config, dataset: dataset,
            run: folder.appendingPathComponent("diverged"))
        do {
            _ = try trainer.train()
            Issue.record("a run that skipped every update reported success")
        } catch let error as TrainingError {
            #expect(error.message.contains("\(Trainer.skipLimit) updates in a row"), "\(error)")
            #expect(error.message.contains("diverged"))
            #expect(trainer.state.step == Trainer.skipLimit)
        }
        #expect(!FileManager.default.fileExists(atPath: folder.appendingPathComponent("diverged/best").path))
    }

    @Test func impossibleSetupsAreRefused() throws {
        let folder = TrainingFixtures.scratch()
        let dataset = try TrainingFixtures.dataset(in: folder)
        let config = TrainingFixtures.trainingConfig()
        func refuse(_ fragment: String, model: GPT, config: TrainingConfig) {
            do {
                _ = try Trainer(
                    model: model, optimizer: try AdamW(model: model), config: config, dataset: dataset,
                    run: folder.appendingPathComponent("r"))
                Issue.record("no error for \(fragment)")
            } catch let error as TrainingError {
                #expect(error.description.contains(fragment), "\(error)")
            } catch { Issue.record("\(error)") }
        }
        let wrongVocabulary = try GPT(
            config: ModelConfig(vocabularySize: 400, contextLength: 32, layers: 1, width: 16, heads: 2),
            backend: CPUBackend())
        refuse("the model's vocabulary is 400", model: wrongVocabulary, config: config)
        var long = config
        long.sequenceLength = 64
        refuse("exceeds the model's context length 32", model: try TrainingFixtures.model(), config: long)
        var huge = config
        huge.batchSize = 2_000_000
        refuse("GB", model: try TrainingFixtures.model(), config: huge)
        var bad = config
        bad.schedule.peak = -1
        refuse("learning rate -1", model: try TrainingFixtures.model(), config: bad)
    }

    @Test func aKilledSwapIsRecoveredToTheNewestCompleteCheckpoint() throws {
        let folder = TrainingFixtures.scratch()
        let dataset = try TrainingFixtures.dataset(in: folder)
        let run = folder.appendingPathComponent("run")
        var config = TrainingFixtures.trainingConfig(steps: 3)
        config.evalEvery = 100
        do {
            try TrainingFixtures.train(config, on: dataset, into: run)
        }
        // What a kill between "latest → .latest.old-PID" and ".latest.tmp-PID → latest" leaves: no latest/,
        // the old checkpoint aside, a newer complete one, and an incomplete one from another kill.
        let files = FileManager.default
        let latest = run.appendingPathComponent("latest")
        try files.moveItem(at: latest, to: run.appendingPathComponent(".latest.old-1"))
        try files.copyItem(at: run.appendingPathComponent("final"), to: run.appendingPathComponent(".latest.tmp-1"))
        var state = try RunCheckpoint.loadState(run.appendingPathComponent(".latest.tmp-1")).0
        state.step = 9
        try RunCheckpoint.encoder().encode(state).write(
            to: run.appendingPathComponent(".latest.tmp-1/trainer-state.json"))
        try files.createDirectory(at: run.appendingPathComponent(".latest.tmp-2"), withIntermediateDirectories: true)
        try "half".write(to: run.appendingPathComponent(".report.html.tmp-3-4"), atomically: false, encoding: .utf8)
        do {
            _ = try RunCheckpoint.lockRun(run)
        }
        #expect(RunCheckpoint.completeStep(latest) == 9)
        let left = try files.contentsOfDirectory(atPath: run.path).filter {
            $0.contains(".tmp-") || $0.contains(".old-")
        }
        #expect(left.isEmpty, "\(left)")
        #expect(try RunCheckpoint.resumeFolder(run) == latest)
    }

    @Test func aRunKeepsStepCheckpointsAndItsRecord() throws {
        let folder = TrainingFixtures.scratch()
        let dataset = try TrainingFixtures.dataset(in: folder)
        var config = TrainingFixtures.trainingConfig(steps: 10)
        config.keepEvery = 5
        config.sampleTokens = 0
        let run = folder.appendingPathComponent("run")
        try TrainingFixtures.train(config, on: dataset, into: run)
        for step in [5, 10] {
            let kept = run.appendingPathComponent(String(format: "checkpoints/step-%07d", step))
            #expect(RunCheckpoint.completeStep(kept) == step)
            _ = try RunCheckpoint.loadForInference(kept.path, backend: CPUBackend())
        }
        let manifest = try DataManifest.parse(
            Data(contentsOf: run.appendingPathComponent("final/\(RunCheckpoint.manifestFile)")),
            url: URL(fileURLWithPath: "m"))
        #expect(manifest.splits["train"]!.tokens == dataset.manifest.splits["train"]!.tokens)
        #expect(try RunCheckpoint.loadFormat(run.appendingPathComponent("final"))?.questionAnswerData == false)
        // The report: loss, learning rate and gradient norm charts; settings as tables, booleans as words.
        let report = try String(contentsOf: run.appendingPathComponent("report.html"), encoding: .utf8)
        #expect(report.components(separatedBy: "<svg").count - 1 == 3)
        #expect(report.contains("<th>tie_embeddings</th><td>yes</td>"))
        #expect(report.contains("<th>schedule.kind</th><td>cosine</td>"))
        #expect(report.contains("<th>optimizer.beta1</th><td>0.9</td>"))
    }

    @Test func runsAreComparedOnOneChartWithTheSettingsThatDiffer() throws {
        let folder = TrainingFixtures.scratch()
        let dataset = try TrainingFixtures.dataset(in: folder)
        var runs: [URL] = []
        for peak in [Float(1e-3), 3e-3] {
            var config = TrainingFixtures.trainingConfig(steps: 6)
            config.schedule.peak = peak
            config.sampleTokens = 0
            let run = folder.appendingPathComponent("run-\(peak)")
            try TrainingFixtures.train(config, on: dataset, into: run)
            runs.append(run)
        }
        let output = folder.appendingPathComponent("compared.html")
        try RunComparison.write(runs: runs, to: output)
        let html = try String(contentsOf: output, encoding: .utf8)
        #expect(html.contains("<th>schedule.peak</th><td>0.001</td><td>0.003</td>"))
        #expect(!html.contains("<th>batch_size</th>"))  // shared settings are not listed
        #expect(html.contains(">run-0.001<") && html.contains(">run-0.003<"))
        #expect(throws: TrainingError.self) { try RunComparison.write(runs: [folder], to: output) }
    }

    @Test func scalarsAlsoGoToATensorBoardEventFile() throws {
        #expect(CRC32C.checksum(Array("123456789".utf8)) == 0xE306_9283)  // the standard check value
        let folder = TrainingFixtures.scratch()
        let log = try TensorBoardLog(folder: folder)
        log.scalars([("train/loss", 2.5)], step: 7)
        let bytes = [UInt8](try Data(contentsOf: log.url))
        // Two TFRecords (the version event, then the scalar), each with intact length and data checksums.
        var offset = 0
        var records: [[UInt8]] = []
        func uint32(_ at: Int) -> UInt32 { bytes[at..<at + 4].reversed().reduce(0) { $0 << 8 | UInt32($1) } }
        while offset < bytes.count {
            let lengthBytes = Array(bytes[offset..<offset + 8])
            let length = Int(lengthBytes.reversed().reduce(UInt64(0)) { $0 << 8 | UInt64($1) })
            #expect(uint32(offset + 8) == CRC32C.masked(lengthBytes))
            let data = Array(bytes[offset + 12..<offset + 12 + length])
            #expect(uint32(offset + 12 + length) == CRC32C.masked(data))
            records.append(data)
            offset += 16 + length
        }
        #expect(records.count == 2)
        #expect(String(decoding: records[0], as: UTF8.self).contains("brain.Event:2"))
        #expect(String(decoding: records[1], as: UTF8.self).contains("train/loss"))
    }
}
