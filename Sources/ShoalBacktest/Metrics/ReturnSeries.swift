import Foundation

/// A series of periodic simple returns read from a CSV file `date,return` (a header line, then
/// one period a line).
public struct ReturnSeries: Sendable, Equatable {
    public var dates: [String]
    public var returns: [Double]

    public init(dates: [String], returns: [Double]) {
        self.dates = dates
        self.returns = returns
    }

    /// - Throws: `MetricsError` naming the file and line of a missing file, a line without two
    ///   fields, a return that is not a number, or a date seen twice.
    public init(csv path: String) throws {
        guard let data = FileManager.default.contents(atPath: path) else { throw MetricsError("cannot read \(path)") }
        let lines = String(decoding: data, as: UTF8.self).split(whereSeparator: \.isNewline)
        guard let header = lines.first else { throw MetricsError("\(path) is empty") }
        let names = header.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces).lowercased() }
        guard names.count == 2, names[1] == "return" else {
            throw MetricsError("\(path): the header must be `date,return`, not `\(header.prefix(80))`")
        }
        var (dates, returns) = ([String](), [Double]())
        var seen = Set<String>()
        for (index, line) in lines.enumerated().dropFirst() where !line.trimmingCharacters(in: .whitespaces).isEmpty {
            let fields = line.split(separator: ",", omittingEmptySubsequences: false).map {
                $0.trimmingCharacters(in: .whitespaces)
            }
            guard fields.count == 2 else { throw MetricsError("\(path) line \(index + 1): expected `date,return`") }
            guard let value = Double(fields[1]), value.isFinite else {
                throw MetricsError("\(path) line \(index + 1): '\(fields[1].prefix(40))' is not a return")
            }
            guard seen.insert(fields[0]).inserted else {
                throw MetricsError("\(path) line \(index + 1): date \(fields[0]) again")
            }
            dates.append(fields[0])
            returns.append(value)
        }
        self.init(dates: dates, returns: returns)
    }

    /// This series' returns beside `benchmark`'s, date for date.
    /// - Throws: `MetricsError` when their dates differ.
    public func aligned(with benchmark: ReturnSeries) throws -> [Double] {
        guard benchmark.dates == dates else {
            let first = zip(dates, benchmark.dates).first { $0 != $1 }
            throw MetricsError(
                "the benchmark's dates are not the returns' (\(benchmark.dates.count) and \(dates.count) periods"
                    + (first.map { "; first difference: \($0.0) and \($0.1)" } ?? "") + ")")
        }
        return benchmark.returns
    }
}
