// LogitsProcessor: anything that reshapes the next-token logits before sampling — penalties, bans, allowed
// lists, constraints such as Pilish. A processor sees one row's logits and that row's history (prompt and
// tokens generated so far) and writes −∞ to forbid a token. Processors keep no per-row state (they derive it
// from the history), so one instance serves every row of a batch. Built-ins below; Pilish has its own file.

import FledgeTokenizer

/// The tokens of one sequence so far.
public struct TokenHistory {
    public let prompt: [Int32]
    public let generated: [Int32]

    public init(prompt: [Int32], generated: [Int32]) {
        self.prompt = prompt
        self.generated = generated
    }

    public var count: Int { prompt.count + generated.count }
    /// Token `i` of prompt followed by output.
    public subscript(i: Int) -> Int32 { i < prompt.count ? prompt[i] : generated[i - prompt.count] }
}

/// Reshapes the next-token logits of one row in place; −∞ forbids a token.
public protocol LogitsProcessor: AnyObject {
    func process(_ logits: UnsafeMutableBufferPointer<Float>, history: TokenHistory)
}

/// CTRL's repetition penalty: every distinct token of the prompt and output has a positive logit divided by
/// `penalty` and a negative one multiplied by it.
public final class RepetitionPenalty: LogitsProcessor {
    public let penalty: Float
    private var seen: [UInt32] = []
    private var stamp: UInt32 = 0

    public init(penalty: Float) { self.penalty = penalty }

    public func process(_ logits: UnsafeMutableBufferPointer<Float>, history: TokenHistory) {
        if seen.count != logits.count { seen = [UInt32](repeating: 0, count: logits.count) }
        stamp &+= 1
        if stamp == 0 {  // wrapped: clear the marks
            for i in seen.indices { seen[i] = 0 }
            stamp = 1
        }
        for i in 0..<history.count {
            let t = Int(history[i])
            guard t >= 0, t < logits.count, seen[t] != stamp else { continue }
            seen[t] = stamp
            logits[t] = logits[t] > 0 ? logits[t] / penalty : logits[t] * penalty
        }
    }
}

/// OpenAI's frequency and presence penalties over the generated tokens:
/// logit −= frequency × count + presence × (count > 0).
public final class FrequencyPresencePenalty: LogitsProcessor {
    public let frequency: Float
    public let presence: Float
    private var counts: [Int32] = []

    public init(frequency: Float, presence: Float) {
        self.frequency = frequency
        self.presence = presence
    }

    public func process(_ logits: UnsafeMutableBufferPointer<Float>, history: TokenHistory) {
        if counts.count != logits.count { counts = [Int32](repeating: 0, count: logits.count) }
        for t in history.generated where t >= 0 && Int(t) < logits.count { counts[Int(t)] += 1 }
        for t in history.generated where t >= 0 && Int(t) < logits.count && counts[Int(t)] > 0 {
            logits[Int(t)] -= frequency * Float(counts[Int(t)]) + presence
            counts[Int(t)] = 0  // once per distinct token; leaves the scratch zeroed
        }
    }
}

/// Forbids any token that would complete an n-gram already present in the prompt or output.
public final class NoRepeatNGram: LogitsProcessor {
    public let size: Int

    public init(size: Int) { self.size = size }

    public func process(_ logits: UnsafeMutableBufferPointer<Float>, history: TokenHistory) {
        let p = size - 1
        let length = history.count
        guard size >= 1, length >= p else { return }
        for start in 0..<(length - p) {
            var match = true
            for j in 0..<p where history[start + j] != history[length - p + j] {
                match = false
                break
            }
            let t = Int(history[start + p])
            if match && t >= 0 && t < logits.count { logits[t] = -.infinity }
        }
    }
}

/// Forbids token sequences: a single token always, a longer sequence's last token whenever the text so far
/// (prompt and output) ends with the rest of it.
public final class BannedSequences: LogitsProcessor {
    public let sequences: [[Int32]]

    public init(sequences: [[Int32]]) { self.sequences = sequences.filter { !$0.isEmpty } }

    /// Bans words as they would be written after a space and at the start of a text. A tokenizer may spell a
    /// word with other tokens as well (e.g. letter by letter); those spellings are not banned.
    public convenience init(words: [String], tokenizer: any Tokenizer) {
        var sequences: [[Int32]] = []
        for word in words where !word.isEmpty {
            for spelling in [word, " " + word] {
                let ids = tokenizer.encode(bytes: Array(spelling.utf8), allowSpecial: false)
                if !ids.isEmpty && !sequences.contains(ids) { sequences.append(ids) }
            }
        }
        self.init(sequences: sequences)
    }

    public func process(_ logits: UnsafeMutableBufferPointer<Float>, history: TokenHistory) {
        let length = history.count
        for sequence in sequences {
            let prefix = sequence.count - 1
            guard prefix <= length else { continue }
            var match = true
            for j in 0..<prefix where history[length - prefix + j] != sequence[j] {
                match = false
                break
            }
            let t = Int(sequence[prefix])
            if match && t >= 0 && t < logits.count { logits[t] = -.infinity }
        }
    }
}

/// Allows only the listed tokens.
public final class AllowedTokens: LogitsProcessor {
    private var allowed: [Bool] = []
    public let tokens: [Int32]

    public init(tokens: [Int32]) { self.tokens = tokens }

    public func process(_ logits: UnsafeMutableBufferPointer<Float>, history: TokenHistory) {
        if allowed.count != logits.count {
            allowed = [Bool](repeating: false, count: logits.count)
            for t in tokens where t >= 0 && Int(t) < logits.count { allowed[Int(t)] = true }
        }
        for i in 0..<logits.count where !allowed[i] { logits[i] = -.infinity }
    }
}
