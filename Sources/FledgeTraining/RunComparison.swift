// RunComparison: `fledge report RUN...` — several runs on one page, the guide's "change one thing, compare"
// loop: every run's validation loss (and smoothed training loss) against steps on one chart, a table of the
// settings that differ between them (model and training, flattened), and each run's final numbers.

import FledgeFiles
import FledgeModel
import Foundation

public enum RunComparison {
    static let colors = ["#3182bd", "#e6550d", "#31a354", "#756bb1", "#636363", "#de2d26", "#17becf", "#bcbd22"]

    /// Writes the comparison of the runs in `runs` to `url` (atomically).
    public static func write(runs: [URL], to url: URL) throws {
        guard !runs.isEmpty else {
            throw TrainingError("name at least one run to report on", hint: "e.g. runs/a runs/b.")
        }
        var series: [(points: [(Double, Double)], color: String, label: String)] = []
        var settings: [[String: String]] = []
        var finals: [(name: String, loss: Float?, bitsPerByte: Float?, step: Int)] = []
        let names = runs.map { $0.standardizedFileURL.lastPathComponent }
        for (index, run) in runs.enumerated() {
            let metricsURL = run.appendingPathComponent("metrics.jsonl")
            guard UserFile.kind(metricsURL.path) == .file else {
                throw TrainingError(
                    "\(run.path) is not a training run (it has no metrics.jsonl)", hint: "name folders given to --run.")
            }
            let metrics = try MetricsLog.read(metricsURL)
            let color = colors[index % colors.count]
            let evals = metrics.filter { $0.kind == "eval" }
            series.append(
                (evals.compactMap { r in r.validationLoss.map { (Double(r.step), Double($0)) } }, color, names[index]))
            var rows: [String: String] = [:]
            let checkpoint = try RunCheckpoint.folder(run.path, prefer: [.latest, .final, .best])
            for file in ["config.json", "training.json"] {
                if let data = FileManager.default.contents(atPath: checkpoint.appendingPathComponent(file).path) {
                    for (key, value) in RunReport.flatten(data) { rows[key] = value }
                }
            }
            settings.append(rows)
            let last = evals.last
            finals.append((names[index], last?.validationLoss, last?.bitsPerByte, last?.step ?? 0))
        }
        let keys = Set(settings.flatMap(\.keys)).sorted()
        let differing = keys.filter { key in Set(settings.map { $0[key] ?? "—" }).count > 1 }
        var html = """
            <!doctype html><html><head><meta charset="utf-8"><title>Fledge runs compared</title>
            <style>body{font-family:system-ui,sans-serif;max-width:960px;margin:2em auto;color:#222}
            table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:2px 8px;text-align:left}</style>
            </head><body><h1>\(runs.count) runs compared</h1><h2>Validation loss</h2>
            """
        let settled = series.flatMap { $0.points.filter { $0.0 > 0 } }
        html += RunReport.lineChart(series, height: 380, format: "%.2f", fitTo: settled.isEmpty ? nil : settled)
        html +=
            "<h2>Final numbers</h2><table><tr><th>run</th><th>step</th><th>validation loss</th><th>bits/byte</th></tr>"
        for final in finals {
            html += "<tr><td>\(RunReport.escape(final.name))</td><td>\(final.step)</td>"
            html += "<td>\(final.loss.map { String(format: "%.4f", $0) } ?? "—")</td>"
            html += "<td>\(final.bitsPerByte.map { String(format: "%.4f", $0) } ?? "—")</td></tr>"
        }
        html += "</table><h2>Settings that differ</h2>"
        if differing.isEmpty {
            html += "<p>None: the runs share every model and training setting.</p>"
        } else {
            html += "<table><tr><th>setting</th>" + names.map { "<th>\(RunReport.escape($0))</th>" }.joined() + "</tr>"
            for key in differing {
                html += "<tr><th>\(RunReport.escape(key))</th>"
                html += settings.map { "<td>\(RunReport.escape($0[key] ?? "—"))</td>" }.joined() + "</tr>"
            }
            html += "</table>"
        }
        html += "</body></html>\n"
        try AtomicFile.write(Data(html.utf8), to: url)
    }
}
