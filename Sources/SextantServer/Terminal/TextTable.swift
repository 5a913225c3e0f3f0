/// Rows as aligned columns for a terminal: text left, numbers right, a header, and ANSI colour
/// only when asked (a TTY without `NO_COLOR`).
package struct TextTable: Sendable {
    package enum Alignment: Sendable {
        case left, right
    }

    package enum Tone: Sendable {
        case plain, warning, failure

        var code: String {
            switch self {
            case .plain: ""
            case .warning: "\u{1B}[33m"
            case .failure: "\u{1B}[31m"
            }
        }
    }

    package struct Column: Sendable {
        package var title: String
        package var alignment: Alignment

        package init(_ title: String, _ alignment: Alignment = .left) {
            self.title = title
            self.alignment = alignment
        }
    }

    package var columns: [Column]
    private var rows: [(cells: [String], tone: Tone)] = []

    package init(_ columns: [Column]) {
        self.columns = columns
    }

    package mutating func add(_ cells: [String], tone: Tone = .plain) {
        precondition(cells.count == columns.count, "a row has one cell per column")
        rows.append((cells, tone))
    }

    package var isEmpty: Bool { rows.isEmpty }

    /// The table, one line per row after the header, columns two spaces apart, no trailing spaces.
    package func render(colour: Bool) -> String {
        var widths = columns.map { $0.title.count }
        for row in rows {
            for (i, cell) in row.cells.enumerated() { widths[i] = max(widths[i], cell.count) }
        }
        func line(_ cells: [String]) -> String {
            var parts: [String] = []
            for (i, cell) in cells.enumerated() {
                let pad = String(repeating: " ", count: widths[i] - cell.count)
                let last = i == cells.count - 1
                switch columns[i].alignment {
                case .left: parts.append(last ? cell : cell + pad)
                case .right: parts.append(pad + cell)
                }
            }
            return parts.joined(separator: "  ")
        }
        let bold = "\u{1B}[1m"
        let reset = "\u{1B}[0m"
        var out = (colour ? bold : "") + line(columns.map(\.title)) + (colour ? reset : "") + "\n"
        for row in rows {
            let text = line(row.cells)
            out += colour && row.tone != .plain ? row.tone.code + text + reset + "\n" : text + "\n"
        }
        return out
    }
}
