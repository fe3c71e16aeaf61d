import Foundation
import NIOCore
import PostgresNIO

extension PostgresStore: StoreTransfer {
    public func isEmptyForTransfer() async throws -> Bool {
        try await withConnection("look for rows") { [logger] conn in
            try await Self.rows(conn, """
                SELECT NOT (EXISTS (SELECT 1 FROM events) OR EXISTS (SELECT 1 FROM jobs) OR EXISTS (SELECT 1 FROM job_attempts)
                            OR EXISTS (SELECT 1 FROM callbacks)) AS empty
                """, logger).first?["empty"].decode(Bool.self) ?? false
        }
    }

    public func exportRows(_ table: TransferTable, after: TransferCursor?, limit: Int) async throws -> (rows: [TransferRow], next: TransferCursor?) {
        let columns = table.columns.map(\.name).joined(separator: ", ")
        let query: PostgresQuery
        switch table {
        case .jobAttempts:
            let key = after?.key ?? ["", "-1"]
            query = """
                SELECT \(unescaped: columns) FROM job_attempts WHERE (job_id, number) > (\(key[0]), \(Int(key[1]) ?? -1))
                ORDER BY job_id, number LIMIT \(limit)
                """
        default:
            query = "SELECT seq, \(unescaped: columns) FROM \(unescaped: table.rawValue) WHERE seq > \(after?.position ?? 0) ORDER BY seq LIMIT \(limit)"
        }
        return try await withConnection("export \(table.rawValue)") { [logger] conn in
            var out: [TransferRow] = []
            var last: TransferCursor?
            for row in try await Self.rows(conn, query, logger) {
                var r: TransferRow = [:]
                for (name, kind) in table.columns {
                    let cell = row[name]
                    switch kind {
                    case .text: r[name] = try cell.decode(String?.self).map(TransferValue.text) ?? .null
                    case .int: r[name] = try cell.decode(Int?.self).map(TransferValue.int) ?? .null
                    case .bool: r[name] = try cell.decode(Bool?.self).map { .int($0 ? 1 : 0) } ?? .null
                    case .double: r[name] = try cell.decode(Double?.self).map(TransferValue.double) ?? .null
                    case .bytes:
                        r[name] = try cell.decode(ByteBuffer?.self).map { b in var b = b; return .bytes(b.readBytes(length: b.readableBytes) ?? []) } ?? .null
                    }
                }
                out.append(r)
                if table == .jobAttempts, case .text(let job)? = r["job_id"], case .int(let n)? = r["number"] {
                    last = TransferCursor(position: 0, key: [job, String(n)])
                } else if table != .jobAttempts {
                    last = TransferCursor(position: try row["seq"].decode(Int.self), key: [])
                }
            }
            return (out, out.count < limit ? nil : last)
        }
    }

    public func importRows(_ table: TransferTable, _ rows: [TransferRow]) async throws {
        guard !rows.isEmpty else { return }
        var names = table.columns.map(\.name)
        if table == .events { names.append("body_bytes") }
        let kinds = Dictionary(uniqueKeysWithValues: table.columns.map { ($0.name, $0.kind) })
        var queries: [PostgresQuery] = []
        for row in rows {
            var binds = PostgresBindings()
            for name in names {
                let value: TransferValue = name == "body_bytes" ? {
                    if case .bytes(let b)? = row["body"] { return .int(b.count) }
                    return .int(0)
                }() : row[name] ?? .null
                switch (value, kinds[name] ?? .int) {
                case (.null, _): binds.appendNull()
                case (.int(let v), .bool): binds.append(v != 0)
                case (.int(let v), _): binds.append(v)
                case (.double(let v), _): binds.append(v)
                case (.text(let v), _): binds.append(v)
                case (.bytes(let v), _): binds.append(ByteBuffer(bytes: v))
                }
            }
            let marks = (1...names.count).map { "$\($0)" }.joined(separator: ", ")
            queries.append(PostgresQuery(unsafeSQL: "INSERT INTO \(table.rawValue) (\(names.joined(separator: ", "))) VALUES (\(marks))", binds: binds))
        }
        try await transaction("import \(table.rawValue)") { [logger, queries] conn in
            for q in queries { try await conn.query(q, logger: logger) }
        }
    }
}
