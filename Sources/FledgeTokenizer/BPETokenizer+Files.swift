// BPETokenizer+Files: loading OpenAI's GPT-2 files (encoder.json + vocab.bpe, openai/gpt-2 encoder.py) and
// tiktoken `.tiktoken` files (one "base64(token bytes) rank" per line; rank = id). tiktoken files have no
// merge list: the merge that creates each token is recovered by running BPE on its bytes with the tokens of
// lower rank, as Hugging Face's converter does.

import Foundation

extension BPETokenizer {
    /// Loads GPT-2's `encoder.json` and `vocab.bpe`; `<|endoftext|>` becomes a special token.
    public static func loadGPT2(encoder encoderURL: URL, merges mergesURL: URL) throws -> BPETokenizer {
        let encoderData = try TokenizerJSON.readFile(encoderURL.path, "the vocabulary file")
        guard let encoder = try? JSONSerialization.jsonObject(with: encoderData) as? [String: Int] else {
            throw TokenizerError(
                "\(encoderURL.path) is not a JSON object of token → id", hint: "pass GPT-2's encoder.json.")
        }
        var tokenBytes = [[UInt8]](repeating: [], count: (encoder.values.max() ?? -1) + 1)
        for (token, id) in encoder {
            guard id >= 0, let bytes = ByteLevel.decode(token) else {
                throw TokenizerError(
                    "\(encoderURL.path): token \(token.debugDescription) is not written in GPT-2's byte alphabet",
                    hint: "pass a byte-level BPE encoder.json (GPT-2 style).")
            }
            tokenBytes[id] = bytes
        }
        let lines = String(decoding: try TokenizerJSON.readFile(mergesURL.path, "the vocabulary file"), as: UTF8.self)
            .split(
                separator: "\n", omittingEmptySubsequences: true)
        var merges: [(left: Int32, right: Int32)] = []
        for (number, line) in lines.enumerated() where !line.hasPrefix("#version") {
            let parts = line.split(separator: " ")
            guard parts.count == 2, let left = encoder[String(parts[0])], let right = encoder[String(parts[1])] else {
                throw TokenizerError(
                    "\(mergesURL.path) line \(number + 1): \(line.debugDescription) is not two known tokens",
                    hint: "pass the vocab.bpe that belongs to this encoder.json.")
            }
            merges.append((Int32(left), Int32(right)))
        }
        var specials: [(text: String, id: Int32)] = []
        if let eos = encoder["<|endoftext|>"] { specials.append(("<|endoftext|>", Int32(eos))) }
        return try BPETokenizer(
            tokenBytes: tokenBytes, merges: merges, preTokenizer: .gpt2, specialTokens: SpecialTokens(specials))
    }

    /// Loads a tiktoken file; `specialTokens` are added (GPT-2's r50k_base: ["<|endoftext|>": 50256]).
    public static func loadTiktoken(
        _ url: URL, preTokenizer: PreTokenizer = .gpt2, specialTokens: [String: Int32] = ["<|endoftext|>": 50256]
    ) throws -> BPETokenizer {
        let text = String(decoding: try TokenizerJSON.readFile(url.path, "the vocabulary file"), as: UTF8.self)
        var ranked: [(bytes: [UInt8], rank: Int)] = []
        for (number, line) in text.split(separator: "\n", omittingEmptySubsequences: true).enumerated() {
            let parts = line.split(separator: " ")
            guard parts.count == 2, let bytes = Data(base64Encoded: String(parts[0])), let rank = Int(parts[1]),
                rank >= 0
            else {
                throw TokenizerError(
                    "\(url.path) line \(number + 1) is not \"base64 rank\"", hint: "pass a .tiktoken file.")
            }
            ranked.append((Array(bytes), rank))
        }
        let size = max((ranked.map(\.rank).max() ?? -1) + 1, (specialTokens.values.max().map { Int($0) + 1 }) ?? 0)
        var tokenBytes = [[UInt8]](repeating: [], count: size)
        var rankOf: [[UInt8]: Int] = [:]
        for (bytes, rank) in ranked {
            tokenBytes[rank] = bytes
            rankOf[bytes] = rank
        }
        for (text, id) in specialTokens { tokenBytes[Int(id)] = Array(text.utf8) }
        // Recover each multi-byte token's merge: BPE on its bytes using only lower ranks leaves two parts.
        var merges: [(left: Int32, right: Int32, rank: Int)] = []
        for (bytes, rank) in ranked where bytes.count > 1 {
            var parts = bytes.map { [$0] }
            while parts.count > 2 {
                var best: (rank: Int, index: Int)?
                for i in 0..<parts.count - 1 {
                    if let r = rankOf[parts[i] + parts[i + 1]], r < rank, r < (best?.rank ?? Int.max) { best = (r, i) }
                }
                guard let best else { break }
                parts[best.index] += parts[best.index + 1]
                parts.remove(at: best.index + 1)
            }
            guard parts.count == 2, let left = rankOf[parts[0]], let right = rankOf[parts[1]] else {
                throw TokenizerError(
                    "\(url.path): token of rank \(rank) cannot be built from two lower-ranked tokens",
                    hint: "the file is not a BPE vocabulary tiktoken can use.")
            }
            merges.append((Int32(left), Int32(right), rank))
        }
        merges.sort { $0.rank < $1.rank }
        return try BPETokenizer(
            tokenBytes: tokenBytes, merges: merges.map { ($0.left, $0.right) }, preTokenizer: preTokenizer,
            specialTokens: SpecialTokens(specialTokens.map { ($0.key, $0.value) }))
    }
}
