// DocumentEncoder: turns a cleaned document into the token sequence a model trains on — [BOS] text EOS for
// plain text, and the question/answer template for pairs, with a loss mask that is 1 only on the answer (and
// what follows it, EOS included). Template pieces are encoded separately, exactly as `fledge chat` will
// encode a prompt that ends where the answer starts.

import FledgeTokenizer

/// How documents become token sequences.
public struct SequenceFormat: Codable, Sendable, Equatable {
    /// The end-of-sequence token appended to every document (nil: the first of <|endoftext|>, <eos>, </s>,
    /// [EOS] that the tokenizer has).
    public var eosToken: String?
    /// The beginning-of-sequence token (nil: the first of <bos>, <s>, <|startoftext|>, [BOS], else the EOS
    /// token, as GPT-2 uses <|endoftext|> for both).
    public var bosToken: String?
    /// Put BOS before each plain-text document (question/answer pairs follow their template).
    public var addBOS = false
    /// The question/answer template: {question} and {answer} are the pair's text, {bos} and {eos} the special
    /// tokens. The loss mask starts at {answer}.
    public var questionAnswerTemplate = "{bos}Question: {question}\nAnswer: {answer}{eos}"
    /// In a checkpoint's copy: whether the model was trained on question/answer pairs in this template (nil:
    /// not recorded, as in prepared data and older checkpoints).
    public var questionAnswerData: Bool?

    public init() {}

    /// `addBOS` is spelled without the acronym so that snake_case keys ("add_bos") decode back.
    enum CodingKeys: String, CodingKey {
        case eosToken, bosToken, questionAnswerTemplate, questionAnswerData
        case addBOS = "addBos"
    }
}

/// A piece of a question/answer template.
public enum TemplatePiece: Equatable, Sendable {
    case literal(String)
    case question
    case answer
    case bos
    case eos

    /// Parses a template; it must hold {question} before {answer}, each once.
    public static func parse(_ template: String) throws -> [TemplatePiece] {
        var pieces: [TemplatePiece] = []
        var rest = Substring(template)
        let names: [(String, TemplatePiece)] = [
            ("{question}", .question), ("{answer}", .answer), ("{bos}", .bos), ("{eos}", .eos),
        ]
        while !rest.isEmpty {
            if let (name, piece) = names.first(where: { rest.hasPrefix($0.0) }) {
                pieces.append(piece)
                rest = rest.dropFirst(name.count)
                continue
            }
            let next = names.compactMap { rest.range(of: $0.0)?.lowerBound }.min() ?? rest.endIndex
            pieces.append(.literal(String(rest[..<next])))
            rest = rest[next...]
        }
        let questions = pieces.filter { $0 == .question }.count
        let answers = pieces.filter { $0 == .answer }.count
        guard questions == 1, answers == 1, pieces.firstIndex(of: .question)! < pieces.firstIndex(of: .answer)! else {
            throw DataError(
                "question/answer template \(template.debugDescription) must hold {question} and then {answer}, once each",
                hint: "e.g. --qa-template '{bos}Question: {question}\\nAnswer: {answer}{eos}'.")
        }
        return pieces
    }
}

/// Encodes documents with a tokenizer and a `SequenceFormat`.
public struct DocumentEncoder: Sendable {
    public let tokenizer: any Tokenizer
    public let eos: Int32
    public let bos: Int32
    public let addBOS: Bool
    public let template: [TemplatePiece]
    /// The names of the EOS and BOS tokens used.
    public let eosName: String
    public let bosName: String

    /// The names looked for, in order, when no end-of-sequence token is named.
    public static let eosNames = ["<|endoftext|>", "<eos>", "</s>", "[EOS]", "<|eos|>"]

    /// The id of the first of `eosNames` that `tokenizer` has.
    public static func endOfSequence(in tokenizer: any Tokenizer) -> Int32? {
        eosNames.lazy.compactMap { tokenizer.specialTokens.id($0) }.first
    }

    public init(tokenizer: any Tokenizer, format: SequenceFormat) throws {
        self.tokenizer = tokenizer
        let specials = tokenizer.specialTokens
        let names = specials.tokens.map(\.text).sorted()
        func find(_ requested: String?, _ candidates: [String], _ role: String) throws -> (String, Int32)? {
            if let requested {
                guard let id = specials.id(requested) else {
                    throw DataError(
                        "the tokenizer has no special token \(requested.debugDescription) for \(role) (it has: \(names.isEmpty ? "none" : names.joined(separator: " ")))",
                        hint: "pick one of its special tokens, or train a tokenizer with it (--special-tokens).")
                }
                return (requested, id)
            }
            return candidates.lazy.compactMap { name in specials.id(name).map { (name, $0) } }.first
        }
        guard let eos = try find(format.eosToken, DocumentEncoder.eosNames, "--eos-token") else {
            throw DataError(
                "the tokenizer has no end-of-sequence token (special tokens: \(names.isEmpty ? "none" : names.joined(separator: " ")))",
                hint:
                    "name one with --eos-token, or train a tokenizer with <eos> (the default special tokens include it)."
            )
        }
        let bos =
            try find(format.bosToken, ["<bos>", "<s>", "<|startoftext|>", "[BOS]", "<|bos|>"], "--bos-token") ?? eos
        (eosName, self.eos) = eos
        (bosName, self.bos) = bos
        addBOS = format.addBOS
        template = try TemplatePiece.parse(format.questionAnswerTemplate)
    }

    /// The ids of `bytes` (ordinary text: special-token strings in it stay text).
    public func tokens(_ bytes: [UInt8], cache: inout MergeCache) -> [Int32] {
        if let bpe = tokenizer as? BPETokenizer { return bpe.encode(bytes: bytes, allowSpecial: false, cache: &cache) }
        return tokenizer.encode(bytes: bytes, allowSpecial: false)
    }

    /// The token sequence of a document and, for a question/answer pair, its loss mask (nil: every token is a
    /// target).
    public func encode(_ document: Document, cache: inout MergeCache) -> (tokens: [Int32], mask: [UInt8]?) {
        guard let answer = document.answer else {
            var tokens: [Int32] = addBOS ? [bos] : []
            tokens += self.tokens(document.text, cache: &cache)
            tokens.append(eos)
            return (tokens, nil)
        }
        var tokens: [Int32] = []
        var mask: [UInt8] = []
        var target: UInt8 = 0
        for piece in template {
            let ids: [Int32]
            switch piece {
            case .literal(let text): ids = self.tokens(Array(text.utf8), cache: &cache)
            case .question: ids = self.tokens(document.text, cache: &cache)
            case .answer:
                target = 1
                ids = self.tokens(answer, cache: &cache)
            case .bos: ids = [bos]
            case .eos: ids = [eos]
            }
            tokens += ids
            mask += [UInt8](repeating: target, count: ids.count)
        }
        return (tokens, mask)
    }

    /// The prompt of a question (the template up to {answer}), as a chat encodes it.
    public func prompt(question: String, cache: inout MergeCache) -> [Int32] {
        turn(question: question, cache: &cache).prompt
    }

    /// A chat turn's two halves: the prompt (the template up to {answer}) and what closes an answer (the
    /// template after {answer}, e.g. EOS).
    public func turn(question: String, cache: inout MergeCache) -> (prompt: [Int32], closing: [Int32]) {
        let document = Document(source: 0, file: 0, ordinal: 0, text: Array(question.utf8), answer: [])
        let (tokens, mask) = encode(document, cache: &cache)
        let split = mask!.firstIndex(of: 1) ?? tokens.count
        return (Array(tokens[..<split]), Array(tokens[split...]))
    }
}
