// RunReport: report.html of a run, readable offline (no scripts, no external files) — the loss curves
// (training and validation, against steps), the learning rate and the gradient norm as inline SVG, the
// final numbers, the model and training settings as tables, the data manifest's summary, and the samples at
// each evaluation. The loss axis spans what the run spent its time at, not the first steps' high loss.

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
        let rates = metrics.filter { $0.kind == "train" }.compactMap { r in
            r.learningRate.map { (Double(r.step), Double($0)) }
        }
        let norms = metrics.filter { $0.kind == "train" }.compactMap { r in
            r.gradientNorm.map { (Double(r.step), Double($0)) }
        }
        html += "<h2>Learning rate and gradient norm</h2>"
        html += lineChart([(rates, "#31a354", "learning rate")], height: 200, format: "%.1e", fitFrom: 0)
        html += lineChart([(norms, "#756bb1", "gradient norm (before clipping)")], height: 200, format: "%.2f")
        html += "<h2>Model</h2><table>"
        html += row("parameters", "\(parameters)")
        if let data = try? ModelCheckpoint.configJSON(model) {
            for (key, value) in flatten(data) { html += row(key, value) }
        }
        html += "</table><h2>Training</h2><table>"
        let encoder = JSONEncoder()
        encoder.keyEncodingStrategy = .convertToSnakeCase
        if let data = try? encoder.encode(training) {
            for (key, value) in flatten(data) { html += row(key, value) }
        }
        html += "</table>"
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

    /// The rows of a JSON object as (dotted key, value), sorted; booleans as yes/no, lists joined.
    public static func flatten(_ data: Data) -> [(String, String)] {
        guard let object = try? JSONSerialization.jsonObject(with: data) else { return [] }
        var rows: [(String, String)] = []
        func visit(_ value: Any, _ key: String) {
            if let dictionary = value as? [String: Any] {
                for name in dictionary.keys.sorted() { visit(dictionary[name]!, key.isEmpty ? name : "\(key).\(name)") }
            } else if let list = value as? [Any] {
                rows.append((key, list.map { text($0) }.joined(separator: ", ")))
            } else {
                rows.append((key, text(value)))
            }
        }
        func text(_ value: Any) -> String {
            if JSONNumber.isBoolean(value) { return (value as! NSNumber).boolValue ? "yes" : "no" }
            if value is NSNull { return "—" }
            if let string = value as? String {
                let plain = !string.isEmpty && string.unicodeScalars.allSatisfy { $0.value >= 0x20 }
                return plain ? string : string.debugDescription
            }
            if let number = value as? NSNumber, number.doubleValue.rounded() != number.doubleValue {
                return String(format: "%g", number.doubleValue)  // 0.9, not 0.89999997615814209
            }
            return "\(value)"
        }
        visit(object, "")
        return rows
    }

    /// Training loss (thin, and smoothed) and validation loss (points and line) against steps.
    static func chart(train: [(Double, Double)], validation: [(Double, Double)]) -> String {
        // Smooth the training loss (exponential moving average) so the trend is visible.
        var smoothed: [(Double, Double)] = []
        var average: Double?
        for (step, loss) in train where loss.isFinite {
            average = average.map { 0.9 * $0 + 0.1 * loss } ?? loss
            smoothed.append((step, average!))
        }
        // The axis spans the losses after the first tenth of training (and every validation loss after step 0):
        // the first steps' high loss, drawn clipped at the top, no longer flattens the rest.
        let maxStep = (train + validation).map(\.0).max() ?? 0
        let settled = smoothed.filter { $0.0 >= maxStep / 10 } + validation.filter { $0.0 > 0 }
        return lineChart(
            [
                (train, "#9ecae1", ""), (smoothed, "#3182bd", "training loss (smoothed)"),
                (validation, "#e6550d", "validation loss"),
            ],
            height: 360, format: "%.2f", fitTo: settled.isEmpty ? nil : settled, points: 2)
    }

    /// An SVG chart of series against steps. The y range fits `fitTo` (default: every point), from `fitFrom`
    /// when given; points outside are drawn at the edge. Series `points` also gets a dot at each point.
    public static func lineChart(
        _ series: [(points: [(Double, Double)], color: String, label: String)], height: Double, format: String,
        fitTo: [(Double, Double)]? = nil, fitFrom: Double? = nil, points: Int? = nil
    ) -> String {
        let all = series.flatMap(\.points).filter { $0.1.isFinite }
        guard let maxStep = all.map(\.0).max(), maxStep > 0 else { return "<p>No steps yet.</p>" }
        let fit = (fitTo ?? all).map(\.1).filter(\.isFinite)
        var low = fitFrom ?? (fit.min() ?? 0)
        var high = fit.max() ?? 1
        let pad = max((high - low) * 0.08, abs(high) * 1e-3, 1e-12)
        if fitFrom == nil { low -= pad }
        high += pad
        if fitFrom == nil, low < 0, (fit.min() ?? 0) >= 0 { low = 0 }
        let (width, margin) = (900.0, 60.0)
        func x(_ step: Double) -> Double { margin + (width - 2 * margin) * step / maxStep }
        func y(_ value: Double) -> Double {
            let clamped = min(max(value, low), high)
            return height - margin + 20 - (height - 2 * margin + 20) * (clamped - low) / (high - low)
        }
        func path(_ points: [(Double, Double)]) -> String {
            points.filter { $0.1.isFinite }.enumerated().map { i, p in
                String(format: "%@%.1f,%.1f", i == 0 ? "M" : "L", x(p.0), y(p.1))
            }.joined(separator: " ")
        }
        var svg =
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(Int(width))\" height=\"\(Int(height))\" font-size=\"12\">"
        for k in 0...4 {
            let value = low + (high - low) * Double(k) / 4
            svg += String(
                format: "<line x1=\"%.0f\" x2=\"%.0f\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"#eee\"/>", margin,
                width - margin, y(value), y(value))
            svg += "<text x=\"2\" y=\"\(String(format: "%.1f", y(value) + 4))\">\(String(format: format, value))</text>"
        }
        for k in 0...4 {
            let step = maxStep * Double(k) / 4
            svg += String(
                format: "<text x=\"%.1f\" y=\"%.0f\" text-anchor=\"middle\">%.0f</text>", x(step), height - 20, step)
        }
        svg += "<text x=\"\(Int(width / 2))\" y=\"\(Int(height - 4))\" text-anchor=\"middle\">step</text>"
        var legend = 20
        for (index, s) in series.enumerated() {
            let thick = s.label.isEmpty ? 1 : 2
            svg += "<path d=\"\(path(s.points))\" fill=\"none\" stroke=\"\(s.color)\" stroke-width=\"\(thick)\"/>"
            if index == points {
                for (step, value) in s.points where value.isFinite {
                    svg += String(format: "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3\" ", x(step), y(value))
                    svg += "fill=\"\(s.color)\"/>"
                }
            }
            if !s.label.isEmpty {
                svg += "<text x=\"\(Int(width - 260))\" y=\"\(legend)\" fill=\"\(s.color)\">\(escape(s.label))</text>"
                legend += 16
            }
        }
        return svg + "</svg>"
    }

    public static func escape(_ text: String) -> String {
        text.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
            .replacingOccurrences(of: ">", with: "&gt;")
    }
}
