import Foundation
import ShoalPlot

extension TuneResult {
    /// The `--json` document: `{"best": {"trial_id", "config", "value"}, "trials": [{"trial_id",
    /// "config", "value", "state", "steps"}, …]}`.
    public func json() throws -> Data {
        struct Best: Encodable {
            let trial_id: Int
            let config: TrialConfig
            let value: Double?
        }
        struct Trial: Encodable {
            let trial_id: Int
            let config: TrialConfig
            let value: Double?
            let state: TrialState
            let steps: Int
            let error: String?
        }
        struct Document: Encodable {
            let best: Best?
            let trials: [Trial]
        }
        let document = Document(
            best: best.map { Best(trial_id: $0.trial, config: $0.config, value: $0.value) },
            trials: trials.map {
                Trial(trial_id: $0.trial, config: $0.config, value: $0.value, state: $0.state, steps: $0.steps, error: $0.error)
            })
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        return try encoder.encode(document)
    }

    /// One row per trial: id, state, value, steps, failures, exploits, seconds, then the
    /// parameters, then the error.
    public func csv() -> String {
        let names = Set(trials.flatMap(\.config.values.keys)).sorted()
        func field(_ text: String) -> String {
            text.contains(",") || text.contains("\"") || text.contains("\n")
                ? "\"" + text.replacingOccurrences(of: "\"", with: "\"\"") + "\"" : text
        }
        var lines = [
            (["trial_id", "state", "value", "steps", "failures", "exploits", "seconds"] + names + ["error"]).joined(
                separator: ",")
        ]
        for trial in trials {
            let fixed = [
                "\(trial.trial)", trial.state.rawValue, trial.value.map { "\($0)" } ?? "", "\(trial.steps)", "\(trial.failures)",
                "\(trial.exploits)", String(format: "%.3f", trial.seconds),
            ]
            let parameters = names.map { trial.config[$0].map { field($0.description) } ?? "" }
            lines.append((fixed + parameters + [field(trial.error ?? "")]).joined(separator: ","))
        }
        return lines.joined(separator: "\n") + "\n"
    }

    /// Writes `results.csv`, `values.png` (each trial's last value) and `curves.png` (the
    /// metric step by step for the best five trials) into `folder`.
    /// - Returns: the files' paths.
    @discardableResult
    public func write(to folder: String, metric: String, mode: TuneOptions.Mode) throws -> [String] {
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        let csvPath = folder + "/results.csv"
        try Data(csv().utf8).write(to: URL(fileURLWithPath: csvPath))
        var values = LinePlot(title: "\(metric) by trial", xLabel: "trial", yLabel: metric)
        for state in [TrialState.terminated, .pruned] {
            let points = trials.filter { $0.state == state }.compactMap { trial in trial.value.map { (Double(trial.trial), $0) } }
            if !points.isEmpty { values.series.append(.init(name: state.rawValue.lowercased(), points: points)) }
        }
        let valuesPath = folder + "/values.png"
        try values.write(to: valuesPath)
        var curves = LinePlot(title: "\(metric), the best trials", xLabel: "report", yLabel: metric)
        let ranked = trials.filter { $0.value != nil }.sorted {
            mode == .min ? $0.value! < $1.value! : $0.value! > $1.value!
        }
        for trial in ranked.prefix(5) {
            curves.series.append(
                .init(name: "trial \(trial.trial)", points: trial.curve.enumerated().map { (Double($0.offset + 1), $0.element) }))
        }
        let curvesPath = folder + "/curves.png"
        try curves.write(to: curvesPath)
        return [csvPath, valuesPath, curvesPath]
    }
}
