// FledgeFiles: outputs never destroy inputs, only Fledge's own folders are replaced, one process per folder,
// and a folder swap leaves a complete folder in place at every instant (or recovers it after a kill).

import FledgeFiles
import FledgeTestSupport
import Foundation
import Testing

private func scratch(_ name: String) throws -> URL { ScratchFolder.make("files", name) }

private func write(_ text: String, _ url: URL) throws {
    try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
    try Data(text.utf8).write(to: url)
}

@Suite struct FileSafetyTests {
    @Test func outputsThatWouldDestroyInputsAreRefused() throws {
        let root = try scratch("paths")
        let corpus = root.appendingPathComponent("corpus")
        try write("text", corpus.appendingPathComponent("a.txt"))
        let inputs = [(path: corpus.path, option: "input")]
        // The input itself, spelled three ways, a folder above it, and the current folder are refused.
        for output in [corpus.path, corpus.path + "/", root.path + "/corpus/../corpus", root.path] {
            #expect(throws: FileError.self) { try PathCheck.checkOutput(output, option: "--output", inputs: inputs) }
        }
        let link = root.appendingPathComponent("link")
        try FileManager.default.createSymbolicLink(at: link, withDestinationURL: corpus)
        #expect(throws: FileError.self) { try PathCheck.checkOutput(link.path, option: "--output", inputs: inputs) }
        #expect(throws: FileError.self) {
            try PathCheck.checkOutput(FileManager.default.currentDirectoryPath, option: "--output", inputs: [])
        }
        // Inside the input folder: its files would become input.
        #expect(throws: FileError.self) {
            try PathCheck.checkOutput(corpus.appendingPathComponent("out").path, option: "--output", inputs: inputs)
        }
        // A sibling, or a new folder inside the input's parent, is fine.
        try PathCheck.checkOutput(root.appendingPathComponent("out").path, option: "--output", inputs: inputs)
        try PathCheck.checkOutput(root.appendingPathComponent("corpus-out").path, option: "--output", inputs: inputs)
        do {
            try PathCheck.checkOutput(corpus.path, option: "--output", inputs: inputs)
        } catch let error as FileError {
            #expect(error.message.contains("would destroy the input"))
        }
    }

    @Test func onlyFledgesOwnFoldersAreReplaceable() throws {
        let root = try scratch("owned")
        let mine = root.appendingPathComponent("mine")
        try FileManager.default.createDirectory(at: mine, withIntermediateDirectories: true)
        try OwnedOutput.mark(mine, kind: "prepared-data")
        try OwnedOutput.checkReplaceable(mine, kind: "prepared-data", option: "--output")
        #expect(throws: FileError.self) { try OwnedOutput.checkReplaceable(mine, kind: "run", option: "--output") }
        let theirs = root.appendingPathComponent("theirs")
        try write("precious", theirs.appendingPathComponent("notes.txt"))
        #expect(throws: FileError.self) {
            try OwnedOutput.checkReplaceable(theirs, kind: "prepared-data", option: "--output")
        }
        let file = root.appendingPathComponent("file.txt")
        try write("precious", file)
        #expect(throws: FileError.self) { try OwnedOutput.checkReplaceable(file, kind: "prepared-data", option: "--o") }
        // An empty folder, or one the legacy rule recognises, may be replaced.
        let empty = root.appendingPathComponent("empty")
        try FileManager.default.createDirectory(at: empty, withIntermediateDirectories: true)
        try OwnedOutput.checkReplaceable(empty, kind: "prepared-data", option: "--output")
        try OwnedOutput.checkReplaceable(theirs, kind: "x", option: "--output") { $0 == ["notes.txt"] }
    }

    @Test func aSecondHolderIsRefusedAndADeadOnesLockIsFree() throws {
        let root = try scratch("lock")
        let run = root.appendingPathComponent("run")
        do {
            let lock = try FolderLock.run(run)
            #expect(try FolderLock.run(run) === lock)  // shared within the process
        }
        #expect(!FileManager.default.fileExists(atPath: run.appendingPathComponent(".lock").path))  // let go: gone
        // Another holder (a different open file description, as another process has) blocks it.
        let other = open(run.appendingPathComponent(".lock").path, O_RDWR | O_CREAT, 0o644)
        #expect(flock(other, LOCK_EX | LOCK_NB) == 0)
        do {
            _ = try FolderLock.run(run)
            Issue.record("a held lock was acquired twice")
        } catch let error as FileError {
            #expect(error.message.contains("in use by another Fledge process"))
        }
        close(other)  // the holder dies: the kernel releases its lock; the stale file is taken over
        _ = try FolderLock.run(run)
    }

    @Test(arguments: [true, false]) func swapKeepsACompleteFolderInPlace(exchange: Bool) throws {
        let root = try scratch("swap-\(exchange)")
        let target = root.appendingPathComponent("latest")
        try write("1", target.appendingPathComponent("step"))
        let new = FolderSwap.temporary(for: target)
        try write("2", new.appendingPathComponent("step"))
        if exchange {
            try FolderSwap.install(new, at: target)
        } else {
            setenv("FLEDGE_NO_RENAME_EXCHANGE", "1", 1)
            defer { unsetenv("FLEDGE_NO_RENAME_EXCHANGE") }
            try FolderSwap.install(new, at: target)
        }
        #expect(String(decoding: try Data(contentsOf: target.appendingPathComponent("step")), as: UTF8.self) == "2")
        #expect(FolderSwap.leftovers(of: target).isEmpty)
    }

    @Test func recoveryRestoresTheNewestCompleteLeftover() throws {
        let root = try scratch("recover")
        let target = root.appendingPathComponent("latest")
        // A kill between the two renames: no target, the old folder aside, the new one complete.
        try write("5", root.appendingPathComponent(".latest.old-11/step"))
        try write("9", root.appendingPathComponent(".latest.tmp-11/step"))
        try write("", root.appendingPathComponent(".latest.tmp-12/partial"))  // incomplete: no step
        let rank: (URL) -> Double? = { url in
            (try? String(contentsOf: url.appendingPathComponent("step"), encoding: .utf8)).flatMap(Double.init)
        }
        let restored = FolderSwap.recover(target, rank: rank)
        #expect(restored?.lastPathComponent == ".latest.tmp-11")
        #expect(rank(target) == 9)
        #expect(FolderSwap.leftovers(of: target).isEmpty)
        // With the target in place, leftovers are only deleted.
        try write("3", root.appendingPathComponent(".latest.tmp-13/step"))
        #expect(FolderSwap.recover(target, rank: rank) == nil)
        #expect(rank(target) == 9)
        #expect(FolderSwap.leftovers(of: target).isEmpty)
    }

    @Test func userFilesNameWhatIsWrong() throws {
        let root = try scratch("user")
        do {
            _ = try UserFile.read(root.path, "the tokenizer")
            Issue.record("a folder was read as a file")
        } catch let error as FileError {
            #expect(error.message.contains("is a folder, not a file"))
        }
        #expect(throws: FileError.self) { try UserFile.read(root.appendingPathComponent("nope").path, "x") }
        let big = root.appendingPathComponent("big")
        try Data(count: 100).write(to: big)
        #expect(throws: FileError.self) { try UserFile.read(big.path, "x", limit: 10) }
        #expect(try UserFile.read(big.path, "x").count == 100)
    }
}
