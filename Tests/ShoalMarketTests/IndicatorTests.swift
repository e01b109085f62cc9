import Foundation
import Testing

@testable import ShoalMarket

/// Equal within `tolerance`, NaN equal to NaN.
func close(_ actual: [Double], _ expected: [Double], tolerance: Double = 1e-6, _ what: String = "") {
    #expect(actual.count == expected.count, "\(what): \(actual.count) values, expected \(expected.count)")
    for (index, (a, e)) in zip(actual, expected).enumerated() {
        if e.isNaN {
            #expect(a.isNaN, "\(what)[\(index)] = \(a), expected NaN (warm-up)")
        } else {
            #expect(abs(a - e) <= tolerance * max(1, abs(e)), "\(what)[\(index)] = \(a), expected \(e)")
        }
    }
}

let nan = Double.nan

struct IndicatorTests {
    @Test func movingAverages() {
        close(Indicators.sma([1, 2, 3, 4, 5], period: 3), [nan, nan, 2, 3, 4], "sma")
        close(Indicators.sma([1, 2], period: 3), [nan, nan], "sma too short")
        close(Indicators.ema([1, 2, 3, 4, 5, 6], period: 3), [nan, nan, 2, 3, 4, 5], "ema linear")
        close(Indicators.ema([10, 11, 9, 12, 14], period: 2), [nan, 10.5, 9.5, 11.166666667, 13.055555556], "ema")
        close(Indicators.wilder([2, 4, 6, 8], period: 2), [nan, 3, 4.5, 6.25], "wilder")
    }

    @Test func bollingerUsesThePopulationDeviation() {
        let bands = Indicators.bollinger([1, 2, 3, 3], period: 3, deviations: 2)
        let first = (2.0 / 3).squareRoot()
        let second = ((1.0 / 9 + 1.0 / 9 + 4.0 / 9) / 3).squareRoot()
        close(bands.middle, [nan, nan, 2, 8.0 / 3], "middle")
        close(bands.upper, [nan, nan, 2 + 2 * first, 8.0 / 3 + 2 * second], "upper")
        close(bands.lower, [nan, nan, 2 - 2 * first, 8.0 / 3 - 2 * second], "lower")
    }

    @Test func rsiIsWildersAndZeroWithoutMovement() {
        close(Indicators.rsi([1, 2, 3, 2, 4], period: 2), [nan, nan, 100, 50, 250.0 / 3], "rsi")
        close(Indicators.rsi([5, 5, 5, 5], period: 2), [nan, nan, 0, 0], "rsi flat (TA-Lib gives 0)")
        close(Indicators.rsi([5, 4, 3, 2], period: 2), [nan, nan, 0, 0], "rsi falling")
    }

    @Test func macdStartsBothAveragesTogether() {
        let macd = Indicators.macd([1, 2, 4, 7, 11, 16], fast: 2, slow: 3, signal: 2)
        close(macd.line, [nan, nan, nan, 1.0, 1.388888889, 1.824074074], "macd")
        close(macd.signal, [nan, nan, nan, 0.833333333, 1.203703704, 1.617283951], "signal")
        close(macd.histogram, [nan, nan, nan, 0.166666667, 0.185185185, 0.206790123], "histogram")
    }

    @Test func trueRangeAndATR() {
        let high: [Double] = [10, 11, 12, 11]
        let low: [Double] = [8, 9, 10, 7]
        let closes: [Double] = [9, 10, 11, 8]
        close(Indicators.trueRange(high: high, low: low, close: closes), [2, 2, 2, 4], "true range")
        close(Indicators.atr(high: high, low: low, close: closes, period: 2), [nan, nan, 2, 3], "atr")
    }

    @Test func volumeIndicators() {
        close(Indicators.obv(close: [1, 2, 2, 1], volume: [10, 20, 30, 40]), [10, 30, 30, -10], "obv")
        close(
            Indicators.obv(close: [1, 2, 2, 1], volume: [10, 20, .nan, 40]), [10, 30, 30, -10],
            "obv: a flat bar adds nothing, even with a missing volume")
        let prices: [Double] = [1, 2, 3, 4]
        close(
            Indicators.vwap(high: prices, low: prices, close: prices, volume: [1, 1, 2, 0], period: 2), [nan, 1.5, 8.0 / 3, 3],
            "vwap")
        close(
            Indicators.vwap(high: prices, low: prices, close: prices, volume: [0, 0, 0, 0], period: 2), [nan, nan, nan, nan],
            "vwap no volume")
        close(Indicators.rateOfChange([10, 0, 5], period: 1), [nan, -100, nan], "roc (zero base is NaN, not 0)")
    }

    @Test func volatilityIndicators() {
        let gk = Indicators.garmanKlass(open: [1, 1], high: [2, 2], low: [1, 1], close: [1, 2], period: 1)
        let k = 2 * log(2.0) - 1
        close(
            gk, [(0.5 * log(2.0) * log(2.0)).squareRoot(), (0.5 * log(2.0) * log(2.0) - k * log(2.0) * log(2.0)).squareRoot()],
            "gk")
        close(Indicators.logReturns([1, exp(1), exp(1)]), [nan, 1, 0], "log returns")
        close(Indicators.rollingStandardDeviation([1, 2, 3, 4], period: 3), [nan, nan, 1, 1], "sample std")
        let flat = Indicators.volatilityRatio([Double](repeating: 5, count: 60), short: 2, long: 3)
        #expect(flat.allSatisfy { $0.isNaN }, "constant prices have no volatility to compare: NaN, not 0")
    }

    @Test func vectorisedLogReturnsMatchLibmAndRefuseBadPrices() {
        // 8-wide blocks and a tail; zero, negative, NaN, infinite and subnormal prices in some.
        var prices = (0..<37).map { 100 * exp(0.01 * sin(Double($0))) }
        prices[9] = 0
        prices[17] = -3
        prices[20] = .nan
        prices[26] = .infinity
        prices[30] = 1e-310
        let returns = Indicators.logReturns(prices)
        #expect(returns.count == prices.count && returns[0].isNaN)
        for index in 1..<prices.count {
            let (now, before) = (prices[index], prices[index - 1])
            let expected = now > 0 && before > 0 ? log(now / before) : Double.nan
            if expected.isNaN {
                #expect(returns[index].isNaN, "return \(index) of \(now) over \(before)")
            } else {
                #expect(
                    returns[index] == expected || abs(returns[index] - expected) <= 4 * Double.ulpOfOne * max(1, abs(expected)),
                    "return \(index): \(returns[index]) vs \(expected)")
            }
        }
    }

    @Test func noFeatureLooksAhead() throws {
        let market = try SyntheticMarket()
        let data = market.generate(bars: 400).series[0]
        let pipeline = FeaturePipeline.standard
        let before = pipeline.transform(data)
        // Change everything after bar 250 and recompute: bars up to 250 must not move.
        var future = data
        for index in 251..<future.count {
            future.close[index] *= 1.5
            future.high[index] *= 1.6
            future.low[index] *= 1.4
            future.open[index] *= 1.45
            future.volume[index] *= 3
        }
        let after = pipeline.transform(future)
        for (name, (a, b)) in zip(before.names, zip(before.columns, after.columns)) {
            for row in 0...250 {
                #expect(
                    a[row] == b[row] || (a[row].isNaN && b[row].isNaN), "\(name) at bar \(row) changed when only later bars did")
            }
        }
        #expect(before.firstCompleteRow == 50, "the longest warm-up is the volatility ratio's 50 returns")
    }
}
