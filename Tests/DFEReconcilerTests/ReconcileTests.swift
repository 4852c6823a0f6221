import DFECore
import DFEReconciler
import DFEState
import DFETestSupport
import Foundation
import Testing

@Suite struct ReconcileTests {
    func workspaceWithThree() throws -> TemporaryWorkspace {
        let ws = try TemporaryWorkspace()
        try ws.addInstance("alpha", owner: "a@example.com")
        try ws.addInstance("beta", owner: "a@example.com", extra: "  offerings: {instance-version: \"6.2\"}")
        try ws.addInstance("gamma", owner: "g@example.com")
        return ws
    }

    @Test func threeManifestsPlanNineCreatesThenConvergeToNineUnchanged() async throws {
        let ws = try workspaceWithThree()
        defer { ws.delete() }
        let reconciler = ws.reconciler()
        let plan = try await reconciler.run(ReconcileOptions(dryRun: true))
        #expect(plan.summary.create == 9)
        #expect(plan.summary.hasPendingChanges)
        #expect(
            plan.plan.changes.map(\.resource)
                == Array(repeating: [.storage, .database, .instance], count: 3).flatMap { $0 })

        let applied = try await reconciler.run(ReconcileOptions())
        #expect(applied.errors.isEmpty)
        #expect(applied.applied.count == 9)
        for name in ["alpha", "beta", "gamma"] {
            #expect(FileManager.default.fileExists(atPath: ws.metadataPath(name)))
            #expect(FileManager.default.fileExists(atPath: ws.databasePath(name)))
        }
        let again = try await reconciler.run(ReconcileOptions(dryRun: true))
        #expect(again.summary.unchanged == 9)
        #expect(!again.summary.hasPendingChanges)
        let phases = try ws.recorded().mapValues(\.phase)
        #expect(phases == ["alpha": .ready, "beta": .ready, "gamma": .ready])
    }

    @Test func dryRunLeavesTheWorkspaceByteIdenticalBeforeAndAfterApply() async throws {
        let ws = try workspaceWithThree()
        defer { ws.delete() }
        let reconciler = ws.reconciler()
        let fresh = try ws.treeDigest()
        _ = try await reconciler.run(ReconcileOptions(dryRun: true))
        #expect(try ws.treeDigest() == fresh)
        #expect(!ws.exists("var"))

        _ = try await reconciler.run(ReconcileOptions())
        try ws.addInstance("delta")
        try FileManager.default.removeItem(atPath: ws.storagePath("alpha", owner: "a@example.com") + "/applications")
        let before = try ws.treeDigest()
        let plan = try await reconciler.run(ReconcileOptions(dryRun: true, prune: true))
        #expect(plan.summary.create == 3)
        #expect(plan.summary.update == 1)
        #expect(try ws.treeDigest() == before)
    }

    @Test func changingAnOfferingPlansExactlyOneInstanceUpdateAndKeepsTheAppKey() async throws {
        let ws = try workspaceWithThree()
        defer { ws.delete() }
        let reconciler = ws.reconciler()
        _ = try await reconciler.run(ReconcileOptions())
        let keyBefore = try #require(ws.metadata("beta")["appKey"] as? [String: String])

        try ws.addInstance("beta", owner: "a@example.com", extra: "  offerings: {instance-version: \"7.4\"}")
        let plan = try await reconciler.run(ReconcileOptions(dryRun: true))
        #expect(plan.plan.changes.count == 1)
        let change = try #require(plan.plan.changes.first)
        #expect(change.instance == "beta")
        #expect(change.resource == .instance)
        #expect(change.action == .update)
        #expect(change.fieldChanges == [FieldChange(field: "offerings.instance-version", old: "6.2", new: "7.4")])

        _ = try await reconciler.run(ReconcileOptions())
        let document = try ws.metadata("beta")
        #expect(
            (document["instance"] as? [String: Any])?["offerings"] as? [String: String] == ["instance-version": "7.4"])
        #expect(document["appKey"] as? [String: String] == keyBefore)
    }

    @Test func driftOfStorageDatabaseAndMetadataIsPlannedAsDriftAndRepaired() async throws {
        let ws = try workspaceWithThree()
        defer { ws.delete() }
        let reconciler = ws.reconciler()
        _ = try await reconciler.run(ReconcileOptions())
        let keyBefore = try #require(ws.metadata("gamma")["appKey"] as? [String: String])

        try FileManager.default.removeItem(atPath: ws.storagePath("alpha", owner: "a@example.com"))
        try FileManager.default.removeItem(atPath: ws.databasePath("beta"))
        var edited = try ws.read(ws.metadataPath("gamma"))
        edited = edited.replacingOccurrences(of: "\"active\"", with: "\"locked\"")
        try Data(edited.utf8).write(to: URL(fileURLWithPath: ws.metadataPath("gamma")))

        let plan = try await reconciler.run(ReconcileOptions(dryRun: true))
        let changes = plan.plan.changes.map {
            "\($0.instance)/\($0.resource.rawValue)/\($0.action.rawValue)/\($0.reason)"
        }
        #expect(changes == ["alpha/storage/create/drift", "beta/database/create/drift", "gamma/instance/update/drift"])

        let applied = try await reconciler.run(ReconcileOptions())
        #expect(applied.errors.isEmpty)
        var isDirectory: ObjCBool = false
        #expect(
            FileManager.default.fileExists(
                atPath: ws.storagePath("alpha", owner: "a@example.com") + "/.private/logs", isDirectory: &isDirectory))
        #expect(FileManager.default.fileExists(atPath: ws.databasePath("beta")))
        #expect(((try ws.metadata("gamma"))["instance"] as? [String: Any])?["platformState"] as? String == "active")
        #expect(try ws.metadata("gamma")["appKey"] as? [String: String] == keyBefore)
        let after = try await reconciler.run(ReconcileOptions(dryRun: true))
        #expect(!after.summary.hasPendingChanges)
    }

    @Test func aDatabaseOfAnotherInstanceIsATerminalConflictThatTheControllerDoesNotRetry() async throws {
        let ws = try workspaceWithThree()
        defer { ws.delete() }
        let clock = ManualClock()
        let reconciler = ws.reconciler(clock: clock)
        _ = try await reconciler.run(ReconcileOptions())
        // Put alpha's database where beta's belongs: owned by another instance.
        try FileManager.default.removeItem(atPath: ws.databasePath("beta"))
        try FileManager.default.copyItem(atPath: ws.databasePath("alpha"), toPath: ws.databasePath("beta"))
        let before = try Data(contentsOf: URL(fileURLWithPath: ws.databasePath("beta")))
        let plan = try await reconciler.run(ReconcileOptions(dryRun: true))
        #expect(plan.plan.changes.isEmpty)
        #expect(plan.summary.failed == 1)
        #expect(plan.errors.first?.message.contains("belongs to instance 'alpha'") == true)
        let report = try await reconciler.run(ReconcileOptions())
        #expect(report.errors.map(\.instance) == ["beta"])
        var beta = try #require(try ws.recorded()["beta"])
        #expect(beta.phase == .failed)
        #expect(beta.terminal)
        #expect(beta.nextAttemptAt == nil)
        #expect(try Data(contentsOf: URL(fileURLWithPath: ws.databasePath("beta"))) == before)
        let files = try FileManager.default.contentsOfDirectory(
            atPath: ws.root.appendingPathComponent("var/databases").path)
        #expect(files.sorted() == ["alpha.sqlite", "beta.sqlite", "gamma.sqlite"])

        // The controller (honouring backoff) never retries it, however long it waits.
        clock.advance(by: 86_400)
        let controller = try await reconciler.run(ReconcileOptions(honourBackoff: true))
        #expect(controller.errors.isEmpty)
        #expect(try ws.recorded()["beta"]?.attempts == 1)

        // A run by hand retries at once (and fails again: still not ours).
        _ = try await reconciler.run(ReconcileOptions())
        beta = try #require(try ws.recorded()["beta"])
        #expect(beta.attempts == 2)
        #expect(beta.terminal)

        // Once the operator moves the file away, a run by hand converges and clears the terminal mark.
        try FileManager.default.removeItem(atPath: ws.databasePath("beta"))
        let fixed = try await reconciler.run(ReconcileOptions())
        #expect(fixed.errors.isEmpty)
        #expect(try ws.recorded()["beta"]?.terminal == false)
        #expect(try ws.recorded()["beta"]?.phase == .ready)
    }

    @Test func aTerminalFailureIsRetriedByTheControllerWhenTheManifestChanges() async throws {
        let ws = try workspaceWithThree()
        defer { ws.delete() }
        let reconciler = ws.reconciler(clock: ManualClock())
        try FileManager.default.createDirectory(
            at: ws.root.appendingPathComponent("var/databases"), withIntermediateDirectories: true)
        try Data("not ours".utf8).write(to: URL(fileURLWithPath: ws.databasePath("beta")))
        _ = try await reconciler.run(ReconcileOptions())
        #expect(try ws.recorded()["beta"]?.terminal == true)
        let unchanged = try await reconciler.run(ReconcileOptions(honourBackoff: true))
        #expect(unchanged.errors.isEmpty)
        try ws.addInstance("beta", extra: "  state: locked")
        let changed = try await reconciler.run(ReconcileOptions(honourBackoff: true))
        #expect(changed.errors.map(\.instance) == ["beta"])
        #expect(try ws.recorded()["beta"]?.attempts == 1)
    }
}

@Suite struct RelocationTests {
    @Test func changingTheOwnerNeverRepointsStorageAtAnEmptyTreeUntilTheDataIsMoved() async throws {
        let ws = try TemporaryWorkspace()
        defer { ws.delete() }
        try ws.addInstance("alpha", owner: "old@example.com")
        let reconciler = ws.reconciler()
        _ = try await reconciler.run(ReconcileOptions())
        let oldPath = ws.storagePath("alpha", owner: "old@example.com")
        try Data("customer data".utf8).write(to: URL(fileURLWithPath: oldPath + "/applications/app.txt"))

        try ws.addInstance("alpha", owner: "new@example.com")
        let report = try await reconciler.run(ReconcileOptions())
        #expect(report.errors.map(\.resource) == [.storage])
        #expect(report.errors.first?.message.contains("storage would move from \(oldPath)") == true)
        #expect(report.applied.isEmpty)
        #expect(FileManager.default.fileExists(atPath: oldPath + "/applications/app.txt"))
        #expect(!(try ws.metadata("alpha")["storage"] as? [String: Any] ?? [:]).isEmpty)

        // The operator moves the data by hand; the next run adopts the new place.
        let newPath = ws.storagePath("alpha", owner: "new@example.com")
        try FileManager.default.createDirectory(
            atPath: (newPath as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        try FileManager.default.moveItem(atPath: oldPath, toPath: newPath)
        let moved = try await reconciler.run(ReconcileOptions())
        #expect(moved.errors.isEmpty)
        #expect(FileManager.default.fileExists(atPath: newPath + "/applications/app.txt"))
        let storage = try #require(ws.metadata("alpha")["storage"] as? [String: Any])
        #expect(storage["path"] as? String == newPath)
    }

    @Test func changingTheDatabaseDriverIsRefusedNotMigrated() async throws {
        let provisioners =
            TemporaryWorkspace.defaultProvisioners + """
                  other:
                    provides:
                      instance: {driver: dreamfactory, root: var/instances, domain: dfe.localhost}
                      storage: {driver: local, root: var/storage, zone: local}
                      database: {driver: sqlite, root: var/other-databases}

                """
        let ws = try TemporaryWorkspace(provisioners: provisioners)
        defer { ws.delete() }
        try ws.addInstance("alpha")
        let reconciler = ws.reconciler()
        _ = try await reconciler.run(ReconcileOptions())
        try ws.addInstance("alpha", extra: "  provisioner: other")
        let report = try await reconciler.run(ReconcileOptions())
        #expect(report.errors.contains { $0.resource == .database && $0.message.contains("database would move") })
        #expect(FileManager.default.fileExists(atPath: ws.databasePath("alpha")))
    }
}
