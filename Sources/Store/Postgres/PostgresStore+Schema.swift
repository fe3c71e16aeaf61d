import Foundation
import PostgresNIO

extension PostgresStore {
    /// The schema's versions, in order. Each is a list of statements applied in one transaction with the version
    /// row; a released version is never edited, only followed by a new one.
    static let migrations: [(version: Int, name: String, statements: [String])] = [
        (1, "events, jobs, attempts, callbacks", [
            """
            CREATE TABLE events (
                seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                id text NOT NULL UNIQUE,
                source text NOT NULL,
                kind text NOT NULL,
                delivery_id text NOT NULL,
                headers text NOT NULL,
                content_type text NOT NULL,
                body bytea NOT NULL,
                body_bytes integer NOT NULL,
                received_at double precision NOT NULL,
                state text NOT NULL DEFAULT 'received',
                plan text,
                explanation text,
                UNIQUE (source, delivery_id)
            )
            """,
            // Bodies are written once and read by id: compressed when large, kept out of line (TOAST).
            "ALTER TABLE events ALTER COLUMN body SET STORAGE EXTERNAL",
            "CREATE INDEX events_received_at ON events (received_at)",
            "CREATE INDEX events_unplanned ON events (seq) WHERE state = 'received'",
            "CREATE INDEX events_failed ON events (seq) WHERE state = 'failed'",
            """
            CREATE TABLE jobs (
                seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                id text NOT NULL UNIQUE,
                idempotency_key text NOT NULL UNIQUE,
                event_id text NOT NULL,
                rule text NOT NULL,
                action_index integer NOT NULL,
                action text NOT NULL,
                parameters text NOT NULL,
                state text NOT NULL DEFAULT 'queued',
                attempts integer NOT NULL DEFAULT 0,
                max_attempts integer NOT NULL,
                created_at double precision NOT NULL,
                next_attempt_at double precision NOT NULL,
                lease_until double precision,
                lease_token text,
                lease_owner text,
                last_error text,
                result text,
                supersede_scope text,
                cancel_requested boolean NOT NULL DEFAULT false,
                delivery_id text
            ) WITH (autovacuum_vacuum_scale_factor = 0.02, autovacuum_analyze_scale_factor = 0.02)
            """,
            "CREATE INDEX jobs_queued ON jobs (seq) WHERE state = 'queued'",
            "CREATE INDEX jobs_leased ON jobs (lease_until) WHERE state = 'running'",
            "CREATE INDEX jobs_watching ON jobs (seq) WHERE state = 'watching'",
            "CREATE INDEX jobs_event ON jobs (event_id)",
            "CREATE INDEX jobs_scope ON jobs (rule, supersede_scope) WHERE supersede_scope IS NOT NULL",
            "CREATE INDEX jobs_finished ON jobs (created_at) WHERE state IN ('succeeded', 'failed', 'dead')",
            """
            CREATE TABLE job_attempts (
                job_id text NOT NULL,
                number integer NOT NULL,
                started_at double precision NOT NULL,
                ended_at double precision NOT NULL,
                outcome text NOT NULL,
                error text,
                PRIMARY KEY (job_id, number)
            )
            """,
            """
            CREATE TABLE callbacks (
                seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                id text NOT NULL UNIQUE,
                job_id text NOT NULL,
                event_id text NOT NULL,
                rule text NOT NULL,
                target_index integer NOT NULL,
                phase text NOT NULL DEFAULT 'final',
                kind text NOT NULL,
                url text NOT NULL,
                credential text,
                body text NOT NULL,
                state text NOT NULL DEFAULT 'pending',
                attempts integer NOT NULL DEFAULT 0,
                next_attempt_at double precision NOT NULL,
                last_status integer,
                last_error text,
                created_at double precision NOT NULL,
                UNIQUE (job_id, target_index, phase)
            ) WITH (autovacuum_vacuum_scale_factor = 0.02)
            """,
            "CREATE INDEX callbacks_due ON callbacks (next_attempt_at) WHERE state = 'pending'",
            "CREATE INDEX callbacks_event ON callbacks (event_id)",
            "CREATE INDEX callbacks_job ON callbacks (job_id)",
        ]),
        // How many times an operator retried the job: a retried run-starting job starts a new run.
        (2, "operator retries", ["ALTER TABLE jobs ADD COLUMN retries integer NOT NULL DEFAULT 0"]),
        // The event's facts and the rule's callback targets, fixed at planning (JobContext).
        // And parked as a column (it was a "parked: " prefix of last_error, counted with LIKE).
        (3, "job context and parked", ["ALTER TABLE jobs ADD COLUMN context text", "ALTER TABLE jobs ADD COLUMN parked boolean NOT NULL DEFAULT false",
                                       "UPDATE jobs SET parked = true WHERE state = 'dead' AND last_error LIKE 'parked: %'"]),
    ]

    /// Applies the missing versions in one transaction under an advisory transaction lock: replicas starting
    /// together migrate once (the others wait, then find nothing to do). A schema newer than this mlhook knows is
    /// refused.
    func migrate() async throws {
        let logger = self.logger
        try await client.withConnection { conn in
            try await conn.withTransaction(logger: logger) { conn in
                try await conn.query("SELECT pg_advisory_xact_lock(\(Self.migrationLock))", logger: logger)
                try await conn.query("""
                    CREATE TABLE IF NOT EXISTS mlhook_schema (version integer PRIMARY KEY, name text NOT NULL,
                                                              applied_at timestamptz NOT NULL DEFAULT now())
                    """, logger: logger)
                let current = try await conn.query("SELECT coalesce(max(version), 0) AS v FROM mlhook_schema", logger: logger)
                    .collect().first?.makeRandomAccess()["v"].decode(Int.self) ?? 0
                let known = Self.migrations.last?.version ?? 0
                guard current <= known else {
                    throw StoreError(.schema, "migrate", "the database's schema is version \(current), newer than this mlhook knows (\(known)): "
                                     + "a newer mlhook migrated it; run that version")
                }
                for m in Self.migrations where m.version > current {
                    for statement in m.statements { try await conn.query(PostgresQuery(unsafeSQL: statement), logger: logger) }
                    try await conn.query("INSERT INTO mlhook_schema (version, name) VALUES (\(m.version), \(m.name))", logger: logger)
                    logger.info("store: applied PostgreSQL schema version \(m.version) (\(m.name))")
                }
            }
        }
    }

    /// The advisory lock key migrations hold (any constant shared by every mlhook).
    static let migrationLock = 0x6d6c_686f_6f6b  // "mlhook"
}
