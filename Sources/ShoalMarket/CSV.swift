import Foundation

/// Reading and writing OHLCV bars as CSV.
///
/// Columns are found by their header, case-insensitively: a time column (`date`, `datetime`,
/// `time`, `timestamp`, `open_time`), `open`, `high`, `low`, `close`, `volume` (`adj close` and
/// other columns are ignored). Times are ISO dates (`2024-01-31`, `2024-01-31 15:30:00`,
/// `2024-01-31T15:30:00.250Z`, with an optional `±HH:MM` offset) or epoch numbers: 13 digits
/// are milliseconds, 10 seconds. Times without an offset are read in `timeZone`.
public enum CSVBars {
    /// Loads bars from a file.
    /// - Throws: `MarketDataError` naming the file, line and column of the first bad row.
    public static func load(
        path: String, symbol: String? = nil, exchange: String = "", assetClass: AssetClass = .stock, timeZone: TimeZone = .gmt
    ) throws -> MarketData {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw MarketDataError("cannot read \(path)")
        }
        let name = symbol ?? ((path as NSString).lastPathComponent as NSString).deletingPathExtension
        return try parse(data, source: path, symbol: name, exchange: exchange, assetClass: assetClass, timeZone: timeZone)
    }

    /// Parses CSV bytes (`source` names them in errors). Rows are read in place, byte by byte:
    /// no string is made for a data line (a million rows take about a second, not a quarter
    /// of a minute).
    public static func parse(
        _ data: Data, source: String, symbol: String, exchange: String = "", assetClass: AssetClass = .stock,
        timeZone: TimeZone = .gmt
    ) throws -> MarketData {
        var result = MarketData(symbol: symbol, exchange: exchange, assetClass: assetClass)
        try data.withUnsafeBytes { (raw: UnsafeRawBufferPointer) in
            let bytes = raw.bindMemory(to: UInt8.self)
            var lineNumber = 0
            var columns: (time: Int, open: Int, high: Int, low: Int, close: Int, volume: Int)?
            var names: [String] = []
            var start = 0
            // Strip a UTF-8 byte order mark.
            if bytes.count >= 3 && bytes[0] == 0xEF && bytes[1] == 0xBB && bytes[2] == 0xBF { start = 3 }
            // Each field's byte range on the current line, trimmed of spaces and quotes.
            var fields: [Range<Int>] = []
            var scratch = [CChar](repeating: 0, count: 64)
            while start < bytes.count {
                var end = start
                while end < bytes.count && bytes[end] != 10 { end += 1 }
                lineNumber += 1
                var lineEnd = end
                if lineEnd > start && bytes[lineEnd - 1] == 13 { lineEnd -= 1 }
                defer { start = end + 1 }
                guard lineEnd > start else { continue }
                fields.removeAll(keepingCapacity: true)
                var fieldStart = start
                for position in start...lineEnd where position == lineEnd || bytes[position] == 44 {
                    var (low, high) = (fieldStart, position)
                    while low < high && (bytes[low] == 32 || bytes[low] == 34) { low += 1 }
                    while high > low && (bytes[high - 1] == 32 || bytes[high - 1] == 34) { high -= 1 }
                    fields.append(low..<high)
                    fieldStart = position + 1
                }
                func text(_ range: Range<Int>) -> String {
                    String(decoding: UnsafeBufferPointer(rebasing: bytes[range]), as: UTF8.self)
                }
                guard let found = columns else {
                    names = fields.map { text($0).lowercased() }
                    func index(_ candidates: [String], _ what: String) throws -> Int {
                        guard let position = names.firstIndex(where: candidates.contains) else {
                            throw MarketDataError(
                                "\(source) line \(lineNumber): no \(what) column in the header (\(names.joined(separator: ", ")))"
                            )
                        }
                        return position
                    }
                    columns = (
                        try index(["date", "datetime", "time", "timestamp", "open_time", "open time", "date_time"], "time"),
                        try index(["open"], "open"), try index(["high"], "high"), try index(["low"], "low"),
                        try index(["close"], "close"),
                        try index(["volume", "vol"], "volume")
                    )
                    continue
                }
                func field(_ position: Int) throws -> Range<Int> {
                    guard position < fields.count else {
                        throw MarketDataError(
                            "\(source) line \(lineNumber): \(fields.count) fields, expected at least \(position + 1)")
                    }
                    return fields[position]
                }
                func number(_ position: Int) throws -> Double {
                    let range = try field(position)
                    var value = Double.nan
                    if !range.isEmpty && range.count < scratch.count {
                        scratch.withUnsafeMutableBufferPointer { buffer in
                            guard let base = buffer.baseAddress else { return }
                            for offset in 0..<range.count { buffer[offset] = CChar(bitPattern: bytes[range.lowerBound + offset]) }
                            buffer[range.count] = 0
                            var stop: UnsafeMutablePointer<CChar>?
                            let parsed = strtod(base, &stop)
                            if stop == base + range.count { value = parsed }
                        }
                    }
                    guard value.isFinite else {
                        throw MarketDataError(
                            "\(source) line \(lineNumber): '\(text(range).prefix(40))' in column \(names[position]) is not a number"
                        )
                    }
                    return value
                }
                let timeRange = try field(found.time)
                guard let timestamp = parseTime(UnsafeBufferPointer(rebasing: bytes[timeRange]), timeZone: timeZone) else {
                    throw MarketDataError(
                        "\(source) line \(lineNumber): '\(text(timeRange).prefix(40))' in column \(names[found.time]) is not a date or epoch time"
                    )
                }
                result.append(
                    Bar(
                        timestamp: timestamp, open: try number(found.open), high: try number(found.high),
                        low: try number(found.low),
                        close: try number(found.close), volume: try number(found.volume)))
            }
            if columns == nil { throw MarketDataError("\(source) is empty: no header line") }
        }
        return result
    }

    /// Milliseconds since 1970 for an epoch number or an ISO date-time; nil when it is neither.
    public static func parseTime(_ text: Substring, timeZone: TimeZone = .gmt) -> Int64? {
        let utf8 = Array(text.utf8)
        return utf8.withUnsafeBufferPointer { parseTime($0, timeZone: timeZone) }
    }

    /// `parseTime` on bytes.
    static func parseTime(_ utf8: UnsafeBufferPointer<UInt8>, timeZone: TimeZone) -> Int64? {
        guard !utf8.isEmpty else { return nil }
        if utf8.allSatisfy({ (48...57).contains($0) }) {
            guard utf8.count <= 18 else { return nil }
            let value = utf8.reduce(Int64(0)) { $0 * 10 + Int64($1 - 48) }
            return utf8.count >= 12 ? value : value * 1000
        }
        // YYYY-MM-DD[( |T)HH:MM[:SS[.fff]]][Z|±HH[:]MM]
        func digits(_ from: Int, _ count: Int) -> Int? {
            guard from + count <= utf8.count else { return nil }
            var value = 0
            for index in from..<from + count {
                let byte = utf8[index]
                guard (48...57).contains(byte) else { return nil }
                value = value * 10 + Int(byte - 48)
            }
            return value
        }
        guard utf8.count >= 10, let year = digits(0, 4), utf8[4] == 45, let month = digits(5, 2), utf8[7] == 45,
            let day = digits(8, 2),
            (1...12).contains(month), (1...31).contains(day)
        else { return nil }
        var hour = 0
        var minute = 0
        var second = 0
        var millisecond = 0
        var position = 10
        if position < utf8.count && (utf8[position] == 32 || utf8[position] == 84) {
            guard let h = digits(position + 1, 2), utf8.count > position + 3, utf8[position + 3] == 58,
                let m = digits(position + 4, 2)
            else {
                return nil
            }
            hour = h
            minute = m
            position += 6
            if position < utf8.count && utf8[position] == 58 {
                guard let s = digits(position + 1, 2) else { return nil }
                second = s
                position += 3
                if position < utf8.count && utf8[position] == 46 {
                    position += 1
                    var scale = 100
                    while position < utf8.count, (48...57).contains(utf8[position]) {
                        millisecond += Int(utf8[position] - 48) * scale
                        scale /= 10
                        position += 1
                    }
                }
            }
        }
        guard hour < 24, minute < 60, second < 61 else { return nil }
        var offsetSeconds: Int?
        if position < utf8.count {
            if utf8[position] == 90 && position + 1 == utf8.count {
                offsetSeconds = 0
            } else if utf8[position] == 43 || utf8[position] == 45 {
                let sign = utf8[position] == 45 ? -1 : 1
                guard let h = digits(position + 1, 2) else { return nil }
                let minutesAt = utf8.count > position + 3 && utf8[position + 3] == 58 ? position + 4 : position + 3
                let m = digits(minutesAt, 2) ?? 0
                offsetSeconds = sign * (h * 3600 + m * 60)
            } else {
                return nil
            }
        }
        let days = daysFromCivil(year: year, month: month, day: day)
        let local = Int64(days) * 86_400 + Int64(hour * 3600 + minute * 60 + second)
        let offset: Int
        if let offsetSeconds {
            offset = offsetSeconds
        } else if timeZone == .gmt {
            offset = 0
        } else {
            // The zone's offset at that wall-clock time (checked again after the shift, for DST edges).
            let guess = timeZone.secondsFromGMT(for: Date(timeIntervalSince1970: Double(local)))
            offset = timeZone.secondsFromGMT(for: Date(timeIntervalSince1970: Double(local - Int64(guess))))
        }
        return (local - Int64(offset)) * 1000 + Int64(millisecond)
    }

    /// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
    static func daysFromCivil(year: Int, month: Int, day: Int) -> Int {
        let y = month <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yearOfEra = y - era * 400
        let dayOfYear = (153 * (month + (month > 2 ? -3 : 9)) + 2) / 5 + day - 1
        let dayOfEra = yearOfEra * 365 + yearOfEra / 4 - yearOfEra / 100 + dayOfYear
        return era * 146_097 + dayOfEra - 719_468
    }

    /// The proleptic Gregorian date of a day since 1970-01-01 (Howard Hinnant's civil_from_days).
    public static func civilDate(days: Int) -> (year: Int, month: Int, day: Int) {
        let z = days + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let dayOfEra = z - era * 146_097
        let yearOfEra = (dayOfEra - dayOfEra / 1460 + dayOfEra / 36_524 - dayOfEra / 146_096) / 365
        let dayOfYear = dayOfEra - (365 * yearOfEra + yearOfEra / 4 - yearOfEra / 100)
        let mp = (5 * dayOfYear + 2) / 153
        let day = dayOfYear - (153 * mp + 2) / 5 + 1
        let month = mp < 10 ? mp + 3 : mp - 9
        return (yearOfEra + era * 400 + (month <= 2 ? 1 : 0), month, day)
    }

    /// `2024-01-31T15:30:00.250Z` for a time in milliseconds.
    public static func isoTime(_ milliseconds: Int64) -> String {
        let seconds = Int64((Double(milliseconds) / 1000).rounded(.down))
        let millis = Int(milliseconds - seconds * 1000)
        var days = Int(seconds / 86_400)
        var rest = Int(seconds - Int64(days) * 86_400)
        if rest < 0 {
            rest += 86_400
            days -= 1
        }
        let (year, month, day) = civilDate(days: days)
        return String(
            format: "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", year, month, day, rest / 3600, rest % 3600 / 60, rest % 60, millis)
    }

    /// Writes bars as `timestamp,datetime,open,high,low,close,volume` (epoch milliseconds and
    /// the ISO time), which `load` reads back exactly.
    public static func write(_ data: MarketData, to path: String) throws {
        var text = "timestamp,datetime,open,high,low,close,volume\n"
        text.reserveCapacity(data.count * 96)
        for index in 0..<data.count {
            text += "\(data.timestamps[index]),\(isoTime(data.timestamps[index])),\(data.open[index]),\(data.high[index]),"
            text += "\(data.low[index]),\(data.close[index]),\(data.volume[index])\n"
        }
        do {
            try text.write(toFile: path, atomically: true, encoding: .utf8)
        } catch {
            throw MarketDataError("cannot write \(path): \(error.localizedDescription)")
        }
    }
}
