import Foundation
import GRDB

extension SQLiteStore {
    /// The schema's versions, applied in order at open; a store written by a newer mlhook is refused.
    static var migrator: DatabaseMigrator {
        var m = DatabaseMigrator()
        m.registerMigration("v1 events") { db in
            try db.execute(sql: """
                CREATE TABLE events (
                    seq INTEGER PRIMARY KEY AUTOINCREMENT,
                    id TEXT NOT NULL UNIQUE,
                    source TEXT NOT NULL,
                    kind TEXT NOT NULL,
                    delivery_id TEXT NOT NULL,
                    headers TEXT NOT NULL,
                    content_type TEXT NOT NULL,
                    body BLOB NOT NULL,
                    received_at REAL NOT NULL,
                    state TEXT NOT NULL DEFAULT 'received',
                    explanation TEXT
                );
                CREATE UNIQUE INDEX events_dedup ON events(source, delivery_id);
                CREATE INDEX events_received_at ON events(received_at);
                """)
        }
        m.registerMigration("v2 plans") { db in
            try db.execute(sql: """
                ALTER TABLE events ADD COLUMN plan TEXT;
                CREATE INDEX events_unplanned ON events(seq) WHERE state = 'received';
                """)
        }
        m.registerMigration("v3 jobs") { db in
            try db.execute(sql: """
                CREATE TABLE jobs (
                    seq INTEGER PRIMARY KEY AUTOINCREMENT,
                    id TEXT NOT NULL UNIQUE,
                    idempotency_key TEXT NOT NULL UNIQUE,
                    event_id TEXT NOT NULL,
                    rule TEXT NOT NULL,
                    action_index INTEGER NOT NULL,
                    action TEXT NOT NULL,
                    parameters TEXT NOT NULL,
                    state TEXT NOT NULL DEFAULT 'queued',
                    attempts INTEGER NOT NULL DEFAULT 0,
                    max_attempts INTEGER NOT NULL,
                    created_at REAL NOT NULL,
                    next_attempt_at REAL NOT NULL,
                    lease_until REAL,
                    last_error TEXT
                );
                CREATE INDEX jobs_runnable ON jobs(next_attempt_at) WHERE state = 'queued';
                CREATE INDEX jobs_event ON jobs(event_id);
                """)
        }
        m.registerMigration("v4 attempts") { db in
            try db.execute(sql: """
                ALTER TABLE jobs ADD COLUMN result TEXT;
                CREATE TABLE job_attempts (
                    job_id TEXT NOT NULL, number INTEGER NOT NULL, started_at REAL NOT NULL, ended_at REAL NOT NULL,
                    outcome TEXT NOT NULL, error TEXT, PRIMARY KEY (job_id, number)
                );
                """)
        }
        m.registerMigration("v5 callbacks") { db in
            try db.execute(sql: """
                CREATE TABLE callbacks (
                    seq INTEGER PRIMARY KEY AUTOINCREMENT,
                    id TEXT NOT NULL UNIQUE,
                    job_id TEXT NOT NULL, event_id TEXT NOT NULL, rule TEXT NOT NULL, target_index INTEGER NOT NULL,
                    kind TEXT NOT NULL, url TEXT NOT NULL, body TEXT NOT NULL,
                    state TEXT NOT NULL DEFAULT 'pending', attempts INTEGER NOT NULL DEFAULT 0,
                    next_attempt_at REAL NOT NULL, last_status INTEGER, last_error TEXT, created_at REAL NOT NULL,
                    UNIQUE (job_id, target_index)
                );
                CREATE INDEX callbacks_due ON callbacks(next_attempt_at) WHERE state = 'pending';
                """)
        }
        m.registerMigration("v6 supersede") { db in
            try db.execute(sql: """
                ALTER TABLE jobs ADD COLUMN supersede_scope TEXT;
                ALTER TABLE jobs ADD COLUMN cancel_requested INTEGER NOT NULL DEFAULT 0;
                """)
        }
        m.registerMigration("v7 callbacks by event") { db in
            try db.execute(sql: "CREATE INDEX callbacks_event ON callbacks(event_id)")
        }
        m.registerMigration("v8 job delivery id") { db in
            // Copied from the event at planning, so every log line about a job can name the delivery.
            try db.execute(sql: """
                ALTER TABLE jobs ADD COLUMN delivery_id TEXT;
                UPDATE jobs SET delivery_id = (SELECT delivery_id FROM events WHERE events.id = jobs.event_id);
                """)
        }
        m.registerMigration("v9 event bodies apart") { db in
            // SQLite rewrites a whole row, overflow pages included, on any UPDATE: with the body in the events
            // row, planning an event (state, plan, explanation) wrote its ~7 KB body to the WAL a second time
            // and the checkpointer copied it twice. Bodies now live in their own table, written once.
            try db.execute(sql: """
                CREATE TABLE event_bodies (seq INTEGER PRIMARY KEY, body BLOB NOT NULL);
                INSERT INTO event_bodies (seq, body) SELECT seq, body FROM events;
                ALTER TABLE events ADD COLUMN body_bytes INTEGER NOT NULL DEFAULT 0;
                UPDATE events SET body_bytes = length(body);
                ALTER TABLE events DROP COLUMN body;
                """)
        }
        m.registerMigration("v10 body log") { db in
            // New bodies go to BodyLog's segment files; events stored before keep theirs in event_bodies.
            try db.execute(sql: """
                ALTER TABLE events ADD COLUMN body_segment INTEGER;
                ALTER TABLE events ADD COLUMN body_offset INTEGER;
                """)
        }
        m.registerMigration("v11 callback phase") { db in
            // A callback says which delivery to its target it is (a started run's pending status, or the final
            // outcome) instead of target_index + 1000 meaning pending; one of each per job and target. It also
            // keeps where its secret comes from (callbacks from before: NULL, looked up in the rule).
            try db.execute(sql: """
                CREATE TABLE callbacks_v11 (
                    seq INTEGER PRIMARY KEY AUTOINCREMENT,
                    id TEXT NOT NULL UNIQUE,
                    job_id TEXT NOT NULL, event_id TEXT NOT NULL, rule TEXT NOT NULL, target_index INTEGER NOT NULL,
                    phase TEXT NOT NULL DEFAULT 'final',
                    kind TEXT NOT NULL, url TEXT NOT NULL, credential TEXT, body TEXT NOT NULL,
                    state TEXT NOT NULL DEFAULT 'pending', attempts INTEGER NOT NULL DEFAULT 0,
                    next_attempt_at REAL NOT NULL, last_status INTEGER, last_error TEXT, created_at REAL NOT NULL,
                    UNIQUE (job_id, target_index, phase)
                );
                INSERT INTO callbacks_v11 (seq, id, job_id, event_id, rule, target_index, phase, kind, url, body, state, attempts,
                                           next_attempt_at, last_status, last_error, created_at)
                    SELECT seq, id, job_id, event_id, rule, target_index % 1000, CASE WHEN target_index >= 1000 THEN 'pending' ELSE 'final' END,
                           kind, url, body, state, attempts, next_attempt_at, last_status, last_error, created_at FROM callbacks;
                DROP TABLE callbacks;
                ALTER TABLE callbacks_v11 RENAME TO callbacks;
                CREATE INDEX callbacks_due ON callbacks(next_attempt_at) WHERE state = 'pending';
                CREATE INDEX callbacks_event ON callbacks(event_id);
                """)
        }
        m.registerMigration("v12 parked events") { db in
            // Parked (poison) events are counted at every /metrics scrape: only they are ever failed.
            try db.execute(sql: "CREATE INDEX events_failed ON events(seq) WHERE state = 'failed'")
        }
        m.registerMigration("v13 lease tokens") { db in
            // Each claim gets a token; renewing the lease and ending the attempt need it (fencing).
            // Who holds a claim or follows a watching job's run (a store instance): lease_owner.
            try db.execute(sql: "ALTER TABLE jobs ADD COLUMN lease_token TEXT")
            try db.execute(sql: "ALTER TABLE jobs ADD COLUMN lease_owner TEXT")
        }
        m.registerMigration("v14 operator retries") { db in
            // How many times an operator retried the job: a retried run-starting job starts a new run, named
            // after the job and this count, instead of finding the run that failed.
            try db.execute(sql: "ALTER TABLE jobs ADD COLUMN retries INTEGER NOT NULL DEFAULT 0")
        }
        m.registerMigration("v15 job context and parked") { db in
            // The event's facts and the rule's callback targets, fixed at planning (JobContext); and parked as a
            // column (it was a "parked: " prefix of last_error, counted with LIKE).
            try db.execute(sql: """
                ALTER TABLE jobs ADD COLUMN context TEXT;
                ALTER TABLE jobs ADD COLUMN parked INTEGER NOT NULL DEFAULT 0;
                UPDATE jobs SET parked = 1 WHERE state = 'dead' AND last_error LIKE 'parked: %';
                """)
        }
        return m
    }
}

