// Small models and tokenizers for the generation tests: a byte-level BPE trained on a little Shakespeare and a
// word-level vocabulary with words of every length 1–10, each with a randomly initialised GPT (random weights
// give spread-out distributions, which is what the sampling and constraint tests need).

import FledgeData
import FledgeGeneration
import FledgeModel
import FledgeTensor
import FledgeTestSupport
import FledgeTokenizer
import Foundation

enum Fixtures {
    static let text = TestCorpus.shakespeareText(prefix: 60_000)
    static let bpe = TestCorpus.bpe(vocabularySize: 320, text: text)

    static let words: WordLevelTokenizer = {
        let specials = ["<pad>", "<unk>", "<bos>", "<eos>"]
        let list = [
            "a", "I", "be", "to", "the", "and", "thou", "love", "heart", "night", "sorrow", "strange", "kingdoms",
            "gentlemen", "melancholy", "my", "sweet", "is", "of", "O", ",", ".", "!", "fair", "time", "death",
            "friends", "majesty", "murderer", "appetites",
        ]
        let special = SpecialTokens(specials.enumerated().map { (text: $0.element, id: Int32($0.offset)) })
        return try! WordLevelTokenizer(
            words: specials + list, unknownToken: "<unk>", lowercase: false, specialTokens: special)
    }()

    static func model(vocabulary: Int, context: Int = 64, seed: UInt64 = 5, threads: Int = 1) throws -> GPT {
        let config = ModelConfig(vocabularySize: vocabulary, contextLength: context, layers: 2, width: 32, heads: 4)
        let model = try GPT(config: config, backend: CPUBackend(threadCount: threads), seed: seed)
        // Larger weights than the GPT-2 initialisation, so that distributions are peaked enough to be
        // interesting yet varied.
        model.parameters.withHostAccess { p in
            for i in p.indices { p[i] *= 6 }
        }
        return model
    }

    static func generator(_ tokenizer: any Tokenizer = bpe, context: Int = 64, seed: UInt64 = 5) throws -> Generator {
        try Generator(
            model: model(vocabulary: tokenizer.vocabularySize, context: context, seed: seed), tokenizer: tokenizer)
    }
}
