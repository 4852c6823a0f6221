import DFECore
import DFEPostgres
import DFEState
import DFEStatePostgres
import DFETestSupport
import Foundation
import Testing

/// The backend of a test state, with the PostgreSQL backend registered.
func backend(_ state: TestState) throws -> any StateBackend {
    PostgresStateBackend.register()
    return try StateBackends.backend(for: state.location, schema: state.schema)
}

/// Runs raw SQL on the test cluster as its superuser (to set up roles or damage a state on purpose).
func superuserSQL(_ sql: String, _ parameters: [String] = []) async throws -> [[String?]] {
    let cluster = try await TestCluster.shared()
    let connection = try PGConnection.connect(
        PGConnectParameters(
            host: "127.0.0.1", port: cluster.port, database: "postgres", user: "postgres",
            password: Secret(TestCluster.adminPassword), sslmode: "disable", connectTimeoutSeconds: 10))
    if parameters.isEmpty && sql.contains(";") {
        try connection.execute(sql)
        return []
    }
    return try connection.query(sql, parameters)
}

/// The same state-store behaviour, pinned once and run against every backend on a real database.
@Suite struct StateBackendTests {
    static let ttl = Duration.seconds(15)

    @Test(arguments: BackendKind.allCases)
    func aNewStateIsCreatedOnOpenAndReadsBeforeThatWriteNothing(_ kind: BackendKind) async throws {
        guard TestState.available(kind) else { return }
        let state = try await TestState(kind)
        let backend = try backend(state)
        #expect(try !backend.exists())
        #expect(try backend.snapshot(withFields: true).isEmpty)
        #expect(try backend.history(instance: nil, limit: 10).isEmpty)
        #expect(try backend.appliedFields(keys: [ResourceKey("acme", .storage)]).isEmpty)
        #expect(try !backend.exists(), "reads must not create a state")
        let store = try backend.open()
        defer { store.close() }
        #expect(try backend.exists())
        #expect(try await store.instances(withFields: true).isEmpty)
        #expect(try await store.leaseHolder() == nil)
        // Opening again (another process, a later run) finds the migrations done.
        let again = try backend.open()
        again.close()
    }

    @Test(arguments: BackendKind.allCases)
    func anIntentIsCommittedBeforeItsOutcomeAndTheOutcomeWithTheResourceRow(_ kind: BackendKind) async throws {
        guard TestState.available(kind) else { return }
        let state = try await TestState(kind)
        let backend = try backend(state)
        let store = try backend.open()
        defer { store.close() }
        try await store.saveInstance(instance("acme"), at: now)
        let run = try await store.beginRun(holder: "1@node", revision: "abc", at: now)
        let intent = try await store.recordIntent(run: run, change: change("acme", .storage), at: now)
        // Another reader sees the intent, and no resource yet: the side effect may run now.
        let started = try backend.history(instance: "acme", limit: 10)
        #expect(started.map(\.status) == [.started])
        #expect(started.first?.runID == run)
        #expect(try backend.snapshot(withFields: true)["acme"]?.resources.isEmpty == true)
        try await store.recordSuccess(
            intent, instance: "acme", outcome: .recorded(resource(.storage)), at: now.addingTimeInterval(1))
        #expect(try backend.history(instance: "acme", limit: 10).map(\.status) == [.succeeded])
        let recorded = try #require(try backend.snapshot(withFields: true)["acme"])
        #expect(recorded.resources[.storage]?.outputs["path"] == "/srv/x")
        #expect(recorded.resources[.storage]?.fields == FieldSet(["path": "/srv/x"]))
        #expect(recorded.labels == ["team": "acme"])
        #expect(recorded.specHash == "hash-acme")
        let fields = try backend.appliedFields(keys: [ResourceKey("acme", .storage), ResourceKey("acme", .database)])
        #expect(fields == [ResourceKey("acme", .storage): FieldSet(["path": "/srv/x"])])
        #expect(try await store.appliedFields(keys: [ResourceKey("acme", .storage)]) == fields)
        #expect(try backend.snapshot(withFields: false)["acme"]?.resources[.storage]?.fieldsJSON == nil)

        let delete = try await store.recordIntent(run: run, change: change("acme", .storage, .delete), at: now)
        try await store.recordSuccess(delete, instance: "acme", outcome: .forgotten(.storage), at: now)
        #expect(try backend.snapshot(withFields: true)["acme"]?.resources.isEmpty == true)
        let failed = try await store.recordIntent(run: run, change: change("acme", .database), at: now)
        try await store.recordFailure(failed, error: "disk full", at: now)
        let history = try await store.history(instance: nil, limit: 2)
        #expect(history.map(\.status) == [.succeeded, .failed])
        #expect(history.last?.error == "disk full")
        try await store.finishRun(run, status: "failed", summary: "create=1", at: now)
        try await store.forgetInstance("acme")
        #expect(try backend.snapshot(withFields: true).isEmpty)
    }

    @Test(arguments: BackendKind.allCases)
    func stepsLeftStartedByAKilledRunAreFoundAndMarkedInterrupted(_ kind: BackendKind) async throws {
        guard TestState.available(kind) else { return }
        let state = try await TestState(kind)
        let backend = try backend(state)
        do {
            let killed = try backend.open()
            try await killed.saveInstance(instance("acme"), at: now)
            let run = try await killed.beginRun(holder: "1@node", revision: nil, at: now)
            _ = try await killed.recordIntent(run: run, change: change("acme", .database), at: now)
            killed.close()
        }
        let next = try backend.open()
        defer { next.close() }
        let interrupted = try await next.recoverInterrupted(at: now)
        #expect(interrupted.map(\.instance) == ["acme"])
        #expect(interrupted.map(\.resource) == [.database])
        #expect(try await next.recoverInterrupted(at: now).isEmpty)
        #expect(try backend.history(instance: nil, limit: 10).map(\.status) == [.interrupted])
    }

    @Test(arguments: BackendKind.allCases)
    func aLiveLeaseIsRefusedNamingItsHolderAndAnExpiredOneIsTakenOver(_ kind: BackendKind) async throws {
        guard TestState.available(kind) else { return }
        let state = try await TestState(kind)
        let backend = try backend(state)
        let first = try backend.open()
        defer { first.close() }
        let second = try backend.open()
        defer { second.close() }
        // The holder is alive on this host; the contender on another machine cannot prove it gone.
        try await first.acquireLease(local(getppid()), ttl: Self.ttl, at: now)
        do {
            try await second.acquireLease(remote(getpid(), host: "node-b"), ttl: Self.ttl, at: now)
            Issue.record("a live lease was taken")
        } catch StateError.leaseHeld(let holder) {
            #expect(holder.description == "\(getppid())@\(LeaseIdentity.hostName())")
        }
        #expect(try await second.leaseHolder()?.identity == local(getppid()))
        // After 15 s without renewal anyone may take it.
        let later = now.addingTimeInterval(16)
        try await second.acquireLease(remote(getpid(), host: "node-b"), ttl: Self.ttl, at: later)
        #expect(try await first.leaseHolder()?.description == "\(getpid())@node-b")
        try first.releaseLease()
        #expect(try await first.leaseHolder() != nil, "only the holding epoch releases")
        try second.releaseLease()
        #expect(try await first.leaseHolder() == nil)
    }

    @Test(arguments: BackendKind.allCases)
    func aLeaseWhoseHolderIsGoneOnThisHostIsFreeAtOnce(_ kind: BackendKind) async throws {
        guard TestState.available(kind) else { return }
        let state = try await TestState(kind)
        let backend = try backend(state)
        let store = try backend.open()
        defer { store.close() }
        try await store.acquireLease(local(999_999, startTime: "1"), ttl: Self.ttl, at: now)
        try await store.acquireLease(LeaseIdentity.current(), ttl: Self.ttl, at: now)
        #expect(try await store.leaseHolder()?.pid == getpid())
        await #expect(throws: StateError.self, "a lease renewed just now is live") {
            _ = try await store.forceUnlock(remote(1), at: now.addingTimeInterval(1))
        }
        #expect(try await store.forceUnlock(remote(1), at: now.addingTimeInterval(16))?.pid == getpid())
        #expect(try await store.leaseHolder() == nil)
    }

    @Test(arguments: BackendKind.allCases)
    func aStoreThatLostItsLeaseWritesNothingMore(_ kind: BackendKind) async throws {
        guard TestState.available(kind) else { return }
        let state = try await TestState(kind)
        let backend = try backend(state)
        let stalled = try backend.open()
        defer { stalled.close() }
        let successor = try backend.open()
        defer { successor.close() }
        try await stalled.acquireLease(remote(getppid(), host: "node-a"), ttl: Self.ttl, at: now)
        let run = try await stalled.beginRun(holder: "a", revision: nil, at: now)
        try await successor.acquireLease(
            remote(getpid(), host: "node-b"), ttl: Self.ttl, at: now.addingTimeInterval(20))
        await #expect(throws: StateError.self) {
            _ = try await stalled.recordIntent(run: run, change: change("late", .storage), at: now)
        }
        #expect(stalled.hasLostLease)
        await #expect(throws: StateError.self) { try await stalled.saveInstance(instance("late"), at: now) }
        await #expect(throws: StateError.self) {
            try await stalled.renewLease(ttl: Self.ttl, at: now)
        }
        // Releasing with a stale epoch leaves the successor's lease alone.
        try stalled.releaseLease()
        #expect(try await successor.leaseHolder()?.host == "node-b")
        #expect(try backend.snapshot(withFields: true)["late"] == nil)
        #expect(try backend.history(instance: nil, limit: 10).isEmpty)
        try await successor.saveInstance(instance("acme"), at: now)
        #expect(try backend.snapshot(withFields: true).keys.sorted() == ["acme"])
    }

    @Test(arguments: BackendKind.allCases)
    func aStateWrittenByANewerDfeIsRefusedByReadsAndRuns(_ kind: BackendKind) async throws {
        guard TestState.available(kind) else { return }
        let state = try await TestState(kind)
        let backend = try backend(state)
        try backend.open().close()
        switch kind {
        case .sqlite:
            try SQLiteShell.execute(state.location.path, "INSERT INTO grdb_migrations (identifier) VALUES ('v99')")
        case .postgres:
            _ = try await superuserSQL("INSERT INTO \(state.schema).schema_migrations (identifier) VALUES ('v99')")
        }
        #expect(throws: StateError.self) { _ = try backend.open() }
        if kind == .postgres {
            #expect(throws: StateError.self) { _ = try backend.snapshot(withFields: false) }
        }
    }

    @Test(arguments: BackendKind.allCases)
    func historyIsNewestLastLimitedAndPerInstance(_ kind: BackendKind) async throws {
        guard TestState.available(kind) else { return }
        let state = try await TestState(kind)
        let backend = try backend(state)
        let store = try backend.open()
        defer { store.close() }
        let run = try await store.beginRun(holder: "h", revision: nil, at: now)
        for name in ["a", "b", "a", "c"] {
            let id = try await store.recordIntent(run: run, change: change(name, .storage), at: now)
            try await store.recordFailure(id, error: "x", at: now)
        }
        #expect(try backend.history(instance: nil, limit: 2).map(\.instance) == ["a", "c"])
        #expect(try backend.history(instance: "a", limit: 10).count == 2)
        #expect(try await store.history(instance: "b", limit: 10).map(\.instance) == ["b"])
        let ids = try backend.history(instance: nil, limit: 10).map(\.id)
        #expect(ids == ids.sorted())
    }

    @Test func aPasswordInTheStateURLIsRefusedWithoutEchoingIt() throws {
        PostgresStateBackend.register()
        let url = try #require(URL(string: "postgres://dfe:hunter2@db.example:5432/dfe"))
        do {
            _ = try StateBackends.backend(for: url)
            Issue.record("a password in the URL was accepted")
        } catch {
            #expect("\(error)".contains("PGPASSWORD"))
            #expect(!"\(error)".contains("hunter2"))
        }
        let bad = try #require(URL(string: "postgres://dfe@db.example/dfe?sslmode=sometimes"))
        #expect(throws: StateError.self) { _ = try StateBackends.backend(for: bad) }
        let schema = try #require(URL(string: "postgres://dfe@db.example/dfe"))
        #expect(throws: StateError.self) { _ = try StateBackends.backend(for: schema, schema: "Robert'); DROP") }
        let parsed = try PostgresStateURL(try #require(URL(string: "postgresql://ci@db:6432/state?sslmode=require")))
        #expect(parsed.description == "postgres://ci@db:6432/state (schema dfe)")
        #expect(parsed.sslmode == "require")
    }

    @Test func aReadOnlyRoleCanPlanStatusAndHistoryAndWritesNothing() async throws {
        guard TestCluster.enabled else { return }
        let state = try await TestState(.postgres)
        let writer = try backend(state)
        let store = try writer.open()
        try await store.saveInstance(instance("acme"), at: now)
        let run = try await store.beginRun(holder: "h", revision: nil, at: now)
        let id = try await store.recordIntent(run: run, change: change("acme", .storage), at: now)
        try await store.recordSuccess(id, instance: "acme", outcome: .recorded(resource(.storage)), at: now)
        let role = "ro_\(state.schema)"
        _ = try await superuserSQL(
            """
            CREATE ROLE \(role) LOGIN PASSWORD 'postgres';
            GRANT USAGE ON SCHEMA \(state.schema) TO \(role);
            GRANT SELECT ON ALL TABLES IN SCHEMA \(state.schema) TO \(role);
            """)
        let before = try await superuserSQL(Self.fingerprint(state.schema))
        let cluster = try await TestCluster.shared()
        let reader = try StateBackends.backend(
            for: TestState.postgresURL(cluster, user: role), schema: state.schema)
        #expect(try reader.exists())
        #expect(try reader.snapshot(withFields: false).keys.sorted() == ["acme"])
        #expect(try reader.appliedFields(keys: [ResourceKey("acme", .storage)]).count == 1)
        #expect(try reader.history(instance: "acme", limit: 5).map(\.status) == [.succeeded])
        // A writer's open needs more than SELECT: it fails rather than half-writing.
        #expect(throws: StateError.self) { _ = try reader.open() }
        let after = try await superuserSQL(Self.fingerprint(state.schema))
        #expect(before == after)
    }

    /// Row counts, the newest change, the epoch, migrations and tables of the schema: any write changes it.
    static func fingerprint(_ schema: String) -> String {
        """
        SELECT (SELECT count(*) FROM \(schema).instances), (SELECT max(updated_at) FROM \(schema).instances),
            (SELECT count(*) FROM \(schema).journal), (SELECT count(*) FROM \(schema).runs),
            (SELECT count(*) FROM \(schema).lease), (SELECT epoch FROM \(schema).lease_epoch),
            (SELECT string_agg(identifier, ',' ORDER BY identifier) FROM \(schema).schema_migrations),
            (SELECT count(*) FROM pg_tables WHERE schemaname = '\(schema)')
        """
    }
}
