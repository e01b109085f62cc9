import Foundation

/// A line plot of one or more series, with axes, grid, tick labels, a legend and optional
/// horizontal reference lines, rendered to PNG.
public struct LinePlot: Sendable {
    public struct Series: Sendable {
        public var name: String
        public var points: [(x: Double, y: Double)]

        public init(name: String, points: [(x: Double, y: Double)]) {
            self.name = name
            self.points = points
        }
    }

    public var title: String
    public var xLabel: String
    public var yLabel: String
    public var series: [Series] = []
    /// Horizontal lines (a threshold to reach, say), with their labels.
    public var references: [(y: Double, label: String)] = []
    public var width = 960
    public var height = 600

    public init(title: String, xLabel: String, yLabel: String) {
        self.title = title
        self.xLabel = xLabel
        self.yLabel = yLabel
    }

    /// Draws the plot.
    public func render() -> Canvas {
        var canvas = Canvas(width: width, height: height)
        let (left, right, top, bottom) = (100, width - 30, 50, height - 70)
        let points = series.flatMap(\.points).filter { $0.x.isFinite && $0.y.isFinite }
        var (xLow, xHigh) = (points.map(\.x).min() ?? 0, points.map(\.x).max() ?? 1)
        let ys = points.map(\.y) + references.map(\.y)
        var (yLow, yHigh) = (ys.min() ?? 0, ys.max() ?? 1)
        if xHigh <= xLow { (xLow, xHigh) = (xLow - 1, xHigh + 1) }
        if yHigh <= yLow { (yLow, yHigh) = (yLow - 1, yHigh + 1) }
        let xTicks = Self.ticks(from: xLow, to: xHigh)
        let yTicks = Self.ticks(from: yLow, to: yHigh)
        (xLow, xHigh) = (min(xLow, xTicks.first ?? xLow), max(xHigh, xTicks.last ?? xHigh))
        (yLow, yHigh) = (min(yLow, yTicks.first ?? yLow), max(yHigh, yTicks.last ?? yHigh))
        func px(_ x: Double) -> Int { left + Int((x - xLow) / (xHigh - xLow) * Double(right - left)) }
        func py(_ y: Double) -> Int { bottom - Int((y - yLow) / (yHigh - yLow) * Double(bottom - top)) }

        for tick in xTicks {
            canvas.line(from: (px(tick), top), to: (px(tick), bottom), color: .grid)
            let label = Self.format(tick)
            canvas.text(label, x: px(tick) - Canvas.textWidth(label) / 2, y: bottom + 10, color: .axis)
        }
        for tick in yTicks {
            canvas.line(from: (left, py(tick)), to: (right, py(tick)), color: .grid)
            let label = Self.format(tick)
            canvas.text(label, x: left - 10 - Canvas.textWidth(label), y: py(tick) - 7, color: .axis)
        }
        canvas.line(from: (left, bottom), to: (right, bottom), color: .axis, thickness: 2)
        canvas.line(from: (left, top), to: (left, bottom), color: .axis, thickness: 2)
        canvas.text(title, x: (width - Canvas.textWidth(title, scale: 3)) / 2, y: 12, scale: 3)
        canvas.text(xLabel, x: (left + right - Canvas.textWidth(xLabel)) / 2, y: height - 30, color: .axis)
        canvas.verticalText(yLabel, x: 14, y: (top + bottom - Canvas.textWidth(yLabel)) / 2, color: .axis)

        for reference in references {
            var x = left
            while x < right {
                canvas.line(from: (x, py(reference.y)), to: (min(x + 8, right), py(reference.y)), color: .axis)
                x += 16
            }
            canvas.text(reference.label, x: right - Canvas.textWidth(reference.label) - 4, y: py(reference.y) - 18, color: .axis)
        }
        for (index, line) in series.enumerated() {
            let color = Canvas.Color.palette[index % Canvas.Color.palette.count]
            let drawn = line.points.filter { $0.x.isFinite && $0.y.isFinite }
            for (a, b) in zip(drawn, drawn.dropFirst()) {
                canvas.line(from: (px(a.x), py(a.y)), to: (px(b.x), py(b.y)), color: color, thickness: 2)
            }
            if drawn.count == 1, let only = drawn.first {
                canvas.fill(x: px(only.x) - 2, y: py(only.y) - 2, width: 5, height: 5, color: color)
            }
            // Legend, top left inside the axes.
            let y = top + 10 + index * 22
            canvas.fill(x: left + 12, y: y + 5, width: 24, height: 4, color: color)
            canvas.text(line.name, x: left + 44, y: y, color: .black)
        }
        return canvas
    }

    /// The plot as PNG bytes.
    public func pngData() throws -> Data { Data(try render().png()) }

    /// Writes the plot as a PNG file.
    public func write(to path: String) throws {
        let bytes = try render().png()
        guard FileManager.default.createFile(atPath: path, contents: Data(bytes)) else {
            throw PlotError("cannot write the plot to \(path)")
        }
    }

    /// About six round tick values covering `low...high`.
    static func ticks(from low: Double, to high: Double) -> [Double] {
        let span = high - low
        let raw = span / 6
        let magnitude = pow(10, floor(log10(raw)))
        let step = [1.0, 2, 2.5, 5, 10].map { $0 * magnitude }.first { $0 >= raw } ?? raw
        let first = floor(low / step) * step
        return stride(from: first, through: ceil(high / step) * step + step / 2, by: step).map { $0 }
    }

    /// A tick label: 12, 2.5, 150K, 1.2M.
    public static func format(_ value: Double) -> String {
        let magnitude = abs(value)
        if magnitude >= 1_000_000 { return trimmed(value / 1_000_000) + "M" }
        if magnitude >= 10_000 { return trimmed(value / 1000) + "K" }
        return trimmed(value)
    }

    private static func trimmed(_ value: Double) -> String {
        // Huge values (a metric gone wild) would overflow Int: written in exponent form.
        guard abs(value) < 1e15 else { return String(format: "%.3g", value) }
        if value == value.rounded() { return String(Int(value)) }
        var text = String(format: "%.2f", value)
        while text.hasSuffix("0") { text.removeLast() }
        return text
    }
}
