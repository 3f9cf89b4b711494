// DataManifest+Summary: the table `fledge data prepare` prints at the end (and `fledge data info` prints
// again): each stage's documents in and out, what it removed and its share of the time; each split; the mix.

import Foundation

extension DataManifest {
    /// A plain-text summary, one table per aspect.
    public func summary() -> String {
        var lines: [String] = []
        let total = max(stages.reduce(0) { $0 + $1.seconds }, 1e-9)
        lines.append("stage           docs in   docs out   characters      tokens   seconds  share  removed")
        for stage in stages {
            let removed = stage.removed.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(
                separator: ", ")
            lines.append(
                String(
                    format: "%@ %9d %10d %12d %@ %9.2f %5.1f%%  %@", pad(stage.stage, 13), stage.documentsIn,
                    stage.documentsOut, stage.charactersOut,
                    pad(stage.tokensOut.map(String.init) ?? "-", 11, left: true),
                    stage.seconds, 100 * stage.seconds / total, removed.isEmpty ? "-" : removed))
        }
        if nearDuplicates.clusters > 0 {
            lines.append(
                "near duplicates: \(nearDuplicates.clusters) clusters (largest \(nearDuplicates.largestCluster)), LSH \(nearDuplicates.bands) bands × \(nearDuplicates.rows) rows"
            )
        }
        if skippedRecords > 0, let skipped {
            let reasons = skipped.reasons.sorted { ($1.value, $0.key) < ($0.value, $1.key) }
                .map { "\($0.value) \($0.key)" }.joined(separator: ", ")
            lines.append("skipped \(skippedRecords) bad records: \(reasons)")
            for example in skipped.examples { lines.append("  e.g. \(example)") }
        }
        lines.append("")
        lines.append("split        documents      tokens   text bytes  bytes/token  targets  shards")
        for name in ["train", "validation"] {
            guard let split = splits[name] else { continue }
            lines.append(
                String(
                    format: "%@ %11d %11d %12d %12.3f %8d %7d", pad(name, 10), split.documents, split.tokens,
                    split.textBytes,
                    Double(split.textBytes) / Double(max(split.tokens, 1)), split.targetTokens, split.shards.count))
        }
        if sources.count > 1 {
            let trainTotal = max(sources.reduce(0) { $0 + $1.trainTokens }, 1)
            let weightTotal = sources.reduce(0) { $0 + $1.weight }
            lines.append("")
            lines.append("source        weight   target  achieved  train tokens  val tokens")
            for source in sources {
                lines.append(
                    String(
                        format: "%@ %7.2f %@ %8.1f%% %13d %11d", pad(source.name, 12), source.weight,
                        config.mix == .none
                            ? "      -" : String(format: "%6.1f%%", 100 * source.weight / weightTotal),
                        100 * Double(source.trainTokens) / Double(trainTotal), source.trainTokens,
                        source.validationTokens))
            }
        }
        return lines.joined(separator: "\n")
    }
}

/// `text` padded with spaces to `width` (on the left with `left`); Foundation's %-10@ does not pad.
func pad(_ text: String, _ width: Int, left: Bool = false) -> String {
    let fill = String(repeating: " ", count: max(0, width - text.count))
    return left ? fill + text : text + fill
}
