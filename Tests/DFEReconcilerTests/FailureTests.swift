import DFECore
import DFEReconciler
import DFEState
import DFETestSupport
import Foundation
import Testing

/// Failure isolation, backoff, the lease and recovery of interrupted steps.
@Suite struct FailureTests {
    /// A workspace with three instances where a regular file blocks `beta`'s storage directory.
    func blockedWorkspace() throws -> TemporaryWorkspace {
        let ws = try TemporaryWorkspace()
        for name in ["alpha", "beta", "gamma"] { try ws.addInstance(name) }
        let blocked = ws.storagePath("beta")
        try FileManager.default.createDirectory(
            atPath: (blocked as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        try Data("not a directory".utf8).write(to: URL(fileURLWithPath: blocked))
        return ws
    }

    @Test func aFileInTheWayFailsOnlyItsInstanceWithBackoffAndRemovingItConverges() async throws {
        let ws = try blockedWorkspace()
        defer { ws.delete() }
        let clock = ManualClock()
        let reconciler = ws.reconciler(clock: clock)
        let report = try await reconciler.run(ReconcileOptions())
        #expect(report.errors.map(\.instance) == ["beta"])
        #expect(report.errors.first?.message.contains(ws.storagePath("beta")) == true)
        #expect(report.summary.failed == 1)
        var state = try ws.recorded()
        #expect(state["alpha"]?.phase == .ready)
        #expect(state["gamma"]?.phase == .ready)
        let beta = try #require(state["beta"])
        #expect(beta.phase == .failed)
        #expect(beta.attempts == 1)
        #expect(beta.lastError?.contains("a file is in the way") == true)
        #expect(beta.nextAttemptAt == clock.now().timeIntervalSince1970 + 5)

        // A second failure doubles the delay.
        _ = try await reconciler.run(ReconcileOptions())
        state = try ws.recorded()
        #expect(state["beta"]?.attempts == 2)
        #expect(state["beta"]?.nextAttemptAt == clock.now().timeIntervalSince1970 + 10)

        try FileManager.default.removeItem(atPath: ws.storagePath("beta"))
        let fixed = try await reconciler.run(ReconcileOptions())
        #expect(fixed.errors.isEmpty)
        state = try ws.recorded()
        #expect(state["beta"]?.phase == .ready)
        #expect(state["beta"]?.attempts == 0)
        #expect(state["beta"]?.nextAttemptAt == nil)
        #expect(!(try await reconciler.run(ReconcileOptions(dryRun: true))).summary.hasPendingChanges)
    }

    @Test func theControllerHonoursBackoffUntilItEndsButAChangedManifestRetriesAtOnce() async throws {
        let ws = try blockedWorkspace()
        defer { ws.delete() }
        let clock = ManualClock()
        let reconciler = ws.reconciler(clock: clock)
        _ = try await reconciler.run(ReconcileOptions())
        #expect(try ws.recorded()["beta"]?.attempts == 1)

        // Within the backoff the controller leaves beta alone.
        clock.advance(by: 2)
        var report = try await reconciler.run(ReconcileOptions(honourBackoff: true))
        #expect(report.errors.isEmpty)
        #expect(try ws.recorded()["beta"]?.attempts == 1)

        // A changed manifest overrides the backoff, and restarts the count.
        try ws.addInstance("beta", extra: "  state: locked")
        report = try await reconciler.run(ReconcileOptions(honourBackoff: true))
        #expect(report.errors.map(\.instance) == ["beta"])
        #expect(try ws.recorded()["beta"]?.attempts == 1)

        // Once the backoff has ended it is retried.
        clock.advance(by: 6)
        report = try await reconciler.run(ReconcileOptions(honourBackoff: true))
        #expect(report.errors.map(\.instance) == ["beta"])
        #expect(try ws.recorded()["beta"]?.attempts == 2)
    }

    @Test func backoffIsCappedAtTheConfiguredMaximum() {
        let backoff = Backoff(initial: .seconds(5), maximum: .seconds(300))
        #expect(backoff.delay(afterAttempts: 1) == .seconds(5))
        #expect(backoff.delay(afterAttempts: 2) == .seconds(10))
        #expect(backoff.delay(afterAttempts: 7) == .seconds(300))
        #expect(backoff.delay(afterAttempts: 1000) == .seconds(300))
    }

    @Test func aSecondWriterIsRefusedNamingTheLeaseHolder() async throws {
        let ws = try TemporaryWorkspace()
        defer { ws.delete() }
        try ws.addInstance("alpha")
        let store = try StateStore(url: ws.stateURL)
        let parent = getppid()
        try await store.acquireLease(
            LeaseIdentity(pid: parent, host: "elsewhere", bootID: "b", pidNamespace: "1", startTime: "1"),
            ttl: .seconds(60), at: Date())
        store.close()
        await #expect {
            _ = try await ws.reconciler().run(ReconcileOptions())
        } throws: { error in
            "\(error)".contains("locked by \(parent)@elsewhere")
        }
        #expect(!ws.exists("var/instances/alpha"))
    }

    @Test func aLeaseOfADeadProcessOnThisHostIsFreeAtOnce() async throws {
        let ws = try TemporaryWorkspace()
        defer { ws.delete() }
        try ws.addInstance("alpha")
        // A child that has exited: its pid is no longer alive.
        let child = Process()
        child.executableURL = URL(fileURLWithPath: "/bin/true")
        try child.run()
        child.waitUntilExit()
        var gone = LeaseIdentity.current()
        gone.pid = child.processIdentifier
        gone.startTime = "1"
        let store = try StateStore(url: ws.stateURL)
        try await store.acquireLease(gone, ttl: .seconds(60), at: Date())
        store.close()
        let report = try await ws.reconciler().run(ReconcileOptions())
        #expect(report.errors.isEmpty)
        #expect(ws.exists("var/instances/alpha/instance.json"))
    }

    @Test func stepsInterruptedByAKilledRunAreMarkedAndFinished() async throws {
        let ws = try TemporaryWorkspace()
        defer { ws.delete() }
        try ws.addInstance("alpha")
        // Simulate a run killed after journaling the intent of alpha's storage step.
        let store = try StateStore(url: ws.stateURL)
        let run = try await store.beginRun(holder: "1@gone", revision: nil, at: Date())
        _ = try await store.recordIntent(
            run: run, change: ResourceChange(instance: "alpha", resource: .storage, action: .create, reason: "new"),
            at: Date())
        store.close()

        let report = try await ws.reconciler().run(ReconcileOptions())
        #expect(report.errors.isEmpty)
        #expect(report.warnings.contains { $0.contains("interrupted") && $0.contains("alpha/storage create") })
        let reopened = try StateStore(url: ws.stateURL)
        defer { reopened.close() }
        let history = try await reopened.history(instance: "alpha")
        #expect(history.first?.status == .interrupted)
        #expect(history.filter { $0.status == .succeeded }.map(\.resource) == [.storage, .database, .instance])
    }
}

@Suite struct LeaseLossTests {
    @Test func aRunThatLostItsLeaseStartsNoFurtherSteps() async throws {
        let ws = try TemporaryWorkspace()
        defer { ws.delete() }
        let store = try StateStore(url: ws.stateURL)
        defer { store.close() }
        let other = try StateStore(url: ws.stateURL)
        defer { other.close() }
        let now = Date()
        try await store.acquireLease(LeaseIdentity.current(), ttl: .seconds(15), at: now)
        let run = try await store.beginRun(holder: "me", revision: nil, at: now)
        // Another process takes over after expiry.
        try await other.acquireLease(
            LeaseIdentity(pid: 2222, host: "there", bootID: "b", pidNamespace: "1", startTime: "1"),
            ttl: .seconds(15), at: now.addingTimeInterval(20))
        await #expect(throws: StateError.self) {
            try await store.renewLease(ttl: .seconds(15), at: now.addingTimeInterval(21))
        }
        #expect(store.hasLostLease)
        await #expect(throws: StateError.self) {
            _ = try await store.recordIntent(
                run: run, change: ResourceChange(instance: "a", resource: .storage, action: .create, reason: "new"),
                at: now)
        }
    }
}
