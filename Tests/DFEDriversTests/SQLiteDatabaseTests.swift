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
        #expect(try await database.observe(ctx) == .drifted("database file belongs to instance 'other'"))
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
        #expect(try SQLiteShell.query(path, "SELECT instance FROM dfe_owner") == "acme")
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

    @Test func foreignFileIsMovedAsideAndKept() async throws {
        let directory = try DriverDirectory()
        let database = SQLiteDatabaseProvisioner(root: directory.path("databases"))
        let ctx = context(database, testSpec("acme"))
        let path = directory.path("databases/acme.sqlite")
        try Files.write(path, "precious data that is not a database")
        guard case .drifted(let detail) = try await database.observe(ctx) else {
            Issue.record("a foreign file must be observed as drift")
            return
        }
        #expect(detail.contains("foreign"))
        #expect(Files.bytes(path) == Data("precious data that is not a database".utf8))

        _ = try await database.apply(ctx)
        let names = directory.listing("databases")
        #expect(names.count == 2, "\(names)")
        let aside = try #require(names.first { $0.hasPrefix("acme.sqlite.foreign-") })
        #expect(Files.bytes(directory.path("databases/\(aside)")) == Data("precious data that is not a database".utf8))
        #expect(Self.isWalDatabase(path))
        #expect(try await database.observe(ctx) == .ok)
    }

    @Test func databaseOfAnotherInstanceIsDriftAndMovedAsideNotOverwritten() async throws {
        let directory = try DriverDirectory()
        let database = SQLiteDatabaseProvisioner(root: directory.path("databases"))
        _ = try await database.apply(context(database, testSpec("beta")))
        let beta = directory.path("databases/beta.sqlite")
        try SQLiteShell.execute(beta, "CREATE TABLE orders (id INTEGER); INSERT INTO orders VALUES (42);")
        let acmePath = directory.path("databases/acme.sqlite")
        try FileManager.default.copyItem(atPath: beta, toPath: acmePath)
        let acme = context(database, testSpec("acme"))
        guard case .drifted(let detail) = try await database.observe(acme) else {
            Issue.record("a database owned by another instance must be observed as drift")
            return
        }
        #expect(detail.contains("'beta'"))
        _ = try await database.apply(acme)
        #expect(try SQLiteShell.query(acmePath, "SELECT instance FROM dfe_owner") == "acme")
        let aside = try #require(directory.listing("databases").first { $0.hasPrefix("acme.sqlite.foreign-") })
        #expect(try SQLiteShell.query(directory.path("databases/\(aside)"), "SELECT id FROM orders") == "42")
        #expect(try SQLiteShell.query(beta, "SELECT id FROM orders") == "42")
    }

    @Test func movingAsideNeverOverwritesAnEarlierForeignFile() async throws {
        let directory = try DriverDirectory()
        let database = SQLiteDatabaseProvisioner(root: directory.path("databases"))
        let ctx = context(database, testSpec("acme"))
        let path = directory.path("databases/acme.sqlite")
        // Files moved aside earlier, named as the driver names them, for every second around now.
        let second = Int(Date().timeIntervalSince1970)
        let earlier = (second - 5...second + 60).map { "\(path).foreign-\($0)" }
        for file in earlier { try Files.write(file, "earlier foreign file") }
        try Files.write(path, "newer foreign file")
        _ = try await database.apply(ctx)
        for file in earlier {
            #expect(Files.bytes(file) == Data("earlier foreign file".utf8), "\(file)")
        }
        let kept = directory.listing("databases").filter {
            Files.bytes(directory.path("databases/\($0)")) == Data("newer foreign file".utf8)
        }
        #expect(kept.count == 1)
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
        let error = await #expect(throws: DriverError.self) {
            try await database.delete(pruneContext("acme", recorded: recordedPath(.database, beta, driver: "sqlite")))
        }
        #expect(error?.message.contains("belongs to instance 'beta'") == true, "\(String(describing: error))")
        #expect(error?.retryable == false)
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
        #expect(error?.message.contains("not below") == true)
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
}
