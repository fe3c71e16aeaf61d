import ArgumentParser
import Foundation

/// How every list command prints, the same for all of them:
/// - on a terminal, a header row and aligned columns;
/// - piped (or with `--tsv`), tab-separated rows without a header, for `cut`, `awk` and `sort`;
/// - with `--json`, one JSON array (`[]` when the list is empty).
struct Listing {
    let header: [String]
    var rows: [[String]] = []
    var json: [String] = []

    init(_ header: String...) { self.header = header }
    init(header: [String]) { self.header = header }

    mutating func add(_ row: [String], json item: String) {
        rows.append(row)
        json.append(item)
    }

    func print(_ format: ListFormat) {
        if format.json {
            Swift.print(json.isEmpty ? "[]" : "[\n" + json.joined(separator: ",\n") + "\n]")
            return
        }
        // Tabs and newlines inside a value would break the columns: shown as spaces.
        let cells = rows.map { $0.map { cell in String(cell.map { $0.isNewline || $0 == "\t" ? " " : $0 }) } }
        if format.tsv || isatty(STDOUT_FILENO) == 0 {
            for row in cells { Swift.print(row.joined(separator: "\t")) }
            return
        }
        let all = [header] + cells
        var widths = Array(repeating: 0, count: header.count)
        for row in all { for (i, cell) in row.enumerated() where i < widths.count { widths[i] = max(widths[i], cell.count) } }
        for row in all {
            let padded = row.enumerated().map { i, cell in i == row.count - 1 ? cell : cell.padding(toLength: widths[i], withPad: " ", startingAt: 0) }
            Swift.print(padded.joined(separator: "  "))
        }
        if cells.isEmpty { Swift.print("(none)") }
    }
}

/// `--json` and `--tsv`, for every list command.
struct ListFormat: ParsableArguments {
    @Flag(help: "Print a JSON array ([] when empty), for scripts.") var json = false
    @Flag(help: "Tab-separated rows without a header, as when the output is piped.") var tsv = false
}
