// Mixer: the train/validation split (by content hash, so a document always lands on the same side) and the
// mix of sources by token share. Both choose documents in hash order, so
// adding a source or a document never reshuffles the others.

/// How the mix reaches its ratios.
public enum MixMode: String, Codable, Sendable, CaseIterable {
    /// Keep every document of every source; weights are ignored.
    case none
    /// Use fewer tokens of the over-represented sources; nothing is repeated.
    case downsample
    /// Repeat documents of the under-represented sources (whole passes, then a partial pass in hash order).
    case upsample
}

/// Split settings: a validation fraction, or a fixed validation size in tokens.
public struct SplitConfig: Codable, Sendable, Equatable {
    public var validationFraction = 0.05
    /// When set, the validation side is the documents with the smallest hashes up to this many tokens.
    public var validationTokens: Int?

    public init() {}
}

/// A document as the splitter and mixer see it.
public struct MixItem: Sendable {
    public var source: Int
    public var hash: ContentHash
    public var tokens: Int

    public init(source: Int, hash: ContentHash, tokens: Int) {
        self.source = source
        self.hash = hash
        self.tokens = tokens
    }
}

public enum Mixer {
    /// Whether each item goes to validation.
    public static func split(_ items: [MixItem], _ config: SplitConfig) -> [Bool] {
        guard let budget = config.validationTokens else {
            return items.map { $0.hash.unitInterval < config.validationFraction }
        }
        var validation = [Bool](repeating: false, count: items.count)
        var taken = 0
        for index in items.indices.sorted(by: { items[$0].hash < items[$1].hash }) where taken < budget {
            validation[index] = true
            taken += items[index].tokens
        }
        return validation
    }

    /// How many times each item is used so that source s gets weights[s] / Σ weights of the tokens.
    public static func mix(_ items: [MixItem], weights: [Double], mode: MixMode) -> [Int] {
        var available = [Int](repeating: 0, count: weights.count)
        for item in items { available[item.source] += item.tokens }
        let present = weights.indices.filter { available[$0] > 0 }
        let total = present.reduce(0) { $0 + weights[$1] }
        guard present.count > 1, mode != .none else { return items.map { _ in 1 } }
        // The whole mix in tokens: the largest that needs no repeats (downsample) or that uses all of every source (upsample).
        let sizes = present.map { Double(available[$0]) / (weights[$0] / total) }
        let mixTokens = mode == .downsample ? sizes.min()! : sizes.max()!
        var uses = [Int](repeating: 0, count: items.count)
        for source in present {
            let target = mixTokens * weights[source] / total
            let members = items.indices.filter { items[$0].source == source }.sorted { items[$0].hash < items[$1].hash }
            let passes = Int(target / Double(available[source]))
            for index in members { uses[index] = passes }
            var taken = Double(passes * available[source])
            // Whole documents in hash order while each one's middle still falls short of the target.
            for index in members where taken + Double(items[index].tokens) / 2 < target {
                uses[index] += 1
                taken += Double(items[index].tokens)
            }
        }
        return uses
    }
}
