import ArgumentParser
import Foundation
import ShoalBacktest

/// `trading portfolio`: portfolio construction.
struct PortfolioCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "portfolio", abstract: "Portfolio construction with PyPortfolioOpt's methods and conventions.",
        subcommands: [Optimize.self])

    struct Optimize: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Weights from a price history: the efficient frontier, HRP, risk parity or Black-Litterman.",
            discussion: """
                --prices is a wide CSV `date,SYM1,SYM2,…` of closes. Expected returns are the compounded mean historical \\
                returns and risk the annualised sample covariance (252 periods a year), or its Ledoit-Wolf shrinkage. \\
                Black-Litterman takes --market-caps (`symbol,market_cap`), --views (`symbol,view`, absolute annual \\
                returns) and --risk-aversion, then maximises the Sharpe ratio on the posterior.
                """)

        enum Method: String, ExpressibleByArgument, CaseIterable {
            case maxSharpe = "max-sharpe", minVolatility = "min-volatility", efficientReturn = "efficient-return"
            case efficientRisk = "efficient-risk", hrp, riskParity = "risk-parity", blackLitterman = "black-litterman"
        }

        @Option(help: "A wide CSV of closes: date, then one column an asset.") var prices: String
        @Option(help: "max-sharpe, min-volatility, efficient-return, efficient-risk, hrp, risk-parity or black-litterman.")
        var method: Method
        @Option(help: "The annual risk-free rate.") var riskFree = 0.0
        @Option(help: "Weight bounds LO,HI (long only 0,1 by default).") var bounds = "0,1"
        @Option(help: "The target return (efficient-return) or volatility (efficient-risk), annual.") var target: Double?
        @Option(help: "sample or ledoit-wolf.") var covariance = "sample"
        @Option(help: "Black-Litterman: a CSV `symbol,market_cap`.") var marketCaps: String?
        @Option(help: "Black-Litterman: a CSV `symbol,view` of absolute annual returns.") var views: String?
        @Option(help: "Black-Litterman: the market's risk aversion δ.") var riskAversion = 2.5
        @Option(help: "Write the weights and figures as JSON to this file.") var json: String?

        func run() throws {
            do {
                let (symbols, rows) = try Self.readPrices(prices)
                guard let estimator = RiskModel.Estimator(rawValue: covariance) else {
                    throw ValidationError("--covariance is sample or ledoit-wolf, not \(covariance)")
                }
                let parts = bounds.split(separator: ",").compactMap { Double($0.trimmingCharacters(in: .whitespaces)) }
                guard parts.count == 2 else { throw ValidationError("--bounds is LO,HI, not \(bounds)") }
                var model = try RiskModel(symbols: symbols, prices: rows, estimator: estimator)
                var object: [String: Any] = [:]
                if method == .blackLitterman {
                    guard let marketCaps, let views else {
                        throw ValidationError("black-litterman needs --market-caps and --views")
                    }
                    let caps = try Self.readPairs(marketCaps, header: "market_cap", symbols: symbols)
                    guard caps.count == symbols.count else {
                        throw ValidationError(
                            "\(marketCaps) must give a market cap for each of \(symbols.joined(separator: ", "))")
                    }
                    let viewed = try Self.readPairs(views, header: "view", symbols: symbols)
                    model = try PortfolioOptimizer.blackLitterman(
                        model, marketCaps: symbols.indices.map { caps[$0] ?? 0 }, views: viewed, riskAversion: riskAversion,
                        riskFree: riskFree)
                    object["posterior_returns"] = Dictionary(uniqueKeysWithValues: zip(symbols, model.expectedReturns))
                }
                let optimizer = try PortfolioOptimizer(model: model, lower: parts[0], upper: parts[1])
                let weights: [Double]
                switch method {
                case .maxSharpe, .blackLitterman: weights = try optimizer.maxSharpe(riskFree: riskFree)
                case .minVolatility: weights = optimizer.minVolatility()
                case .efficientReturn:
                    guard let target else { throw ValidationError("efficient-return needs --target") }
                    weights = try optimizer.efficientReturn(target)
                case .efficientRisk:
                    guard let target else { throw ValidationError("efficient-risk needs --target") }
                    weights = try optimizer.efficientRisk(target)
                case .hrp: weights = optimizer.hierarchicalRiskParity()
                case .riskParity:
                    weights = optimizer.riskParity()
                    object["risk_contributions"] = Dictionary(
                        uniqueKeysWithValues: zip(symbols, optimizer.riskContributions(weights)))
                }
                let (expected, volatility, sharpe) = optimizer.performance(weights, riskFree: riskFree)
                object["weights"] = Dictionary(uniqueKeysWithValues: zip(symbols, weights))
                object["expected_return"] = expected
                object["volatility"] = volatility
                object["sharpe"] = sharpe
                for (symbol, weight) in zip(symbols, weights) {
                    print(symbol.padding(toLength: 10, withPad: " ", startingAt: 0) + String(format: "%8.4f", weight))
                }
                print(String(format: "expected return %.4f  volatility %.4f  Sharpe %.3f", expected, volatility, sharpe))
                if let json {
                    try JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys])
                        .write(to: URL(fileURLWithPath: json))
                    print("Wrote \(json).")
                }
            } catch let error as PortfolioError {
                throw ValidationError(error.message)
            }
        }

        /// A wide CSV of closes: its symbols and rows.
        static func readPrices(_ path: String) throws -> ([String], [[Double]]) {
            guard let data = FileManager.default.contents(atPath: path) else { throw ValidationError("cannot read \(path)") }
            let lines = String(decoding: data, as: UTF8.self).split(whereSeparator: \.isNewline)
            guard let header = lines.first else { throw ValidationError("\(path) is empty") }
            let symbols = header.split(separator: ",").dropFirst().map { $0.trimmingCharacters(in: .whitespaces) }
            var rows: [[Double]] = []
            for (index, line) in lines.enumerated().dropFirst() where !line.isEmpty {
                let fields = line.split(separator: ",", omittingEmptySubsequences: false).dropFirst()
                let values = fields.compactMap { Double($0.trimmingCharacters(in: .whitespaces)) }
                guard values.count == symbols.count, fields.count == symbols.count else {
                    throw ValidationError("\(path) line \(index + 1): expected \(symbols.count) prices")
                }
                rows.append(values)
            }
            return (symbols, rows)
        }

        /// A CSV `symbol,value` as values by the symbols' positions.
        static func readPairs(_ path: String, header: String, symbols: [String]) throws -> [Int: Double] {
            guard let data = FileManager.default.contents(atPath: path) else { throw ValidationError("cannot read \(path)") }
            var pairs: [Int: Double] = [:]
            for (index, line) in String(decoding: data, as: UTF8.self).split(whereSeparator: \.isNewline).enumerated().dropFirst()
            {
                let fields = line.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
                guard fields.count == 2, let value = Double(fields[1]) else {
                    throw ValidationError("\(path) line \(index + 1): expected `symbol,\(header)`")
                }
                guard let asset = symbols.firstIndex(of: fields[0]) else {
                    throw ValidationError("\(path) line \(index + 1): \(fields[0]) is not among the prices' symbols")
                }
                pairs[asset] = value
            }
            return pairs
        }
    }
}
