import DFECore
import DFEReconciler
import DFEState
import DFEStatePostgres
import DFETestSupport
import Foundation
import Testing

@Suite struct StateCopyTests {
    /// A state with every kind of row: instances (one protected, one backing off), resources, runs, journal.
    static func fill(_ store: any StateStoring) async throws {
        var backingOff = instance("globex")
        backingOff.phase = .failed
        backingOff.attempts = 3
        backingOff.nextAttemptAt = 1_800_000_123.5
        backingOff.lastError = "disk \"full\"\n"
        try await store.saveInstances([instance("acme", protect: true), backingOff], at: now)
        let run = try await store.beginRun(holder: "7@node", revision: "abc123", at: now)
        for kind in [ResourceKind.storage, .database] {
            let id = try await store.recordIntent(run: run, change: change("acme", kind), at: now)
            try await store.recordSuccess(id, instance: "acme", outcome: .recorded(resource(kind)), at: now)
        }
        let failed = try await store.recordIntent(run: run, change: change("globex", .storage), at: now)
        try await store.recordFailure(failed, error: "denied", at: now.addingTimeInterval(0.25))
        try await store.finishRun(run, status: "failed", summary: "create=2 failed=1", at: now.addingTimeInterval(1))
    }

    @Test func aStateCopiedFromSQLiteToPostgresAndBackIsTheSameRowForRow() async throws {
        guard TestCluster.enabled else { return }
        let original = try await TestState(.sqlite)
        let server = try await TestState(.postgres)
        let back = try await TestState(.sqlite)
        let a = try backend(original)
        let b = try backend(server)
        let c = try backend(back)
        let store = try a.open()
        try await Self.fill(store)
        store.close()

        let report = try await StateCopier.copy(from: a, to: b)
        #expect(report.rows["instances"] == 2)
        #expect(report.rows["resources"] == 2)
        #expect(report.rows["journal"] == 3)
        _ = try await StateCopier.copy(from: b, to: c)

        let (first, last) = (try a.open(), try c.open())
        defer {
            first.close()
            last.close()
        }
        #expect(try await first.exportTables() == (try await last.exportTables()))
        #expect(try c.snapshot(withFields: true) == (try a.snapshot(withFields: true)))
        #expect(try c.history(instance: nil, limit: 10) == (try a.history(instance: nil, limit: 10)))
        #expect(try b.snapshot(withFields: true) == (try a.snapshot(withFields: true)))
        // Both leases were released; new ids continue after the copied ones.
        let copy = try b.open()
        #expect(try await copy.leaseHolder() == nil)
        #expect(try await first.leaseHolder() == nil)
        #expect(try await copy.beginRun(holder: "x", revision: nil, at: now) == 2)
    }

    @Test(arguments: BackendKind.allCases)
    func aDestinationThatHoldsAStateIsRefusedAndLeftAlone(_ kind: BackendKind) async throws {
        guard TestState.available(kind) else { return }
        let source = try await TestState(.sqlite)
        let target = try await TestState(kind)
        let from = try backend(source)
        let to = try backend(target)
        let store = try from.open()
        try await Self.fill(store)
        store.close()
        let occupied = try to.open()
        try await occupied.saveInstance(instance("keep"), at: now)
        occupied.close()
        await #expect(throws: StateCopier.Failure.self) { _ = try await StateCopier.copy(from: from, to: to) }
        #expect(try to.snapshot(withFields: false).keys.sorted() == ["keep"])
        let empty = try await TestState(kind)
        await #expect(throws: StateCopier.Failure.self) { _ = try await StateCopier.copy(from: backend(empty), to: to) }
    }

    @Test func aCopyRefusesWhileAnotherProcessHoldsTheSourceLease() async throws {
        let source = try await TestState(.sqlite)
        let target = try await TestState(.sqlite)
        let from = try backend(source)
        let store = try from.open()
        defer { store.close() }
        try await Self.fill(store)
        try await store.acquireLease(remote(getppid(), host: "other-node"), ttl: .seconds(15), at: Date())
        await #expect(throws: StateError.self) { _ = try await StateCopier.copy(from: from, to: backend(target)) }
        #expect(try !backend(target).exists(), "the destination is not even created")
    }
}
