// Data-parallel training with ranks as threads (LocalGroup, the reference collectives): two ranks × batch B
// train like one process × 2B, every rank ends with the same weights, the loader gives each rank its slice of
// the global batch, ranks started differently are refused, and a run's batch is re-split for another number of
// processes only when it divides. MPI itself is exercised by Scripts/check_distributed.sh under mpirun.

import FledgeData
import FledgeDistributed
import FledgeModel
import FledgeTensor
import FledgeTestSupport
import FledgeTraining
import Foundation
import Testing

struct DataParallelTests {
    /// Runs `body(rank, communicator)` on one thread per rank and returns the results in rank order.
    func onRanks<T: Sendable>(_ size: Int, _ body: @escaping @Sendable (Int, Communicator) throws -> T) throws -> [T] {
        let members = LocalGroup(size: size).members
        let results = Locked([Result<T, Error>?](repeating: nil, count: size))
        let done = DispatchGroup()
        for rank in 0..<size {
            let member = UncheckedBox(members[rank])
            done.enter()
            Thread.detachNewThread {
                let result = Result { try body(rank, member.value) }
                results.update { $0[rank] = result }
                done.leave()
            }
        }
        done.wait()
        return try results.value.map { try $0!.get() }
    }

    @Test func collectivesSumInRankOrderAndBroadcast() throws {
        let sums = try onRanks(3) { rank, communicator -> [Float] in
            var values: [Float] = [Float(rank) + 0.5, 1e8, -Float(rank)]
            try values.withUnsafeMutableBufferPointer { try communicator.allReduceSum($0, what: "test") }
            let text = try communicator.broadcast(Data("from \(rank)".utf8), from: 1, what: "test")
            #expect(String(decoding: text, as: UTF8.self) == "from 1")
            return values
        }
        #expect(sums[0] == [4.5, 3e8, -3])
        #expect(sums[1] == sums[0] && sums[2] == sums[0])
    }

    @Test func ranksStartedDifferentlyAreRefusedByName() throws {
        let errors = try onRanks(3) { rank, communicator -> String in
            do {
                try communicator.checkAgreement([("the code", "v1"), ("the settings", rank == 2 ? "lr 2" : "lr 1")])
                return "accepted"
            } catch let error as DistributedError {
                #expect(error.everyRank)
                return error.message
            }
        }
        #expect(errors.allSatisfy { $0 == errors[0] })
        #expect(errors[0].contains("rank 2 differs from rank 0 in the settings"))
        #expect(!errors[0].contains("rank 1"))
    }

    @Test func eachRankReadsItsSliceOfTheGlobalBatch() throws {
        let folder = TrainingFixtures.scratch()
        let dataset = try TrainingFixtures.dataset(in: folder)
        let T = 16
        let whole = try DataLoader(
            stream: try dataset.stream("train"), batchSize: 6, sequenceLength: T, order: .random, seed: 9)
        let slices = try (0..<3).map { rank in
            try DataLoader(
                stream: try dataset.stream("train"), batchSize: 2, sequenceLength: T, order: .random, seed: 9,
                rank: rank, ranks: 3)
        }
        #expect(slices[0].batchesPerEpoch == whole.batchesPerEpoch)
        for _ in 0..<(whole.batchesPerEpoch + 3) {  // across an epoch boundary
            var inputs = [Int32](repeating: 0, count: 6 * T)
            var targets = inputs
            whole.next(inputs: &inputs, targets: &targets)
            for (rank, loader) in slices.enumerated() {
                var mine = [Int32](repeating: 0, count: 2 * T)
                var theirs = mine
                loader.next(inputs: &mine, targets: &theirs)
                #expect(mine == Array(inputs[(rank * 2 * T)..<((rank + 1) * 2 * T)]))
                #expect(loader.position == whole.position)
            }
        }
        #expect(throws: DataError.self) {
            _ = try DataLoader(
                stream: try dataset.stream("validation"), batchSize: 1000, sequenceLength: T, order: .random, seed: 1,
                rank: 0, ranks: 2)
        }
    }

    /// 2 ranks × batch 2 = 1 process × batch 4 (no dropout, so the masks cannot differ): the same losses and
    /// weights within 1e-5 after 12 updates (the gradient sums run in another order), and both ranks hold
    /// bit-identical weights.
    @Test func twoRanksTrainLikeOneProcessWithTheWholeBatch() throws {
        let folder = TrainingFixtures.scratch()
        let dataset = try TrainingFixtures.dataset(in: folder)
        var config = TrainingFixtures.trainingConfig(steps: 12)
        (config.accumulationSteps, config.sampleTokens, config.clipNorm) = (1, 0, 0.5)
        @Sendable func model() throws -> GPT {
            let config = ModelConfig(
                vocabularySize: 300, contextLength: 32, layers: 2, width: 32, heads: 2, dropout: 0)
            return try GPT(config: config, backend: CPUBackend(threadCount: 1), seed: 3)
        }
        var whole = config
        whole.batchSize = 4
        let one = try model()
        let single = try Trainer(
            model: one, optimizer: try AdamW(model: one), config: whole, dataset: dataset,
            run: folder.appendingPathComponent("one"))
        let singleOutcome = try single.train()

        var split = config
        (split.batchSize, split.processes) = (2, 2)
        let run = folder.appendingPathComponent("two")
        let splitConfig = split
        let boxedDataset = UncheckedBox(dataset)
        let ranks = try onRanks(2) { rank, communicator -> (weights: [Float], loss: Float?, updates: Int) in
            let model = try model()
            let trainer = try Trainer(
                model: model, optimizer: try AdamW(model: model), config: splitConfig, dataset: boxedDataset.value,
                run: run,
                communicator: communicator)
            let outcome = try trainer.train()
            return (model.parameters.array, outcome.finalEvaluation?.loss, outcome.updates)
        }
        #expect(ranks[0].weights == ranks[1].weights)
        #expect(ranks[0].updates == 12 && ranks[1].loss == ranks[0].loss)
        let difference = zip(ranks[0].weights, one.parameters.array).map { abs($0 - $1) }.max()!
        #expect(difference < 1e-5)
        #expect(abs(ranks[0].loss! - singleOutcome.finalEvaluation!.loss) < 1e-5)
        let logged = try MetricsLog.read(run.appendingPathComponent("metrics.jsonl")).filter { $0.kind == "train" }
        let reference = try MetricsLog.read(folder.appendingPathComponent("one/metrics.jsonl")).filter {
            $0.kind == "train"
        }
        #expect(logged.count == 12)
        for (a, b) in zip(logged, reference) { #expect(abs(a.loss! - b.loss!) < 1e-5) }
        #expect(FileManager.default.fileExists(atPath: run.appendingPathComponent("final/model.safetensors").path))
    }

    @Test func aRunsBatchIsResplitOnlyWhenItDivides() throws {
        var config = TrainingConfig()
        (config.batchSize, config.processes) = (6, 2)
        let four = try config.splitting(over: 4)
        #expect(four.batchSize == 3 && four.ranks == 4)
        let one = try config.splitting(over: 1)
        #expect(one.batchSize == 12 && one.processes == nil)
        #expect(throws: TrainingError.self) { _ = try config.splitting(over: 5) }
    }

    @Test func theLauncherIsReadFromItsVariables() {
        #expect(Launcher.detect([:]) == .none)
        #expect(
            Launcher.detect([
                "OMPI_COMM_WORLD_SIZE": "4", "OMPI_COMM_WORLD_RANK": "3", "OMPI_COMM_WORLD_LOCAL_SIZE": "2",
            ])
                == .openMPI(rank: 3, size: 4, localSize: 2))
        #expect(Launcher.detect(["PMI_RANK": "0"]) == .other("PMI (MPICH, Intel MPI)"))
        #expect(
            MPIRun.arguments(processes: 2, program: "/bin/fledge", arguments: ["train"], asRoot: false)
                == ["-n", "2", "--bind-to", "none", "--oversubscribe", "--stdin", "none", "/bin/fledge", "train"])
    }
}

/// A value handed to another thread by a test that waits for it.
struct UncheckedBox<T>: @unchecked Sendable {
    let value: T
    init(_ value: T) { self.value = value }
}

/// A value shared by threads behind a lock.
final class Locked<T>: @unchecked Sendable {
    private let lock = NSLock()
    private var stored: T
    init(_ value: T) { stored = value }
    var value: T {
        lock.lock()
        defer { lock.unlock() }
        return stored
    }
    func update(_ body: (inout T) -> Void) {
        lock.lock()
        defer { lock.unlock() }
        body(&stored)
    }
}

/// One typed start for every run: a new model, a resumed run, a fine-tune.
struct RunPlanTests {
    @Test func aPlanStartsResumesAndRefusesWhatCannotWork() throws {
        let folder = TrainingFixtures.scratch()
        let dataset = try TrainingFixtures.dataset(in: folder)
        var config = TrainingFixtures.trainingConfig(steps: 4)
        config.sampleTokens = 0
        let run = folder.appendingPathComponent("run")
        let architecture = ModelConfig(vocabularySize: 1, contextLength: 32, layers: 2, width: 32, heads: 2)
        let backend = CPUBackend(threadCount: 1)
        let fresh = RunPlan(start: .scratch(architecture), data: dataset.folder, run: run, config: config)
        let (first, notes) = try fresh.trainer(backend: backend)
        #expect(notes.isEmpty && first.model.config.vocabularySize == 300)
        _ = try first.train()
        // The run folder now holds a run: a second new run there is refused.
        #expect(throws: TrainingError.self) { _ = try fresh.trainer(backend: backend) }
        let resume = RunPlan(start: .resume(run), data: nil, run: nil, config: TrainingConfig(), steps: 6)
        let (second, resumeNotes) = try resume.trainer(backend: backend)
        #expect(resumeNotes.last == "resuming \(run.path) at step 4 of 6")
        #expect(try second.train().state.step == 6)
        var backwards = resume
        backwards.steps = 5
        #expect(throws: TrainingError.self) { _ = try backwards.trainer(backend: backend) }
        let tune = RunPlan(
            start: .fineTune(from: run.path), data: dataset.folder, run: folder.appendingPathComponent("tuned"),
            config: config)
        let (tuned, _) = try tune.trainer(backend: backend)
        #expect(tuned.model.parameters.array == second.model.parameters.array)
    }
}
