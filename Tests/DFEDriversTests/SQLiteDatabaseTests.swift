import DFECore
import DFEDrivers
import DFEProvision
import DFETestSupport
import Foundation
import Testing

@Suite struct SQLiteDatabaseTests {
    /// Checks the on-disk header: a SQLite 3 file whose read/write versions (bytes 18, 19) say WAL.
    static func isWalDatabase(_ path: String) -> Bool {
        guard let data = Files.bytes(path), data.count >= 100 else { return false }
        return data.prefix(16) == Data("SQLite format 3\0".utf8) && data[18] == 2 && data[19] == 2
    }

    @Test func fieldsNameTheFileAfterTheInstance() throws {
        let directory = try DriverDirectory()
        let database = SQLiteDatabaseProvisioner(root: directory.path("databases"))
        let fields = database.fields(for: testSpec("acme"), host: testHost, dependencies: [:])
        #expect(fields == FieldSet(["driver": "sqlite", "path": directory.path("databases/acme.sqlite")]))
    }

    @Test func aFileSwappedInBehindTheRecordedIdentityIsStillFoundForeign() async throws {
        let directory = try DriverDirectory()
        let database = SQLiteDatabaseProvisioner(root: directory.path("databases"))
        let acme = try await database.apply(context(database, testSpec("acme")))
        let other = try await database.apply(context(database, testSpec("other")))
        let recorded = RecordedResource(
            kind: .database, host: "test", driver: "sqlite", specHash: "", fields: FieldSet(), outputs: acme)
        var ctx = context(database, testSpec("acme"))
        ctx.recorded = recorded
        #expect(try await database.observe(ctx) == .ok)
        // Replace acme's file with other's: a new inode, so the cheap identity check falls through to the owner.
        let acmePath = try #require(acme["path"])
        let otherPath = try #require(other["path"])
        try FileManager.default.removeItem(atPath: acmePath)
        try FileManager.default.copyItem(atPath: otherPath, toPath: acmePath)
        guard case .conflict(let message) = try await database.observe(ctx) else {
            Issue.record("another instance's database must be a conflict")
            return
        }
        #expect(message.contains("belongs to instance 'other'"), "\(message)")
    }

    @Test func applyCreatesARealWalDatabaseRecordingItsOwner() async throws {
        let directory = try DriverDirectory()
        let database = SQLiteDatabaseProvisioner(root: directory.path("databases"))
        let ctx = context(database, testSpec("acme"))
        #expect(try await database.observe(ctx) == .missing)
        let outputs = try await database.apply(ctx)
        let path = directory.path("databases/acme.sqlite")
        #expect(outputs["driver"] == "sqlite")
        #expect(outputs["path"] == path)
        #expect(outputs["fileIdentity"] != nil)
        #expect(Self.isWalDatabase(path))
        #expect(try await database.observe(ctx) == .ok)
        #expect(Files.mode(directory.path("databases")) == 0o750)
        #expect(Files.mode(path) == 0o640)
        // No temporary database, WAL or shared-memory file is left behind.
        #expect(directory.listing("databases") == ["acme.sqlite"])
        #expect(
            try SQLiteShell.query(path, "SELECT instance || ' ' || owner || ' ' || state_id FROM dfe_owner")
                == "acme ops@example.com \(testStateID)")
        #expect(try SQLiteShell.query(path, "PRAGMA journal_mode") == "wal")
    }

    @Test func applyAgainKeepsTheDataOfTheInstance() async throws {
        let directory = try DriverDirectory()
        let database = SQLiteDatabaseProvisioner(root: directory.path("databases"))
        let ctx = context(database, testSpec("acme"))
        _ = try await database.apply(ctx)
        let path = directory.path("databases/acme.sqlite")
        try SQLiteShell.execute(path, "CREATE TABLE customers (name TEXT); INSERT INTO customers VALUES ('ada');")
        let before = Files.bytes(path)
        _ = try await database.apply(ctx)
        #expect(Files.bytes(path) == before)
        #expect(try SQLiteShell.query(path, "SELECT name FROM customers") == "ada")
        #expect(try await database.observe(ctx) == .ok)
    }

    @Test func aForeignFileAtTheNameIsATerminalConflictAndNeverTouched() async throws {
        let directory = try DriverDirectory()
        let database = SQLiteDatabaseProvisioner(root: directory.path("databases"))
        let ctx = context(database, testSpec("acme"))
        let path = directory.path("databases/acme.sqlite")
        try Files.write(path, "precious data that is not a database")
        guard case .conflict(let detail) = try await database.observe(ctx) else {
            Issue.record("a foreign file must be observed as a conflict")
            return
        }
        #expect(detail.contains("never adopts"), "\(detail)")
        let error = await #expect(throws: DriverError.self) { try await database.apply(ctx) }
        #expect(error?.errorClass == .terminal(.conflict))
        #expect(directory.listing("databases") == ["acme.sqlite"])
        #expect(Files.bytes(path) == Data("precious data that is not a database".utf8))
    }

    @Test func aDatabaseOfAnotherInstanceIsAConflictNeverAdoptedOrOverwritten() async throws {
        let directory = try DriverDirectory()
        let database = SQLiteDatabaseProvisioner(root: directory.path("databases"))
        _ = try await database.apply(context(database, testSpec("beta")))
        let beta = directory.path("databases/beta.sqlite")
        try SQLiteShell.execute(beta, "CREATE TABLE orders (id INTEGER); INSERT INTO orders VALUES (42);")
        let acmePath = directory.path("databases/acme.sqlite")
        try FileManager.default.copyItem(atPath: beta, toPath: acmePath)
        let acme = context(database, testSpec("acme"))
        guard case .conflict(let detail) = try await database.observe(acme) else {
            Issue.record("a database owned by another instance must be a conflict")
            return
        }
        #expect(detail.contains("'beta'"))
        await #expect(throws: DriverError.self) { try await database.apply(acme) }
        #expect(try SQLiteShell.query(acmePath, "SELECT instance FROM dfe_owner") == "beta")
        #expect(try SQLiteShell.query(acmePath, "SELECT id FROM orders") == "42")
    }

    @Test func aDatabaseOfAnotherStateIsAConflictNeverAdoptedOrDeleted() async throws {
        let directory = try DriverDirectory()
        let database = SQLiteDatabaseProvisioner(root: directory.path("databases"))
        let theirs = context(database, testSpec("acme"), stateID: "another-workspace")
        let outputs = try await database.apply(theirs)
        let path = directory.path("databases/acme.sqlite")
        let ours = context(database, testSpec("acme"))
        guard case .conflict(let detail) = try await database.observe(ours) else {
            Issue.record("another state's database must be a conflict")
            return
        }
        #expect(detail.contains("another-workspace"), "\(detail)")
        let applyError = await #expect(throws: DriverError.self) { try await database.apply(ours) }
        #expect(applyError?.errorClass == .terminal(.conflict))
        let deleteError = await #expect(throws: DriverError.self) {
            try await database.delete(
                pruneContext("acme", recorded: recorded(.database, ours, driver: "sqlite", outputs: outputs)))
        }
        #expect(deleteError?.errorClass == .terminal(.conflict))
        #expect(Self.isWalDatabase(path))
        #expect(try SQLiteShell.query(path, "SELECT state_id FROM dfe_owner") == "another-workspace")
    }

    @Test func aRetainedDatabaseIsNeverReadoptedUnderAnotherOwner() async throws {
        let directory = try DriverDirectory()
        let database = SQLiteDatabaseProvisioner(root: directory.path("databases"))
        _ = try await database.apply(context(database, testSpec("acme", owner: "ops@acme.example")))
        // The instance was pruned with Retain (the state forgot it); a new manifest names another owner.
        let other = context(database, testSpec("acme", owner: "mallory@evil.example"))
        guard case .conflict(let detail) = try await database.observe(other) else {
            Issue.record("re-adoption under another owner must be a conflict")
            return
        }
        #expect(detail.contains("never handed to another owner"), "\(detail)")
        await #expect(throws: DriverError.self) { try await database.apply(other) }
        // The same owner adopts it again.
        let same = context(database, testSpec("acme", owner: "OPS@acme.example"))
        #expect(try await database.observe(same) == .ok)
    }

    @Test func aLegacyOwnerRowRecordedInThisStateIsStampedWithTheFullRecord() async throws {
        let directory = try DriverDirectory()
        let database = SQLiteDatabaseProvisioner(root: directory.path("databases"))
        let path = directory.path("databases/acme.sqlite")
        try FileManager.default.createDirectory(atPath: directory.path("databases"), withIntermediateDirectories: true)
        try SQLiteShell.execute(
            path,
            "CREATE TABLE dfe_owner (instance TEXT NOT NULL, created_at TEXT NOT NULL); INSERT INTO dfe_owner VALUES ('acme', 'x');"
        )
        // Not recorded: an old-format row alone proves nothing.
        let unrecorded = context(database, testSpec("acme"))
        guard case .conflict = try await database.observe(unrecorded) else {
            Issue.record("an unrecorded legacy database must be a conflict")
            return
        }
        var ctx = unrecorded
        ctx.recorded = recordedPath(.database, path, driver: "sqlite")
        #expect(try await database.observe(ctx) == .drifted("database file has no ownership record yet"))
        _ = try await database.apply(ctx)
        #expect(try SQLiteShell.query(path, "SELECT state_id FROM dfe_owner") == testStateID)
        #expect(try await database.observe(unrecorded) == .ok)
    }

    @Test func deleteRemovesOnlyItsOwnDatabase() async throws {
        let directory = try DriverDirectory()
        let database = SQLiteDatabaseProvisioner(root: directory.path("databases"))
        let acme = context(database, testSpec("acme"))
        let outputs = try await database.apply(acme)
        _ = try await database.apply(context(database, testSpec("beta")))
        try await database.delete(
            pruneContext("acme", recorded: recorded(.database, acme, driver: "sqlite", outputs: outputs)))
        #expect(directory.listing("databases") == ["beta.sqlite"])
        // Absent is success.
        try await database.delete(
            pruneContext("acme", recorded: recorded(.database, acme, driver: "sqlite", outputs: outputs)))
    }

    @Test func deleteRefusesADatabaseOwnedByAnotherInstance() async throws {
        let directory = try DriverDirectory()
        let database = SQLiteDatabaseProvisioner(root: directory.path("databases"))
        _ = try await database.apply(context(database, testSpec("beta")))
        let beta = directory.path("databases/beta.sqlite")
        let acme = directory.path("databases/acme.sqlite")
        try FileManager.default.copyItem(atPath: beta, toPath: acme)
        let error = await #expect(throws: DriverError.self) {
            try await database.delete(pruneContext("acme", recorded: recordedPath(.database, acme, driver: "sqlite")))
        }
        #expect(error?.message.contains("belongs to instance 'beta'") == true, "\(String(describing: error))")
        #expect(error?.errorClass == .terminal(.conflict))
        #expect(Self.isWalDatabase(acme))
        // A path recorded for another instance's file is refused before anything is opened.
        let other = await #expect(throws: DriverError.self) {
            try await database.delete(pruneContext("acme", recorded: recordedPath(.database, beta, driver: "sqlite")))
        }
        #expect(other?.message.contains("not this instance's database file") == true)
        #expect(Self.isWalDatabase(beta))
    }

    @Test func deleteRefusesAFileDfeDidNotCreate() async throws {
        let directory = try DriverDirectory()
        let database = SQLiteDatabaseProvisioner(root: directory.path("databases"))
        let path = directory.path("databases/acme.sqlite")
        try Files.write(path, "someone else's file")
        let error = await #expect(throws: DriverError.self) {
            try await database.delete(pruneContext("acme", recorded: recordedPath(.database, path, driver: "sqlite")))
        }
        #expect(error?.message.contains("not a dfe database") == true)
        #expect(Files.bytes(path) == Data("someone else's file".utf8))
    }

    @Test func deleteRefusesPathsOutsideRoot() async throws {
        let directory = try DriverDirectory()
        let database = SQLiteDatabaseProvisioner(root: directory.path("databases"))
        let outside = SQLiteDatabaseProvisioner(root: directory.path("elsewhere"))
        _ = try await outside.apply(context(outside, testSpec("acme")))
        let path = directory.path("elsewhere/acme.sqlite")
        let error = await #expect(throws: DriverError.self) {
            try await database.delete(pruneContext("acme", recorded: recordedPath(.database, path, driver: "sqlite")))
        }
        #expect(error?.message.contains("not this instance's database file") == true)
        #expect(Self.isWalDatabase(path))
    }

    @Test func staleTemporaryFilesFromACrashAreCleanedUp() async throws {
        let directory = try DriverDirectory()
        let database = SQLiteDatabaseProvisioner(root: directory.path("databases"))
        for suffix in ["", "-wal", "-shm", "-journal"] {
            try Files.write(directory.path("databases/.acme.sqlite.dfe-tmp\(suffix)"), "half-written")
        }
        _ = try await database.apply(context(database, testSpec("acme")))
        #expect(directory.listing("databases") == ["acme.sqlite"])
    }

    @Test func deleteRemovesTheTemporaryFilesOfACreateKilledMidway() async throws {
        let directory = try DriverDirectory()
        let database = SQLiteDatabaseProvisioner(root: directory.path("databases"))
        for suffix in ["", "-wal", "-shm", "-journal"] {
            try Files.write(directory.path("databases/.acme.sqlite.dfe-tmp\(suffix)"), "half-written")
        }
        let ctx = context(database, testSpec("acme"))
        try await database.delete(
            pruneContext(
                "acme", recorded: recorded(.database, ctx, driver: "sqlite", outputs: ["path": ctx.fields["path"]!])))
        #expect(directory.listing("databases") == [])
    }
}
