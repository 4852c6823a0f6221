import DFECore
import DFEReconciler
import DFETestSupport
import Foundation
import Testing

/// The prune matrix: no flag, Retain, Delete, protect — checked on the data itself.
@Suite struct PruneTests {
    /// Applies one instance, writes customer data into its storage and database, then removes its manifest.
    func appliedThenRemoved(_ extra: String) async throws -> TemporaryWorkspace {
        let ws = try TemporaryWorkspace()
        try ws.addInstance("keep")
        try ws.addInstance("gone", extra: extra)
        _ = try await ws.reconciler().run(ReconcileOptions())
        try Data("customer data".utf8).write(to: URL(fileURLWithPath: ws.storagePath("gone") + "/applications/app.txt"))
        try SQLiteShell.execute(
            ws.databasePath("gone"), "CREATE TABLE orders (id INTEGER); INSERT INTO orders VALUES (42);")
        try ws.remove("manifests/gone.yaml")
        return ws
    }

    @Test func withoutPruneAGoneManifestIsOrphanedAndLeftAlone() async throws {
        let ws = try await appliedThenRemoved(
            "  database: {deletionPolicy: Delete}\n  storage: {deletionPolicy: Delete}")
        defer { ws.delete() }
        let report = try await ws.reconciler().run(ReconcileOptions())
        #expect(report.errors.isEmpty)
        #expect(report.summary.orphaned == 3)
        #expect(report.applied.isEmpty)
        #expect(try ws.recorded()["gone"]?.phase == .orphaned)
        #expect(FileManager.default.fileExists(atPath: ws.storagePath("gone") + "/applications/app.txt"))
        #expect(try SQLiteShell.query(ws.databasePath("gone"), "SELECT id FROM orders") == "42")
    }

    @Test func pruneWithRetainForgetsButKeepsDataAndALaterManifestAdoptsIt() async throws {
        let ws = try await appliedThenRemoved("")
        defer { ws.delete() }
        let reconciler = ws.reconciler()
        let plan = try await reconciler.run(ReconcileOptions(dryRun: true, prune: true))
        #expect(
            plan.plan.changes.map { "\($0.resource.rawValue):\($0.action.rawValue)" } == [
                "instance:delete", "database:retain", "storage:retain",
            ])
        let report = try await reconciler.run(ReconcileOptions(prune: true))
        #expect(report.errors.isEmpty)
        #expect(try ws.recorded()["gone"] == nil)
        #expect(!FileManager.default.fileExists(atPath: ws.metadataPath("gone")))
        #expect(FileManager.default.fileExists(atPath: ws.storagePath("gone") + "/applications/app.txt"))
        #expect(try SQLiteShell.query(ws.databasePath("gone"), "SELECT id FROM orders") == "42")

        try ws.addInstance("gone")
        let adopt = try await reconciler.run(ReconcileOptions(dryRun: true))
        #expect(adopt.plan.changes.map(\.reason) == ["adopt", "adopt", "new"])
        _ = try await reconciler.run(ReconcileOptions())
        #expect(try ws.recorded()["gone"]?.phase == .ready)
        #expect(FileManager.default.fileExists(atPath: ws.storagePath("gone") + "/applications/app.txt"))
        #expect(try SQLiteShell.query(ws.databasePath("gone"), "SELECT id FROM orders") == "42")
    }

    @Test func pruneWithDeleteRemovesInstanceDatabaseAndStorage() async throws {
        let ws = try await appliedThenRemoved(
            "  database: {deletionPolicy: Delete}\n  storage: {deletionPolicy: Delete}")
        defer { ws.delete() }
        let report = try await ws.reconciler().run(ReconcileOptions(prune: true))
        #expect(report.errors.isEmpty)
        #expect(
            report.applied.map { "\($0.resource.rawValue):\($0.action.rawValue)" } == [
                "instance:delete", "database:delete", "storage:delete",
            ])
        #expect(!FileManager.default.fileExists(atPath: ws.storagePath("gone")))
        #expect(!FileManager.default.fileExists(atPath: ws.databasePath("gone")))
        #expect(!FileManager.default.fileExists(atPath: ws.metadataPath("gone")))
        #expect(try ws.recorded()["gone"] == nil)
        // The owner tree and the other instance are untouched.
        #expect(FileManager.default.fileExists(atPath: ws.storagePath("keep")))
        #expect(FileManager.default.fileExists(atPath: ws.databasePath("keep")))
    }

    @Test func protectIsRememberedAndBlocksPruneEvenWithDelete() async throws {
        let ws = try await appliedThenRemoved(
            "  protect: true\n  database: {deletionPolicy: Delete}\n  storage: {deletionPolicy: Delete}")
        defer { ws.delete() }
        let report = try await ws.reconciler().run(ReconcileOptions(prune: true))
        #expect(report.errors.isEmpty)
        #expect(report.applied.isEmpty)
        #expect(report.warnings.contains { $0.contains("gone is protected") && $0.contains("protect: false") })
        #expect(FileManager.default.fileExists(atPath: ws.storagePath("gone") + "/applications/app.txt"))
        #expect(try SQLiteShell.query(ws.databasePath("gone"), "SELECT id FROM orders") == "42")
        #expect(try ws.recorded()["gone"]?.protect == true)
    }
}
