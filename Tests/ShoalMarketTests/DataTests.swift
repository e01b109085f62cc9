import Foundation
import Testing

@testable import ShoalMarket

struct DataTests {
    @Test func csvReadsYahooAndEpochLayoutsAndNamesABadLine() throws {
        let yahoo = """
            Date,Open,High,Low,Close,Adj Close,Volume
            2024-01-02,187.15,188.44,183.89,185.64,184.94,82488700
            2024-01-03,184.22,185.88,183.43,184.25,183.55,58414500
            """
        let apple = try CSVBars.parse(Data(yahoo.utf8), source: "AAPL.csv", symbol: "AAPL")
        #expect(apple.count == 2)
        #expect(apple.timestamps[0] == 1_704_153_600_000)
        #expect(apple.close == [185.64, 184.25])
        let newYork = try #require(TimeZone(identifier: "America/New_York"))
        let local = try CSVBars.parse(Data(yahoo.utf8), source: "AAPL.csv", symbol: "AAPL", timeZone: newYork)
        #expect(local.timestamps[0] == 1_704_153_600_000 + 5 * 3_600_000, "midnight in New York is 05:00 UTC in January")

        let binance = "open_time,open,high,low,close,volume\r\n1704067200000,42283.58,42554.57,42261.02,42475.23,1271.68\r\n"
        let btc = try CSVBars.parse(Data(binance.utf8), source: "BTC.csv", symbol: "BTCUSDT", assetClass: .crypto)
        #expect(btc.timestamps == [1_704_067_200_000] && btc.volume == [1271.68])
        #expect(CSVBars.parseTime("2024-01-31T15:30:00.250Z") == 1_706_715_000_250)
        #expect(CSVBars.parseTime("2024-01-31 15:30:00+01:00") == 1_706_711_400_000)
        #expect(CSVBars.parseTime("1704067200") == 1_704_067_200_000)
        #expect(CSVBars.parseTime("31/01/2024") == nil)

        let bad = "Date,Open,High,Low,Close,Volume\n2024-01-02,1,2,0.5,1.5,100\n2024-01-03,1,2,abc,1.5,100\n"
        #expect {
            try CSVBars.parse(Data(bad.utf8), source: "bad.csv", symbol: "X")
        } throws: { error in
            "\(error)" == "bad.csv line 3: 'abc' in column low is not a number"
        }
        #expect(throws: MarketDataError.self) { try CSVBars.parse(Data("a,b\n1,2\n".utf8), source: "x.csv", symbol: "X") }
        #expect(throws: MarketDataError.self) { try CSVBars.load(path: "/no/such/file.csv") }
    }

    @Test func csvRoundTripsExactly() throws {
        let data = try SyntheticMarket().generate(bars: 50).series[1]
        let path = NSTemporaryDirectory() + "shoal-bars-\(getpid()).csv"
        defer { try? FileManager.default.removeItem(atPath: path) }
        try CSVBars.write(data, to: path)
        let loaded = try CSVBars.load(path: path, symbol: data.symbol, exchange: "SYNTH")
        #expect(loaded == data)
    }

    @Test func theSyntheticMarketIsReproducibleCorrelatedAndConsistent() throws {
        var config = SyntheticMarket.Config()
        config.seed = 7
        let first = try SyntheticMarket(config: config).generate(bars: 3000)
        let second = try SyntheticMarket(config: config).generate(bars: 3000)
        #expect(first.series == second.series)
        config.seed = 8
        #expect(try SyntheticMarket(config: config).generate(bars: 3000).series != first.series)
        #expect(Set(first.regimes).count > 1, "regimes switch")
        for series in first.series {
            #expect(DataValidator().validate(series).issues.isEmpty, "\(DataValidator().validate(series).rendered)")
        }
        let a = Indicators.logReturns(first.series[0].close).dropFirst()
        let b = Indicators.logReturns(first.series[1].close).dropFirst()
        let meanA = a.reduce(0, +) / Double(a.count)
        let meanB = b.reduce(0, +) / Double(b.count)
        let covariance = zip(a, b).reduce(0) { $0 + ($1.0 - meanA) * ($1.1 - meanB) }
        let correlation =
            covariance
            / (a.reduce(0) { $0 + ($1 - meanA) * ($1 - meanA) } * b.reduce(0) { $0 + ($1 - meanB) * ($1 - meanB) }).squareRoot()
        #expect(correlation > 0.3 && correlation < 0.7, "returns correlate about as configured (0.5): \(correlation)")
        config.correlation = 1.5
        #expect(throws: MarketDataError.self) { try SyntheticMarket(config: config) }
    }

    @Test func theValidatorFindsEveryPlantedDefectAndNoneInACleanSeries() throws {
        let clean = try SyntheticMarket().generate(bars: 500).series[0]
        #expect(DataValidator().validate(clean).issues.isEmpty)
        #expect(DataValidator().validate(clean).confidence == 1)

        var bad = clean
        bad.timestamps[100] = bad.timestamps[99]  // duplicate
        bad.timestamps.swapAt(200, 201)  // out of order (and a spacing oddity after)
        for index in 300..<bad.count { bad.timestamps[index] += 10 * 60_000 }  // a gap before bar 300
        bad.close[50] = -1  // non-positive
        bad.high[60] = bad.low[60] * 0.9  // high below low
        for index in 400..<415 { bad.close[index] = bad.close[399] }  // stale run
        bad.close[450] = bad.close[449] * 1.5  // outlier
        bad.high[450] = bad.close[450]
        let report = DataValidator().validate(bad)
        func found(_ kind: QualityReport.Kind, at index: Int) -> Bool {
            report.issues.contains { $0.kind == kind && $0.index == index }
        }
        #expect(found(.duplicate, at: 100), "\(report.rendered)")
        #expect(found(.outOfOrder, at: 201), "\(report.rendered)")
        #expect(found(.gap, at: 300), "\(report.rendered)")
        #expect(found(.nonPositivePrice, at: 50), "\(report.rendered)")
        #expect(found(.ohlcInconsistent, at: 60), "\(report.rendered)")
        #expect(found(.stale, at: 399), "\(report.rendered)")
        #expect(found(.outlier, at: 450), "\(report.rendered)")
        #expect(report.confidence < 1)

        let repaired = DataValidator().repair(bad, .forwardFill)
        let after = DataValidator().validate(repaired)
        #expect(after.count(.duplicate) == 0 && after.count(.outOfOrder) == 0 && after.count(.gap) == 0)
        #expect(after.count(.nonPositivePrice) == 0 && after.count(.ohlcInconsistent) == 0)
        // 3 bars dropped; filled: the 10 of the gap and the 3 holes the dropped bars left.
        #expect(repaired.count == bad.count - 3 + 13)
    }

    @Test func seriesFromTwoExchangesAlignOnOneClock() throws {
        var a = MarketData(symbol: "A")
        var b = MarketData(symbol: "B")
        for minute in 0..<10 {
            a.append(Bar(timestamp: Int64(minute) * 60_000, open: 1, high: 1, low: 1, close: Double(minute), volume: 1))
            if minute != 4 {  // B misses minute 4 and runs 2 s late
                b.append(
                    Bar(timestamp: Int64(minute) * 60_000 + 2_000, open: 2, high: 2, low: 2, close: Double(minute) * 2, volume: 1)
                )
            }
        }
        let aligned = try DataValidator.align([a, b], interval: 60_000, tolerance: 5_000)
        #expect(aligned[0].timestamps == aligned[1].timestamps)
        #expect(aligned[0].count == 9, "the tick B lacks is dropped")
        #expect(aligned[1].close == [0, 2, 4, 6, 10, 12, 14, 16, 18])
        #expect(aligned[0].close == [0, 1, 2, 3, 5, 6, 7, 8, 9])
        #expect(
            try DataValidator.align([a, b], interval: 60_000, tolerance: 1_000)[0].count == 0,
            "2 s late is outside a 1 s tolerance")
    }

    @Test func windowsAndNormalisation() throws {
        let data = try SyntheticMarket().generate(bars: 300).series[0]
        let table = FeaturePipeline.standard.transform(data)
        let normalizer = ZScoreNormalizer.fit(table, rows: table.firstCompleteRow..<200)
        let normalized = normalizer.apply(table)
        let rsi = try #require(normalized.column("rsi_14"))
        let trainRows = rsi[table.firstCompleteRow..<200]
        #expect(abs(trainRows.reduce(0, +) / Double(trainRows.count)) < 1e-9, "zero mean on the training span")
        // Fitting must not see past the training span: changing later rows leaves it alone.
        var shifted = table
        for index in shifted.columns.indices { for row in 200..<shifted.timestamps.count { shifted.columns[index][row] += 1000 } }
        #expect(ZScoreNormalizer.fit(shifted, rows: table.firstCompleteRow..<200) == normalizer)

        let windows = try Windows.make(normalized, close: data.close, steps: 16, horizon: 1, threshold: 0.0005)
        #expect(windows.features == table.names.count && windows.steps == 16)
        #expect(windows.inputs.count == windows.count * windows.features * windows.steps)
        #expect(windows.endRows.first == table.firstCompleteRow + 15)
        #expect(windows.endRows.last == data.count - 2)
        #expect(!windows.inputs.contains { $0.isNaN })
        let end = try #require(windows.endRows.first)
        let forward = data.close[end + 1] / data.close[end] - 1
        #expect(windows.forwardReturns[0] == Float(forward))
        #expect(windows.labels[0] == (forward > 0.0005 ? 2 : forward < -0.0005 ? 0 : 1))
        #expect(Set(windows.labels).isSubset(of: [0, 1, 2]))
    }
}
