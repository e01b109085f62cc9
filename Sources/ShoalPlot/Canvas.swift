/// An RGB raster to draw plots on: lines, rectangles and text in a small bitmap font.
public struct Canvas: Sendable {
    public struct Color: Sendable, Equatable {
        public var red: UInt8
        public var green: UInt8
        public var blue: UInt8

        public init(_ red: UInt8, _ green: UInt8, _ blue: UInt8) {
            self.red = red
            self.green = green
            self.blue = blue
        }

        public static let white = Color(255, 255, 255)
        public static let black = Color(0, 0, 0)
        public static let grid = Color(225, 225, 225)
        public static let axis = Color(90, 90, 90)
        /// Distinct colours for series, in order.
        public static let palette = [
            Color(31, 119, 180), Color(214, 39, 40), Color(44, 160, 44), Color(255, 127, 14), Color(148, 103, 189),
            Color(140, 86, 75), Color(227, 119, 194), Color(127, 127, 127),
        ]
    }

    public let width: Int
    public let height: Int
    public private(set) var pixels: [UInt8]

    public init(width: Int, height: Int, background: Color = .white) {
        precondition(width > 0 && height > 0, "a canvas needs a size")
        self.width = width
        self.height = height
        pixels = [UInt8](repeating: 0, count: width * height * 3)
        fill(x: 0, y: 0, width: width, height: height, color: background)
    }

    public mutating func set(_ x: Int, _ y: Int, _ color: Color) {
        guard x >= 0, y >= 0, x < width, y < height else { return }
        let index = (y * width + x) * 3
        pixels[index] = color.red
        pixels[index + 1] = color.green
        pixels[index + 2] = color.blue
    }

    public mutating func fill(x: Int, y: Int, width: Int, height: Int, color: Color) {
        for row in max(0, y)..<min(self.height, y + height) {
            for column in max(0, x)..<min(self.width, x + width) { set(column, row, color) }
        }
    }

    /// A straight line `thickness` pixels wide (Bresenham's algorithm).
    public mutating func line(from start: (Int, Int), to end: (Int, Int), color: Color, thickness: Int = 1) {
        var (x, y) = start
        let (dx, dy) = (abs(end.0 - x), -abs(end.1 - y))
        let (sx, sy) = (x < end.0 ? 1 : -1, y < end.1 ? 1 : -1)
        var error = dx + dy
        let half = thickness / 2
        while true {
            fill(x: x - half, y: y - half, width: thickness, height: thickness, color: color)
            if x == end.0 && y == end.1 { break }
            let doubled = 2 * error
            if doubled >= dy {
                error += dy
                x += sx
            }
            if doubled <= dx {
                error += dx
                y += sy
            }
        }
    }

    /// `text` with its top-left corner at (x, y), each font pixel `scale` pixels square.
    public mutating func text(_ text: String, x: Int, y: Int, color: Color = .black, scale: Int = 2) {
        var left = x
        for character in text.uppercased() {
            let rows = BitmapFont.glyph(character)
            for (row, bits) in rows.enumerated() {
                for column in 0..<BitmapFont.width where bits & (1 << (BitmapFont.width - 1 - column)) != 0 {
                    fill(x: left + column * scale, y: y + row * scale, width: scale, height: scale, color: color)
                }
            }
            left += (BitmapFont.width + 1) * scale
        }
    }

    /// Text drawn bottom to top (a y-axis label), its top-left corner at (x, y).
    public mutating func verticalText(_ text: String, x: Int, y: Int, color: Color = .black, scale: Int = 2) {
        var top = y + Self.textWidth(text, scale: scale)
        for character in text.uppercased() {
            let rows = BitmapFont.glyph(character)
            top -= (BitmapFont.width + 1) * scale
            for (row, bits) in rows.enumerated() {
                for column in 0..<BitmapFont.width where bits & (1 << (BitmapFont.width - 1 - column)) != 0 {
                    fill(
                        x: x + row * scale, y: top + (BitmapFont.width - 1 - column) * scale, width: scale, height: scale,
                        color: color)
                }
            }
        }
    }

    public static func textWidth(_ text: String, scale: Int = 2) -> Int { text.count * (BitmapFont.width + 1) * scale }

    /// The image as a PNG file.
    public func png() throws -> [UInt8] { try PNG.encode(rgb: pixels, width: width, height: height) }
}
