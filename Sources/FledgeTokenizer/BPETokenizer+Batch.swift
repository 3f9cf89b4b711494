// BPETokenizer+Batch: encoding many texts on several threads, each thread with its own merge cache. The
// result is the same as encoding each text alone, in order.

import Foundation

extension BPETokenizer {
    /// Token ids of each text, encoded on `threads` threads.
    public func encodeBatch(
        _ texts: [[UInt8]], allowSpecial: Bool = false, threads: Int = ProcessInfo.processInfo.activeProcessorCount
    )
        -> [[Int32]]
    {
        let workers = max(1, min(threads, texts.count))
        let results = UnsafeMutableBufferPointer<[Int32]>.allocate(capacity: texts.count)
        results.initialize(repeating: [])
        defer { results.deinitialize().deallocate() }
        let job = BatchEncodingJob(
            tokenizer: self, texts: texts, results: results, workers: workers, allowSpecial: allowSpecial)
        DispatchQueue.concurrentPerform(iterations: workers) { job.run($0) }
        return Array(results)
    }

    /// Splits `bytes` into about `parts` pieces at line breaks (so no piece boundary falls inside a word).
    public static func splitAtLines(_ bytes: [UInt8], parts: Int) -> [[UInt8]] {
        var pieces: [[UInt8]] = []
        var start = 0
        for p in 1...max(1, parts) {
            var cut = p == parts ? bytes.count : max(start, bytes.count * p / parts)
            while cut < bytes.count && bytes[cut] != UInt8(ascii: "\n") { cut += 1 }
            cut = min(bytes.count, cut + (cut < bytes.count ? 1 : 0))
            if cut > start { pieces.append(Array(bytes[start..<cut])) }
            start = cut
        }
        if start < bytes.count { pieces.append(Array(bytes[start...])) }
        return pieces
    }
}

/// Worker w encodes texts w, w + workers, ...; each writes only its own result slots.
private struct BatchEncodingJob: @unchecked Sendable {
    let tokenizer: BPETokenizer
    let texts: [[UInt8]]
    let results: UnsafeMutableBufferPointer<[Int32]>
    let workers: Int
    let allowSpecial: Bool

    func run(_ worker: Int) {
        var cache = MergeCache()
        for i in stride(from: worker, to: texts.count, by: workers) {
            results[i] = tokenizer.encode(bytes: texts[i], allowSpecial: allowSpecial, cache: &cache)
        }
    }
}
