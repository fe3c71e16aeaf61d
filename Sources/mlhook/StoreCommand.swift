import ArgumentParser
import Foundation
import Logging
import MLHookCore
import MLHookServer
import Store

/// `mlhook store …`: work on a store as a whole.
struct StoreCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "store", abstract: "Work on a store as a whole.", subcommands: [Migrate.self])

    struct Migrate: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Copy every event (bodies and dedup keys included), job, attempt and callback from one store to another.",
            discussion: """
                Reads the store of --from, writes into the store of --to (SQLite to PostgreSQL, or back), then reads the copy \
                back and compares row counts and checksums table by table. It refuses a target that holds anything. Stop \
                the replica that uses the source first: rows written during the copy would be left behind.
                Exit status: 0 copied and verified; 1 the copy failed or does not match; 2 a usage or configuration error.
                """)

        @Option(help: "The configuration whose store is copied (it must exist).") var from: String
        @Option(help: "The configuration whose store receives the copy (empty; created if it is SQLite and missing).") var to: String
        @Option(help: "Rows per transaction.") var batch: Int = 500

        func run() async throws {
            guard batch > 0 else { printError("--batch must be at least 1"); throw ExitCode(2) }
            let source = try await open(from, mustExist: true)
            let target = try await open(to, mustExist: false)
            guard try await target.isEmptyForTransfer() else {
                printError("the store of \(to) is not empty: mlhook store migrate writes only into an empty store")
                throw ExitCode(1)
            }
            var failed = false
            for table in TransferTable.allCases {
                var copied = TransferChecksum()
                var cursor: TransferCursor?
                repeat {
                    let (rows, next) = try await source.exportRows(table, after: cursor, limit: batch)
                    try await target.importRows(table, rows)
                    for r in rows { copied.add(r, table) }
                    cursor = next
                } while cursor != nil
                var readBack = TransferChecksum()
                cursor = nil
                repeat {
                    let (rows, next) = try await target.exportRows(table, after: cursor, limit: batch)
                    for r in rows { readBack.add(r, table) }
                    cursor = next
                } while cursor != nil
                if copied == readBack {
                    print("\(table.rawValue): \(copied.rows) rows copied, checksums match (\(copied))")
                } else {
                    printError("\(table.rawValue): the copy does not match: source \(copied), copy \(readBack)")
                    failed = true
                }
            }
            if failed { throw ExitCode(1) }
            print("done: point the replicas at \(to) and start them")
        }

        func open(_ path: String, mustExist: Bool) async throws -> any MLHookStore {
            let loaded: LoadedConfig
            do { loaded = try ConfigLoader.load(path: path) } catch {
                printError("\(path) is invalid:\n\(error.description)")
                throw ExitCode(2)
            }
            do {
                return try await MLHookRuntime.openStore(loaded.config.store, mustExist: mustExist, background: false, logger: Logger(label: "mlhook.migrate"))
            } catch {
                printError("\(path): \(error)")
                throw ExitCode(1)
            }
        }
    }
}
