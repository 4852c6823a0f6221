import GRDB

/// Frozen, versioned migrations of the state database. Never edit a shipped migration: add a new one.
enum Schema {
    /// The latest schema version this build writes.
    static let latest = "v1"

    static var migrator: DatabaseMigrator {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("v1") { db in
            try db.execute(
                sql: """
                    CREATE TABLE instances (
                        name TEXT PRIMARY KEY NOT NULL,
                        owner TEXT NOT NULL,
                        provisioner TEXT NOT NULL,
                        spec_hash TEXT NOT NULL DEFAULT '',
                        phase TEXT NOT NULL,
                        last_error TEXT,
                        attempts INTEGER NOT NULL DEFAULT 0,
                        next_attempt_at REAL,
                        failed_spec_hash TEXT,
                        revision TEXT,
                        protect INTEGER NOT NULL DEFAULT 0,
                        storage_policy TEXT NOT NULL,
                        database_policy TEXT NOT NULL,
                        labels TEXT NOT NULL DEFAULT '{}',
                        updated_at REAL NOT NULL
                    );
                    CREATE TABLE resources (
                        instance TEXT NOT NULL REFERENCES instances(name) ON DELETE CASCADE,
                        kind TEXT NOT NULL,
                        host TEXT NOT NULL,
                        driver TEXT NOT NULL,
                        spec_hash TEXT NOT NULL,
                        fields TEXT NOT NULL,
                        outputs TEXT NOT NULL,
                        updated_at REAL NOT NULL,
                        PRIMARY KEY (instance, kind)
                    );
                    CREATE TABLE runs (
                        id INTEGER PRIMARY KEY AUTOINCREMENT,
                        holder TEXT NOT NULL,
                        started_at REAL NOT NULL,
                        finished_at REAL,
                        status TEXT NOT NULL,
                        revision TEXT,
                        summary TEXT
                    );
                    CREATE TABLE journal (
                        id INTEGER PRIMARY KEY AUTOINCREMENT,
                        run_id INTEGER NOT NULL REFERENCES runs(id),
                        instance TEXT NOT NULL,
                        resource TEXT NOT NULL,
                        action TEXT NOT NULL,
                        reason TEXT NOT NULL,
                        status TEXT NOT NULL,
                        error TEXT,
                        started_at REAL NOT NULL,
                        finished_at REAL
                    );
                    CREATE INDEX journal_by_instance ON journal(instance, id);
                    CREATE INDEX journal_by_status ON journal(status);
                    CREATE TABLE lease (
                        id INTEGER PRIMARY KEY CHECK (id = 1),
                        holder TEXT NOT NULL,
                        pid INTEGER NOT NULL,
                        host TEXT NOT NULL,
                        acquired_at REAL NOT NULL,
                        expires_at REAL NOT NULL
                    );
                    """)
        }
        migrator.registerMigration("v2-lease-fencing") { db in try LeaseFencing.migrate(db) }
        return migrator
    }
}

/// The `v2-lease-fencing` migration: a lease identity that survives PID namespaces and a fencing epoch.
///
/// `lease_epoch` holds one counter that grows on every acquisition (it outlives released leases); the lease
/// row records the epoch it was acquired with. Every write of a run checks, in its own transaction, that
/// `lease.epoch` is still the run's epoch (`StateStore.checkFence`); another backend must do the same.
enum LeaseFencing {
    static func migrate(_ db: Database) throws {
        try db.execute(
            sql: """
                ALTER TABLE lease ADD COLUMN boot_id TEXT NOT NULL DEFAULT '';
                ALTER TABLE lease ADD COLUMN pid_namespace TEXT NOT NULL DEFAULT '';
                ALTER TABLE lease ADD COLUMN start_time TEXT NOT NULL DEFAULT '';
                ALTER TABLE lease ADD COLUMN epoch INTEGER NOT NULL DEFAULT 0;
                ALTER TABLE lease ADD COLUMN renewed_at REAL NOT NULL DEFAULT 0;
                UPDATE lease SET renewed_at = acquired_at;
                CREATE TABLE lease_epoch (id INTEGER PRIMARY KEY CHECK (id = 1), epoch INTEGER NOT NULL);
                INSERT INTO lease_epoch (id, epoch) VALUES (1, 0);
                """)
    }
}
