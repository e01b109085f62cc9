import Foundation

/// What a data-quality check found in one series.
public struct QualityReport: Sendable, Equatable, Codable {
    public enum Kind: String, Sendable, Codable, CaseIterable {
        case gap, duplicate, outOfOrder, nonPositivePrice, ohlcInconsistent, stale, outlier, negativeVolume
    }

    public struct Issue: Sendable, Equatable, Codable {
        public var kind: Kind
        /// The bar it concerns (for a gap, the bar after it; for a stale run, its first bar).
        public var index: Int
        public var detail: String
    }

    public var symbol: String
    public var bars: Int
    /// The bar spacing the checks expected, in milliseconds.
    public var interval: Int64
    public var issues: [Issue]
    /// 1 for a clean series, falling with the share of bars with problems (0 at one per bar).
    public var confidence: Double

    public func count(_ kind: Kind) -> Int { issues.filter { $0.kind == kind }.count }

    /// A human-readable summary: counts per kind, confidence, and the first few issues.
    public var rendered: String {
        var lines = ["\(symbol): \(bars) bars, interval \(interval) ms, confidence \(String(format: "%.3f", confidence))"]
        for kind in Kind.allCases where count(kind) > 0 { lines.append("  \(kind.rawValue): \(count(kind))") }
        if issues.isEmpty { lines.append("  no problems found") }
        for issue in issues.prefix(20) { lines.append("  bar \(issue.index): \(issue.kind.rawValue) — \(issue.detail)") }
        if issues.count > 20 { lines.append("  … and \(issues.count - 20) more") }
        return lines.joined(separator: "\n")
    }
}

/// Finds gaps, duplicates, out-of-order bars, non-positive prices, OHLC inconsistencies, stale
/// stretches and statistical outliers, and repairs what can be repaired.
public struct DataValidator: Sendable {
    /// The expected bar spacing in ms; nil infers it as the median spacing.
    public var interval: Int64?
    /// A spacing above this many intervals is a gap.
    public var gapFactor: Double = 1.5
    /// Daily data: Saturday and Sunday are not gaps.
    public var skipWeekends = false
    /// This many equal closes in a row (with no volume change) make a stale stretch.
    public var staleRun = 10
    /// A log return whose robust z-score (median and MAD) passes this is an outlier.
    public var outlierThreshold = 10.0

    public init(interval: Int64? = nil, skipWeekends: Bool = false) {
        self.interval = interval
        self.skipWeekends = skipWeekends
    }

    public func validate(_ data: MarketData) -> QualityReport {
        var issues: [QualityReport.Issue] = []
        let count = data.count
        let spacing = interval ?? Self.medianSpacing(data.timestamps)
        var seen: [Int64: Int] = [:]
        for index in 0..<count {
            let t = data.timestamps[index]
            if let first = seen[t] {
                issues.append(.init(kind: .duplicate, index: index, detail: "same time as bar \(first) (\(CSVBars.isoTime(t)))"))
            } else {
                seen[t] = index
            }
            if index > 0 {
                let previous = data.timestamps[index - 1]
                if t < previous {
                    issues.append(
                        .init(
                            kind: .outOfOrder, index: index,
                            detail: "\(CSVBars.isoTime(t)) comes after \(CSVBars.isoTime(previous))"))
                } else if spacing > 0 && Double(t - previous) > gapFactor * Double(spacing)
                    && !weekendOnly(from: previous, to: t, spacing: spacing)
                {
                    let missing = (t - previous) / spacing - 1
                    issues.append(
                        .init(kind: .gap, index: index, detail: "about \(missing) bars missing before \(CSVBars.isoTime(t))"))
                }
            }
            let (o, h, l, c) = (data.open[index], data.high[index], data.low[index], data.close[index])
            if !(o > 0 && h > 0 && l > 0 && c > 0) {
                issues.append(.init(kind: .nonPositivePrice, index: index, detail: "open \(o) high \(h) low \(l) close \(c)"))
            } else if h < l || h < max(o, c) || l > min(o, c) {
                issues.append(.init(kind: .ohlcInconsistent, index: index, detail: "open \(o) high \(h) low \(l) close \(c)"))
            }
            if data.volume[index] < 0 || data.volume[index].isNaN {
                issues.append(.init(kind: .negativeVolume, index: index, detail: "volume \(data.volume[index])"))
            }
        }
        // Stale stretches: the same close, bar after bar.
        var runStart = 0
        for index in 1...max(1, count) {
            if index < count && data.close[index] == data.close[runStart] { continue }
            if index - runStart >= staleRun {
                issues.append(
                    .init(kind: .stale, index: runStart, detail: "close \(data.close[runStart]) for \(index - runStart) bars"))
            }
            runStart = index
        }
        // Outliers: log returns far from the median in units of the median absolute deviation,
        // both taken from the neighbouring stretch of bars (so calm and volatile periods are
        // each judged by their own scale).
        let returns = Indicators.logReturns(data.close)
        let block = 256
        var scales: [(median: Double, mad: Double)?] = []
        for blockStart in stride(from: 0, to: returns.count, by: block) {
            let finite = returns[blockStart..<min(returns.count, blockStart + block)].filter(\.isFinite).sorted()
            guard finite.count >= 20 else {
                scales.append(nil)
                continue
            }
            let median = finite[finite.count / 2]
            let deviations = finite.map { abs($0 - median) }.sorted()
            scales.append((median, deviations[deviations.count / 2] * 1.4826))
        }
        for (index, value) in returns.enumerated() where value.isFinite {
            // The larger of this stretch's scale and the one before it.
            let here = index / block
            let candidates = [scales[here], here > 0 ? scales[here - 1] : nil].compactMap { $0 }
            guard let scale = candidates.max(by: { $0.mad < $1.mad }), scale.mad > 0 else { continue }
            let z = abs(value - scale.median) / scale.mad
            if z > outlierThreshold {
                issues.append(
                    .init(kind: .outlier, index: index, detail: String(format: "log return %.5f, robust z %.1f", value, z)))
            }
        }
        issues.sort { ($0.index, $0.kind.rawValue) < ($1.index, $1.kind.rawValue) }
        let affected = Set(issues.map(\.index)).count
        let confidence = count == 0 ? 0 : max(0, 1 - Double(affected) / Double(count) * 10)
        return QualityReport(symbol: data.symbol, bars: count, interval: spacing, issues: issues, confidence: confidence)
    }

    private func weekendOnly(from: Int64, to: Int64, spacing: Int64) -> Bool {
        guard skipWeekends else { return false }
        var t = from + spacing
        while t < to {
            // 1970-01-01 was a Thursday: day 0 → weekday 4 (Monday = 1 … Sunday = 7).
            let day = Int(floor(Double(t) / 86_400_000))
            let weekday = ((day + 3) % 7 + 7) % 7 + 1
            if weekday < 6 { return false }
            t += spacing
        }
        return true
    }

    static func medianSpacing(_ timestamps: [Int64]) -> Int64 {
        guard timestamps.count > 1 else { return 0 }
        let spacings = zip(timestamps.dropFirst(), timestamps).map { $0 - $1 }.filter { $0 > 0 }.sorted()
        return spacings.isEmpty ? 0 : spacings[spacings.count / 2]
    }

    /// How to repair a series.
    public enum Repair: Sendable {
        /// Sort by time, drop duplicates and bars with impossible prices.
        case drop
        /// As `drop`, then fill gaps with bars that repeat the last close with zero volume.
        case forwardFill
    }

    /// A repaired copy: sorted, deduplicated (first kept), impossible bars dropped, and with
    /// `forwardFill` the gaps filled.
    public func repair(_ data: MarketData, _ repair: Repair) -> MarketData {
        let order = data.timestamps.indices.sorted { (data.timestamps[$0], $0) < (data.timestamps[$1], $1) }
        var kept: [Int] = []
        var last: Int64?
        for index in order {
            let (o, h, l, c) = (data.open[index], data.high[index], data.low[index], data.close[index])
            guard o > 0, h > 0, l > 0, c > 0, h >= l, h >= max(o, c), l <= min(o, c), data.volume[index] >= 0 else { continue }
            if data.timestamps[index] == last { continue }
            last = data.timestamps[index]
            kept.append(index)
        }
        var result = data.selecting(kept)
        guard case .forwardFill = repair, result.count > 1 else { return result }
        let spacing = interval ?? Self.medianSpacing(result.timestamps)
        guard spacing > 0 else { return result }
        var filled = MarketData(symbol: data.symbol, exchange: data.exchange, assetClass: data.assetClass)
        for index in 0..<result.count {
            if index > 0 {
                var t = result.timestamps[index - 1] + spacing
                let previous = result.close[index - 1]
                while t < result.timestamps[index] {
                    if !weekendOnly(from: t - spacing, to: t + spacing, spacing: spacing) {
                        filled.append(
                            Bar(timestamp: t, open: previous, high: previous, low: previous, close: previous, volume: 0))
                    }
                    t += spacing
                }
            }
            filled.append(result[index])
        }
        result = filled
        return result
    }

    /// Puts several series on one clock: ticks every `interval` ms over the span they all
    /// cover; each series contributes, at each tick, its bar within `tolerance` ms (the nearest);
    /// ticks where any series has none are dropped.
    public static func align(_ series: [MarketData], interval: Int64, tolerance: Int64) throws -> [MarketData] {
        guard interval > 0, tolerance >= 0 else { throw MarketDataError("alignment needs interval > 0 and tolerance >= 0") }
        guard let first = series.compactMap(\.timestamps.first).max(), let last = series.compactMap(\.timestamps.last).min(),
            series.allSatisfy({ $0.count > 0 }), first - tolerance <= last + tolerance
        else { return series.map { $0.selecting([]) } }
        // Ticks on the interval's grid (multiples of it since 1970) that every series may reach.
        func floorMultiple(_ value: Int64) -> Int64 { Int64((Double(value) / Double(interval)).rounded(.down)) * interval }
        let start = floorMultiple(first - tolerance + interval - 1)
        let end = floorMultiple(last + tolerance)
        var picks = [[Int]](repeating: [], count: series.count)
        var ticks: [Int64] = []
        var cursors = [Int](repeating: 0, count: series.count)
        var tick = start
        while tick <= end {
            var chosen: [Int] = []
            for (s, data) in series.enumerated() {
                var cursor = cursors[s]
                while cursor + 1 < data.count && data.timestamps[cursor + 1] <= tick { cursor += 1 }
                cursors[s] = cursor
                let nearest = [cursor, cursor + 1].filter { $0 < data.count }
                    .map { (index: $0, distance: abs(data.timestamps[$0] - tick)) }
                    .min { $0.distance < $1.distance }
                guard let nearest, nearest.distance <= tolerance else { break }
                chosen.append(nearest.index)
            }
            if chosen.count == series.count {
                ticks.append(tick)
                for s in series.indices { picks[s].append(chosen[s]) }
            }
            tick += interval
        }
        return series.enumerated().map { s, data in
            var aligned = data.selecting(picks[s])
            aligned.timestamps = ticks
            return aligned
        }
    }
}
