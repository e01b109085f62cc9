import Foundation
import ShoalMarket
import ShoalPlot

/// One self-contained HTML page for a backtest: its metrics, equity beside a benchmark,
/// drawdown, rolling Sharpe ratio, a monthly-returns heat map, the weights over time and the
/// risk manager's interventions. Plots are PNGs embedded as data URIs; nothing is fetched.
public struct BacktestReport {
    public var title: String
    public var symbols: [String]
    /// Milliseconds since 1970, one a bar.
    public var timestamps: [Int64]
    public var initialCash: Double
    public var equity: [Double]
    /// A benchmark's equity on the same bars (buy-and-hold, say), and its name.
    public var benchmark: (name: String, equity: [Double])?
    /// Each bar's weights, asset by asset (a bar's positions' worth ÷ its equity).
    public var weights: [[Double]] = []
    /// Rows of the metrics table, in order.
    public var metrics: [(name: String, value: String)] = []
    public var periodsPerYear = 252.0
    /// Bars in the rolling Sharpe ratio's window.
    public var rollingWindow = 63
    public var interventions: [RiskIntervention] = []

    public init(title: String, symbols: [String], timestamps: [Int64], initialCash: Double, equity: [Double]) {
        self.title = title
        self.symbols = symbols
        self.timestamps = timestamps
        self.initialCash = initialCash
        self.equity = equity
    }

    /// Each bar's weights from a backtest's fills (positions replayed bar by bar) and closes.
    public static func weights(of result: BacktestResult, on bars: MarketBars) -> [[Double]] {
        var positions = [Double](repeating: 0, count: bars.assets)
        var next = 0
        let fills = result.fills.sorted { $0.bar < $1.bar }
        return result.equity.indices.map { bar in
            while next < fills.count && fills[next].bar <= bar {
                positions[fills[next].asset] += fills[next].quantity
                next += 1
            }
            let value = result.equity[bar]
            return (0..<bars.assets).map { value > 0 ? positions[$0] * bars.close[$0][bar] / value : 0 }
        }
    }

    /// The fall from the running peak at each bar (0 or negative), as empyrical's drawdown.
    public static func drawdown(_ equity: [Double], initial: Double) -> [Double] {
        var peak = initial
        return equity.map { value in
            peak = Swift.max(peak, value)
            return peak > 0 ? value / peak - 1 : 0
        }
    }

    /// The annualised Sharpe ratio of each window of `window` returns ending at a bar (nil
    /// before the first full window, or where the returns do not vary).
    public static func rollingSharpe(_ returns: [Double], window: Int, periodsPerYear: Double) -> [Double?] {
        guard window >= 2 else { return returns.map { _ in nil } }
        var (sum, squares) = (0.0, 0.0)
        return returns.indices.map { index in
            sum += returns[index]
            squares += returns[index] * returns[index]
            if index >= window {
                sum -= returns[index - window]
                squares -= returns[index - window] * returns[index - window]
            }
            guard index + 1 >= window else { return nil }
            let n = Double(window)
            let variance = (squares - sum * sum / n) / (n - 1)
            guard variance > 1e-24 else { return nil }
            return sum / n / variance.squareRoot() * periodsPerYear.squareRoot()
        }
    }

    /// Compounded returns by calendar month (UTC): each month's last equity over the previous
    /// month's last (the initial cash before the first), as year → 12 slots (nil: no bars).
    public static func monthlyReturns(equity: [Double], timestamps: [Int64], initial: Double) -> [(year: Int, months: [Double?])]
    {
        var table: [Int: [Double?]] = [:]
        var previous = initial
        var index = 0
        while index < equity.count {
            let days = Int((Double(timestamps[index]) / 86_400_000).rounded(.down))
            let (year, month) = CalendarPeriod.civil(days: days)
            var last = index
            while last + 1 < equity.count {
                let next = Int((Double(timestamps[last + 1]) / 86_400_000).rounded(.down))
                let (nextYear, nextMonth) = CalendarPeriod.civil(days: next)
                guard nextYear == year && nextMonth == month else { break }
                last += 1
            }
            table[year, default: Array(repeating: nil, count: 12)][month - 1] = previous > 0 ? equity[last] / previous - 1 : nil
            previous = equity[last]
            index = last + 1
        }
        return table.keys.sorted().map { ($0, table[$0] ?? []) }
    }

    /// The page.
    /// - Throws: `PlotError` when a plot cannot be drawn.
    public func html() throws -> String {
        let count = equity.count
        let step = Swift.max(1, count / 2000)
        let sampled = Array(stride(from: 0, to: count, by: step))
        func plot(_ title: String, _ yLabel: String, _ series: [(String, [Double?])]) throws -> String {
            var chart = LinePlot(title: title, xLabel: "bar", yLabel: yLabel)
            chart.width = 900
            chart.height = 340
            for (name, values) in series {
                chart.series.append(
                    .init(name: name, points: sampled.compactMap { index in values[index].map { (Double(index), $0) } }))
            }
            return
                "<img alt=\"\(Self.escape(title))\" src=\"data:image/png;base64,\(try chart.pngData().base64EncodedString())\">"
        }

        var page = """
            <!DOCTYPE html>
            <html lang="en"><head><meta charset="utf-8"><title>\(Self.escape(title))</title>
            <style>
            body { font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 960px; color: #222; }
            h1 { font-size: 1.5rem; } h2 { font-size: 1.15rem; margin-top: 2rem; }
            table { border-collapse: collapse; font-size: 0.85rem; }
            td, th { padding: 0.2rem 0.5rem; border: 1px solid #ddd; text-align: right; }
            th { background: #f4f4f4; } td.name { text-align: left; }
            img { max-width: 100%; display: block; margin: 0.5rem 0; }
            </style></head><body>
            <h1>\(Self.escape(title))</h1>
            <p>\(count) bars of \(Self.escape(symbols.joined(separator: ", "))), \
            \(CSVBars.isoTime(timestamps.first ?? 0).prefix(10)) to \(CSVBars.isoTime(timestamps.last ?? 0).prefix(10)).</p>
            <h2>Metrics</h2>
            <table>
            """
        for (name, value) in metrics {
            page += "<tr><td class=\"name\">\(Self.escape(name))</td><td>\(Self.escape(value))</td></tr>\n"
        }
        page += "</table>\n<h2>Equity</h2>\n"
        var equitySeries: [(String, [Double?])] = [("strategy", equity.map { $0 })]
        if let benchmark { equitySeries.append((benchmark.name, benchmark.equity.map { $0 })) }
        page += try plot("Equity", "equity", equitySeries) + "\n"
        page += "<h2>Drawdown</h2>\n"
        var drawdowns: [(String, [Double?])] = [("strategy", Self.drawdown(equity, initial: initialCash).map { $0 * 100 })]
        if let benchmark {
            drawdowns.append((benchmark.name, Self.drawdown(benchmark.equity, initial: initialCash).map { $0 * 100 }))
        }
        page += try plot("Drawdown", "% below the peak", drawdowns) + "\n"
        let returns = BacktestResult.returns(of: equity, initial: initialCash)
        page += "<h2>Rolling Sharpe ratio (\(rollingWindow) bars, annualised)</h2>\n"
        page +=
            try plot(
                "Rolling Sharpe ratio", "Sharpe",
                [("strategy", Self.rollingSharpe(returns, window: rollingWindow, periodsPerYear: periodsPerYear))]) + "\n"
        page += "<h2>Monthly returns (%)</h2>\n" + monthlyTable() + "\n"
        if !weights.isEmpty {
            page += "<h2>Weights over time</h2>\n"
            page +=
                try plot(
                    "Weights", "share of equity",
                    symbols.indices.map { asset in (symbols[asset], weights.map { asset < $0.count ? $0[asset] : nil }) }) + "\n"
        }
        if !interventions.isEmpty {
            page +=
                "<h2>Risk manager</h2>\n<table><tr><th>Rule</th><th>Refused</th><th>Resized</th><th>Closed</th><th>Trimmed</th></tr>\n"
            for (rule, entries) in Dictionary(grouping: interventions, by: \.rule).sorted(by: {
                $0.key.rawValue < $1.key.rawValue
            }) {
                let counts = [RiskIntervention.Action.refused, .resized, .closed, .trimmed].map { action in
                    entries.filter { $0.action == action }.count
                }
                page += "<tr><td class=\"name\">\(rule.rawValue)</td>" + counts.map { "<td>\($0)</td>" }.joined() + "</tr>\n"
            }
            page +=
                "</table>\n<p>The first interventions:</p>\n<table><tr><th>Bar</th><th>Asset</th><th>Rule</th><th>Action</th><th>Detail</th></tr>\n"
            for entry in interventions.prefix(20) {
                let symbol = entry.asset < symbols.count ? symbols[entry.asset] : "\(entry.asset)"
                page +=
                    "<tr><td>\(entry.bar)</td><td>\(Self.escape(symbol))</td><td>\(entry.rule.rawValue)</td>"
                    + "<td>\(entry.action.rawValue)</td><td class=\"name\">\(Self.escape(entry.detail))</td></tr>\n"
            }
            page += "</table>\n"
        }
        page += "</body></html>\n"
        return page
    }

    /// The monthly returns as a table, each cell coloured by its sign and size.
    func monthlyTable() -> String {
        let rows = Self.monthlyReturns(equity: equity, timestamps: timestamps, initial: initialCash)
        let largest = rows.flatMap { $0.months.compactMap { $0.map(Swift.abs) } }.max() ?? 0
        let names = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
        var html = "<table class=\"heatmap\"><tr><th>Year</th>" + names.map { "<th>\($0)</th>" }.joined() + "</tr>\n"
        for row in rows {
            html += "<tr><th>\(row.year)</th>"
            for value in row.months {
                guard let value else {
                    html += "<td></td>"
                    continue
                }
                let strength = largest > 0 ? Swift.min(Swift.abs(value) / largest, 1) : 0
                let fade = Int(255 - 155 * strength)
                let color = value >= 0 ? "rgb(\(fade),255,\(fade))" : "rgb(255,\(fade),\(fade))"
                html += "<td style=\"background:\(color)\">\(String(format: "%.2f", value * 100))</td>"
            }
            html += "</tr>\n"
        }
        return html + "</table>"
    }

    static func escape(_ text: String) -> String {
        text.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
            .replacingOccurrences(of: ">", with: "&gt;").replacingOccurrences(of: "\"", with: "&quot;")
    }
}
