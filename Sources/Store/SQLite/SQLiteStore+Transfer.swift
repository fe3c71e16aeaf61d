import Foundation
import GRDB

extension SQLiteStore: StoreTransfer {
    public func isEmptyForTransfer() async throws -> Bool {
        try await read("look for rows") { db in
            try Bool.fetchOne(db, sql: """
                SELECT NOT (EXISTS (SELECT 1 FROM events) OR EXISTS (SELECT 1 FROM jobs) OR EXISTS (SELECT 1 FROM job_attempts)
                            OR EXISTS (SELECT 1 FROM callbacks))
                """) ?? false
        }
    }

    public func exportRows(_ table: TransferTable, after: TransferCursor?, limit: Int) async throws -> (rows: [TransferRow], next: TransferCursor?) {
        try await read("export \(table.rawValue)") { [self] db in
            var out: [TransferRow] = []
            var last: TransferCursor?
            switch table {
            case .jobAttempts:
                let key = after?.key ?? ["", "-1"]
                for row in try Row.fetchAll(db, sql: """
                    SELECT * FROM job_attempts WHERE job_id > ? OR (job_id = ? AND number > ?) ORDER BY job_id, number LIMIT ?
                    """, arguments: [key[0], key[0], Int(key[1]) ?? -1, limit]) {
                    out.append(Self.transferRow(row, table))
                    last = TransferCursor(position: 0, key: [row["job_id"], String(row["number"] as Int)])
                }
            case .events:
                for row in try Row.fetchAll(db, sql: "SELECT events.seq AS seq, \(Self.fullColumns) WHERE events.seq > ? ORDER BY events.seq LIMIT ?",
                                            arguments: [after?.position ?? 0, limit]) {
                    var r = Self.transferRow(row, table)
                    r["body"] = .bytes(try stored(row).body)
                    out.append(r)
                    last = TransferCursor(position: row["seq"], key: [])
                }
            case .jobs, .callbacks:
                for row in try Row.fetchAll(db, sql: "SELECT * FROM \(table.rawValue) WHERE seq > ? ORDER BY seq LIMIT ?",
                                            arguments: [after?.position ?? 0, limit]) {
                    out.append(Self.transferRow(row, table))
                    last = TransferCursor(position: row["seq"], key: [])
                }
            }
            return (out, out.count < limit ? nil : last)
        }
    }

    static func transferRow(_ row: Row, _ table: TransferTable) -> TransferRow {
        var out: TransferRow = [:]
        for (name, kind) in table.columns where name != "body" || table != .events {
            switch kind {
            case .text: out[name] = (row[name] as String?).map(TransferValue.text) ?? .null
            case .int, .bool: out[name] = (row[name] as Int?).map(TransferValue.int) ?? .null
            case .double: out[name] = (row[name] as Double?).map(TransferValue.double) ?? .null
            case .bytes: out[name] = (row[name] as Data?).map { .bytes([UInt8]($0)) } ?? .null
            }
        }
        return out
    }

    public func importRows(_ table: TransferTable, _ rows: [TransferRow]) async throws {
        guard !rows.isEmpty else { return }
        try await write("import \(table.rawValue)") { db in
            var columns = table.columns.map(\.name).filter { !(table == .events && $0 == "body") }
            if table == .events { columns.append("body_bytes") }
            let insert = try db.cachedStatement(sql: "INSERT INTO \(table.rawValue) (\(columns.joined(separator: ", "))) VALUES ("
                                                + columns.map { _ in "?" }.joined(separator: ", ") + ")")
            for row in rows {
                var values: [DatabaseValue] = []
                var body: [UInt8] = []
                if table == .events, case .bytes(let b)? = row["body"] { body = b }
                for name in columns {
                    if name == "body_bytes" { values.append(body.count.databaseValue); continue }
                    switch row[name] ?? .null {
                    case .null: values.append(.null)
                    case .int(let v): values.append(v.databaseValue)
                    case .double(let v): values.append(v.databaseValue)
                    case .text(let v): values.append(v.databaseValue)
                    case .bytes(let v): values.append(Data(v).databaseValue)
                    }
                }
                try insert.execute(arguments: StatementArguments(values))
                if table == .events {
                    // Bodies moved in go where events stored before the body log keep theirs.
                    try db.execute(sql: "INSERT INTO event_bodies (seq, body) VALUES (?, ?)", arguments: [db.lastInsertedRowID, Data(body)])
                }
            }
        }
    }
}
