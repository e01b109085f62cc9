import Foundation
import ShoalPlot

/// The learning curve of a run: per-epoch metrics as CSV and as plots.
public enum LearningCurveReport {
    public static let csvHeader =
        "epoch,step,train_loss,val_loss,val_accuracy,val_macro_f1,val_mse,val_ic,learning_rate,seconds,samples_per_second,complete"

    /// The history as CSV, one row per epoch.
    public static func csv(_ history: [EpochRecord]) -> String {
        var text = csvHeader + "\n"
        for record in history {
            let v = record.validation
            text += "\(record.epoch),\(record.step),\(record.trainLoss),\(v.loss),\(v.accuracy),\(v.macroF1),\(v.mse),"
            text += "\(v.informationCoefficient),\(record.learningRate),\(record.seconds),\(record.samplesPerSecond),"
            text += "\(record.complete)\n"
        }
        return text
    }

    /// Training and validation loss against epochs.
    public static func lossPlot(_ history: [EpochRecord]) -> LinePlot {
        var plot = LinePlot(title: "Hybrid model: loss by epoch", xLabel: "epoch", yLabel: "loss")
        plot.series.append(.init(name: "training", points: history.map { (Double($0.epoch), $0.trainLoss) }))
        plot.series.append(.init(name: "validation", points: history.map { (Double($0.epoch), $0.validation.loss) }))
        return plot
    }

    /// Validation accuracy, macro-F1 and information coefficient against epochs.
    public static func metricsPlot(_ history: [EpochRecord]) -> LinePlot {
        var plot = LinePlot(title: "Hybrid model: validation metrics by epoch", xLabel: "epoch", yLabel: "value")
        plot.series.append(.init(name: "accuracy", points: history.map { (Double($0.epoch), $0.validation.accuracy) }))
        plot.series.append(.init(name: "macro-F1", points: history.map { (Double($0.epoch), $0.validation.macroF1) }))
        plot.series.append(
            .init(name: "IC", points: history.map { (Double($0.epoch), $0.validation.informationCoefficient) }))
        return plot
    }

    /// Writes `metrics.csv`, `learning-curve.png` and `validation-metrics.png` into `folder`.
    /// - Throws: `TrainingError` when a file cannot be written.
    public static func write(_ history: [EpochRecord], to folder: String) throws {
        do {
            try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
            try Data(csv(history).utf8).write(to: URL(fileURLWithPath: "\(folder)/metrics.csv"), options: .atomic)
            try lossPlot(history).write(to: "\(folder)/learning-curve.png")
            try metricsPlot(history).write(to: "\(folder)/validation-metrics.png")
        } catch {
            throw TrainingError("cannot write the learning curve into \(folder): \(error)")
        }
    }
}
