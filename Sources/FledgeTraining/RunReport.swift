// RunReport: report.html of a run, readable offline (no scripts, no external files) — the loss curves
// (training and validation, against steps) as inline SVG, the final numbers, the model and training
// configuration, the data manifest's summary, and the samples at each evaluation.

import FledgeData
import FledgeFiles
import FledgeModel
import Foundation

public enum RunReport {
    /// Writes the report atomically.
    public static func write(
        to url: URL, metrics: [MetricsRecord], model: ModelConfig, parameters: Int, training: TrainingConfig,
        manifest: DataManifest, state: TrainerState
    ) throws {
        let train = metrics.filter { $0.kind == "train" }.compactMap { r in r.loss.map { (Double(r.step), Double($0)) }
        }
        let validation = metrics.filter { $0.kind == "eval" }.compactMap { r in
            r.validationLoss.map { (Double(r.step), Double($0)) }
        }
        let lastEval = metrics.last { $0.kind == "eval" }
        // A run limited by time alone speaks in time; one with a step limit in steps.
        let progress =
            training.maxSteps >= TrainingConfig.unlimitedSteps
            ? String(
                format: "step %d after %.0f s of a %.0f s budget", state.step, state.elapsedSeconds,
                training.maxSeconds ?? 0)
            : String(format: "step %d of %d, %.0f s", state.step, training.maxSteps, state.elapsedSeconds)
        var html = """
            <!doctype html><html><head><meta charset="utf-8"><title>Fledge run report</title>
            <style>body{font-family:system-ui,sans-serif;max-width:960px;margin:2em auto;color:#222}
            table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:2px 8px;text-align:left}
            pre{background:#f6f6f6;padding:8px;overflow-x:auto;white-space:pre-wrap}.k{color:#666}</style></head><body>
            <h1>Fledge run report</h1>
            <p>\(escape(url.deletingLastPathComponent().path)) — \(progress), \
            \(state.tokensSeen) tokens</p>
            """
        if let lastEval, let loss = lastEval.validationLoss {
            html += String(
                format: "<p><b>Validation</b> (step %d): loss %.4f, perplexity %.2f, bits per byte %.4f",
                lastEval.step, loss, lastEval.perplexity ?? 0, lastEval.bitsPerByte ?? 0)
            if let best = state.bestValidationLoss { html += String(format: "; best loss %.4f", best) }
            html += "</p>"
        }
        html += "<h2>Loss</h2>" + chart(train: train, validation: validation)
        html += "<h2>Model</h2><table>"
        html += row("parameters", "\(parameters)")
        for (key, value) in configRows(model) { html += row(key, value) }
        html += "</table><h2>Training</h2>"
        let encoder = JSONEncoder()
        encoder.keyEncodingStrategy = .convertToSnakeCase
        encoder.outputFormatting = [.sortedKeys, .prettyPrinted]
        let trainingJSON = (try? encoder.encode(training)).map { String(decoding: $0, as: UTF8.self) } ?? ""
        html += "<pre>\(escape(trainingJSON))</pre>"
        html += "<h2>Data</h2><pre>\(escape(manifest.summary()))</pre>"
        html += "<h2>Samples</h2>"
        for sample in metrics.filter({ $0.kind == "sample" }).suffix(30) {
            html += "<p class=k>step \(sample.step), prompt \(escape((sample.prompt ?? "").debugDescription))</p>"
            html += "<pre>\(escape((sample.prompt ?? "") + (sample.text ?? "")))</pre>"
        }
        let events = metrics.filter { $0.kind == "event" && !($0.message ?? "").hasPrefix("saved") }
        if !events.isEmpty {
            html += "<h2>Events</h2><ul>"
            for event in events { html += "<li>step \(event.step): \(escape(event.message ?? ""))</li>" }
            html += "</ul>"
        }
        html += "</body></html>\n"
        try AtomicFile.write(Data(html.utf8), to: url)
    }

    static func row(_ key: String, _ value: String) -> String {
        "<tr><th>\(escape(key))</th><td>\(escape(value))</td></tr>"
    }

    static func configRows(_ config: ModelConfig) -> [(String, String)] {
        guard let data = try? ModelCheckpoint.configJSON(config),
            let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any]
        else { return [] }
        return object.keys.sorted().map { ($0, "\(object[$0]!)") }
    }

    /// An SVG line chart of training loss (thin, smoothed) and validation loss (points and line) against steps.
    static func chart(train: [(Double, Double)], validation: [(Double, Double)]) -> String {
        let all = train + validation
        guard let maxStep = all.map(\.0).max(), maxStep > 0 else { return "<p>No steps yet.</p>" }
        let losses = all.map(\.1).filter(\.isFinite)
        let low = max(0, (losses.min() ?? 0) - 0.1)
        let high = (losses.max() ?? 1) + 0.1
        let (width, height, margin) = (900.0, 360.0, 50.0)
        func x(_ step: Double) -> Double { margin + (width - 2 * margin) * step / maxStep }
        func y(_ loss: Double) -> Double { height - margin - (height - 2 * margin) * (loss - low) / (high - low) }
        func path(_ points: [(Double, Double)]) -> String {
            points.filter { $0.1.isFinite }.enumerated().map { i, p in
                String(format: "%@%.1f,%.1f", i == 0 ? "M" : "L", x(p.0), y(p.1))
            }.joined(separator: " ")
        }
        // Smooth the training loss (exponential moving average) so the trend is visible.
        var smoothed: [(Double, Double)] = []
        var average: Double?
        for (step, loss) in train where loss.isFinite {
            average = average.map { 0.9 * $0 + 0.1 * loss } ?? loss
            smoothed.append((step, average!))
        }
        var svg =
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(Int(width))\" height=\"\(Int(height))\" font-size=\"12\">"
        for k in 0...4 {
            let loss = low + (high - low) * Double(k) / 4
            svg += String(
                format:
                    "<line x1=\"%.0f\" x2=\"%.0f\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"#eee\"/><text x=\"4\" y=\"%.1f\">%.2f</text>",
                margin, width - margin, y(loss), y(loss), y(loss) + 4, loss)
        }
        for k in 0...4 {
            let step = maxStep * Double(k) / 4
            svg += String(
                format: "<text x=\"%.1f\" y=\"%.0f\" text-anchor=\"middle\">%.0f</text>", x(step), height - 20, step)
        }
        svg += "<text x=\"\(Int(width / 2))\" y=\"\(Int(height - 4))\" text-anchor=\"middle\">step</text>"
        svg += "<path d=\"\(path(train))\" fill=\"none\" stroke=\"#9ecae1\" stroke-width=\"1\"/>"
        svg += "<path d=\"\(path(smoothed))\" fill=\"none\" stroke=\"#3182bd\" stroke-width=\"2\"/>"
        svg += "<path d=\"\(path(validation))\" fill=\"none\" stroke=\"#e6550d\" stroke-width=\"2\"/>"
        for (step, loss) in validation where loss.isFinite {
            svg += String(format: "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3\" fill=\"#e6550d\"/>", x(step), y(loss))
        }
        svg += "<text x=\"\(Int(width - 250))\" y=\"20\" fill=\"#3182bd\">training loss (smoothed)</text>"
        svg += "<text x=\"\(Int(width - 250))\" y=\"36\" fill=\"#e6550d\">validation loss</text></svg>"
        return svg
    }

    static func escape(_ text: String) -> String {
        text.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
            .replacingOccurrences(of: ">", with: "&gt;")
    }
}
