import DFECore
import DFEState
import DFETestSupport
import Foundation
import Testing

/// A private directory under the temp directory, removed by `delete()`.
final class StateDirectory: Sendable {
    let url: URL

    init() throws {
        url = URL(fileURLWithPath: NSTemporaryDirectory(), isDirectory: true)
            .appendingPathComponent("dfe-state-\(UUID().uuidString.prefix(8))", isDirectory: true)
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    }

    deinit { try? FileManager.default.removeItem(at: url) }

    var state: URL { url.appendingPathComponent("var/state.sqlite") }

    /// Every file below the directory with its mode and a digest of its bytes.
    func listing() throws -> [String] {
        guard let enumerator = FileManager.default.enumerator(atPath: url.path) else { return [] }
        var lines: [String] = []
        while let path = enumerator.nextObject() as? String {
            let full = url.appendingPathComponent(path).path
            let attributes = try FileManager.default.attributesOfItem(atPath: full)
            var line = "\(path) \(String((attributes[.posixPermissions] as? Int) ?? 0, radix: 8))"
            if (attributes[.type] as? FileAttributeType) == .typeRegular {
                line += " " + SHA256.hexString(SHA256.digest(try Data(contentsOf: URL(fileURLWithPath: full))))
            }
            lines.append(line)
        }
        return lines.sorted()
    }
}

/// The permission bits of a file.
func mode(_ path: String) -> Int? {
    (try? FileManager.default.attributesOfItem(atPath: path))?[.posixPermissions] as? Int
}

/// Whether a pid is a live process on this host.
let isAlive: @Sendable (Int32) -> Bool = { pid in kill(pid, 0) == 0 || errno == EPERM }

let now = Date(timeIntervalSince1970: 1_800_000_000)

func instance(_ name: String, protect: Bool = false) -> RecordedInstance {
    RecordedInstance(
        name: name, owner: "ops@example.com", provisioner: "dreamfactory", specHash: "hash-\(name)", phase: .ready,
        lastError: nil, attempts: 0, protect: protect, labels: ["team": "acme"])
}

func resource(_ kind: ResourceKind, path: String = "/srv/x") -> RecordedResource {
    RecordedResource(
        kind: kind, host: "dreamfactory", driver: kind == .storage ? "local" : "sqlite", specHash: "spec-\(kind)",
        fields: FieldSet(["path": path]), outputs: ["path": path, "clientSecret": "s3cret"])
}

func change(_ name: String, _ kind: ResourceKind, _ action: Action = .create) -> ResourceChange {
    ResourceChange(instance: name, resource: kind, action: action, reason: "new")
}

@Suite struct StateStoreTests {
    @Test func freshFileIsMigratedWalAndPrivate() async throws {
        let directory = try StateDirectory()
        #expect(!FileManager.default.fileExists(atPath: directory.state.path))
        let store = try StateStore(url: directory.state)
        defer { store.close() }
        #expect(try await store.instances().isEmpty)
        #expect(try await store.history().isEmpty)
        #expect(try await store.leaseHolder() == nil)
        #expect(try await store.integrityCheck() == "ok")
        #expect(mode(directory.state.path) == 0o600)
        #expect(mode(directory.state.deletingLastPathComponent().path) == 0o750)
        let migrations = try SQLiteShell.query(
            directory.state.path, "SELECT group_concat(identifier) FROM grdb_migrations")
        #expect(migrations?.split(separator: ",").prefix(2) == ["v1", "v2-lease-fencing"])
        let header = try Data(contentsOf: directory.state).prefix(20)
        #expect(header.prefix(16) == Data("SQLite format 3\0".utf8))
        #expect(header[18] == 2 && header[19] == 2, "state database must be in WAL mode")
    }

    @Test func walAndSharedMemoryFilesArePrivateToo() async throws {
        let directory = try StateDirectory()
        let store = try StateStore(url: directory.state)
        defer { store.close() }
        try await store.saveInstance(instance("acme"), at: now)
        for suffix in ["-wal", "-shm"] {
            let path = directory.state.path + suffix
            try #require(FileManager.default.fileExists(atPath: path), "\(suffix)")
            #expect(mode(path) == 0o600, "\(suffix)")
        }
    }

    @Test func existingStateFileIsMadePrivate() async throws {
        // A state file restored from a backup or created by hand may be world-readable; it holds secrets.
        let directory = try StateDirectory()
        try FileManager.default.createDirectory(
            at: directory.state.deletingLastPathComponent(), withIntermediateDirectories: true)
        #expect(
            FileManager.default.createFile(
                atPath: directory.state.path, contents: Data(), attributes: [.posixPermissions: 0o644]))
        let store = try StateStore(url: directory.state)
        defer { store.close() }
        try await store.saveInstance(instance("acme"), at: now)
        let fileMode = mode(directory.state.path)
        #expect(fileMode == 0o600)
    }

    @Test func reopeningKeepsEveryField() async throws {
        let directory = try StateDirectory()
        var record = instance("acme", protect: true)
        record.phase = .failed
        record.lastError = "disk full"
        record.attempts = 3
        record.nextAttemptAt = 1_800_000_040
        record.failedSpecHash = "bad"
        record.revision = "abc123-dirty"
        record.storageDeletionPolicy = .delete
        do {
            let store = try StateStore(url: directory.state)
            try await store.saveInstance(record, at: now)
            let run = try await store.beginRun(holder: "1@h", revision: nil, at: now)
            let id = try await store.recordIntent(run: run, change: change("acme", .storage), at: now)
            try await store.recordSuccess(id, instance: "acme", outcome: .recorded(resource(.storage)), at: now)
            store.close()
        }
        let reopened = try StateStore(url: directory.state)
        defer { reopened.close() }
        var expected = record
        expected.resources = [.storage: resource(.storage)]
        #expect(try await reopened.instances() == ["acme": expected])
        #expect(try await reopened.history().map(\.status) == [.succeeded])
    }

    @Test func savingAgainUpdatesInPlace() async throws {
        let directory = try StateDirectory()
        let store = try StateStore(url: directory.state)
        defer { store.close() }
        try await store.saveInstances([instance("a"), instance("b")], at: now)
        var changed = instance("a")
        changed.phase = .orphaned
        changed.labels = [:]
        try await store.saveInstance(changed, at: now)
        let all = try await store.instances()
        #expect(all.keys.sorted() == ["a", "b"])
        #expect(all["a"] == changed)
    }

    @Test func forgettingAnInstanceRemovesItsResources() async throws {
        let directory = try StateDirectory()
        let store = try StateStore(url: directory.state)
        defer { store.close() }
        try await store.saveInstance(instance("acme"), at: now)
        let run = try await store.beginRun(holder: "1@h", revision: nil, at: now)
        let id = try await store.recordIntent(run: run, change: change("acme", .database), at: now)
        try await store.recordSuccess(id, instance: "acme", outcome: .recorded(resource(.database)), at: now)
        try await store.forgetInstance("acme")
        #expect(try await store.instances().isEmpty)
        let leftovers = try SQLiteShell.query(directory.state.path, "SELECT count(*) FROM resources")
        #expect(leftovers == "0")
    }

    @Test func snapshotOfMissingFileIsEmptyAndCreatesNothing() throws {
        let directory = try StateDirectory()
        let before = try directory.listing()
        #expect(try StateStore.snapshot(url: directory.state).isEmpty)
        #expect(try directory.listing() == before)
        #expect(!FileManager.default.fileExists(atPath: directory.state.deletingLastPathComponent().path))
    }

    @Test func snapshotOfClosedWalDatabaseLeavesDirectoryByteIdentical() async throws {
        let directory = try StateDirectory()
        do {
            let store = try StateStore(url: directory.state)
            try await store.saveInstance(instance("acme"), at: now)
            store.close()
        }
        let before = try directory.listing()
        #expect(before.count == 2)  // var/ and var/state.sqlite, no -wal or -shm
        let snapshot = try StateStore.snapshot(url: directory.state)
        #expect(snapshot.keys.sorted() == ["acme"])
        #expect(try directory.listing() == before)
    }

    @Test func snapshotAfterACrashReadsTheWalWithoutCheckpointingIt() async throws {
        // A killed run leaves state.sqlite-wal (and -shm) behind: a dry run must read it and change nothing.
        let live = try StateDirectory()
        let crashed = try StateDirectory()
        let store = try StateStore(url: live.state)
        defer { store.close() }
        try await store.saveInstance(instance("acme"), at: now)
        try FileManager.default.createDirectory(
            at: crashed.state.deletingLastPathComponent(), withIntermediateDirectories: true)
        for suffix in ["", "-wal", "-shm"] where FileManager.default.fileExists(atPath: live.state.path + suffix) {
            try FileManager.default.copyItem(atPath: live.state.path + suffix, toPath: crashed.state.path + suffix)
        }
        try #require(FileManager.default.fileExists(atPath: crashed.state.path + "-wal"))
        let before = try crashed.listing()
        let snapshot = try StateStore.snapshot(url: crashed.state)
        #expect(snapshot.keys.sorted() == ["acme"])
        let after = try crashed.listing()
        #expect(after == before)
    }

    @Test func snapshotOfFileWithoutTablesIsEmpty() throws {
        let directory = try StateDirectory()
        try FileManager.default.createDirectory(
            at: directory.state.deletingLastPathComponent(), withIntermediateDirectories: true)
        #expect(FileManager.default.createFile(atPath: directory.state.path, contents: Data()))
        #expect(try StateStore.snapshot(url: directory.state).isEmpty)
    }

    @Test func snapshotOfGarbageIsADatabaseError() throws {
        let directory = try StateDirectory()
        try FileManager.default.createDirectory(
            at: directory.state.deletingLastPathComponent(), withIntermediateDirectories: true)
        try Data(repeating: 0x41, count: 4096).write(to: directory.state)
        let error = #expect(throws: StateError.self) {
            _ = try StateStore.snapshot(url: directory.state)
        }
        guard case .database(let path, _) = error else {
            Issue.record("expected a database error, got \(String(describing: error))")
            return
        }
        #expect(path == directory.state.path)
    }

    @Test func newerSchemaIsRefused() async throws {
        let directory = try StateDirectory()
        try StateStore(url: directory.state).close()
        try SQLiteShell.execute(directory.state.path, "INSERT INTO grdb_migrations (identifier) VALUES ('v99')")
        let error = #expect(throws: StateError.self) {
            _ = try StateStore(url: directory.state)
        }
        guard case .newerSchema = error else {
            Issue.record("expected newerSchema, got \(String(describing: error))")
            return
        }
        #expect("\(String(describing: error))".contains("newer dfe"))
    }

    @Test func integrityCheckIsOk() async throws {
        let directory = try StateDirectory()
        let store = try StateStore(url: directory.state)
        defer { store.close() }
        try await store.saveInstances((0..<50).map { instance("i\($0)") }, at: now)
        #expect(try await store.integrityCheck() == "ok")
    }
}

@Suite struct JournalTests {
    @Test func intentThenSuccessRecordsTheResource() async throws {
        let directory = try StateDirectory()
        let store = try StateStore(url: directory.state)
        defer { store.close() }
        try await store.saveInstance(instance("acme"), at: now)
        let run = try await store.beginRun(holder: "1@h", revision: "abc", at: now)
        let id = try await store.recordIntent(run: run, change: change("acme", .storage), at: now)
        let started = try await store.history()
        #expect(started.map(\.status) == [.started])
        #expect(started.first?.finishedAt == nil)
        #expect(try await store.instances()["acme"]?.resources.isEmpty == true)

        let later = now.addingTimeInterval(2)
        try await store.recordSuccess(id, instance: "acme", outcome: .recorded(resource(.storage)), at: later)
        let entry = try #require(try await store.history().first)
        #expect(entry.id == id)
        #expect(entry.runID == run)
        #expect(entry.instance == "acme")
        #expect(entry.resource == .storage)
        #expect(entry.action == .create)
        #expect(entry.reason == "new")
        #expect(entry.status == .succeeded)
        #expect(entry.startedAt == now)
        #expect(entry.finishedAt == later)
        #expect(try await store.instances()["acme"]?.resources == [.storage: resource(.storage)])
    }

    @Test func successAndResourceAreOneTransaction() async throws {
        // The resource row cannot be written (no such instance): the journal must not claim success either.
        let directory = try StateDirectory()
        let store = try StateStore(url: directory.state)
        defer { store.close() }
        let run = try await store.beginRun(holder: "1@h", revision: nil, at: now)
        let id = try await store.recordIntent(run: run, change: change("ghost", .storage), at: now)
        await #expect(throws: (any Error).self) {
            try await store.recordSuccess(id, instance: "ghost", outcome: .recorded(resource(.storage)), at: now)
        }
        #expect(try await store.history().map(\.status) == [.started])
    }

    @Test func forgottenOutcomeRemovesTheResourceRow() async throws {
        let directory = try StateDirectory()
        let store = try StateStore(url: directory.state)
        defer { store.close() }
        try await store.saveInstance(instance("acme"), at: now)
        let run = try await store.beginRun(holder: "1@h", revision: nil, at: now)
        for kind in [ResourceKind.storage, .database] {
            let id = try await store.recordIntent(run: run, change: change("acme", kind), at: now)
            try await store.recordSuccess(id, instance: "acme", outcome: .recorded(resource(kind)), at: now)
        }
        let id = try await store.recordIntent(run: run, change: change("acme", .database, .delete), at: now)
        try await store.recordSuccess(id, instance: "acme", outcome: .forgotten(.database), at: now)
        #expect(try await store.instances()["acme"]?.resources.keys.sorted() == [.storage])
        #expect(try await store.history().map(\.action) == [.create, .create, .delete])
    }

    @Test func failureIsJournaledWithItsError() async throws {
        let directory = try StateDirectory()
        let store = try StateStore(url: directory.state)
        defer { store.close() }
        let run = try await store.beginRun(holder: "1@h", revision: nil, at: now)
        let id = try await store.recordIntent(run: run, change: change("acme", .storage), at: now)
        try await store.recordFailure(id, error: "a file is in the way", at: now)
        let entry = try #require(try await store.history().first)
        #expect(entry.status == .failed)
        #expect(entry.error == "a file is in the way")
        #expect(entry.finishedAt == now)
    }

    @Test func recoverInterruptedMarksOnlyStartedEntries() async throws {
        let directory = try StateDirectory()
        let store = try StateStore(url: directory.state)
        defer { store.close() }
        try await store.saveInstance(instance("acme"), at: now)
        let run = try await store.beginRun(holder: "1@h", revision: nil, at: now)
        let done = try await store.recordIntent(run: run, change: change("acme", .storage), at: now)
        try await store.recordSuccess(done, instance: "acme", outcome: .recorded(resource(.storage)), at: now)
        let failed = try await store.recordIntent(run: run, change: change("acme", .database), at: now)
        try await store.recordFailure(failed, error: "boom", at: now)
        let hanging = try await store.recordIntent(run: run, change: change("acme", .instance), at: now)
        let other = try await store.recordIntent(run: run, change: change("beta", .storage), at: now)

        let later = now.addingTimeInterval(60)
        let recovered = try await store.recoverInterrupted(at: later)
        #expect(recovered.map(\.id) == [hanging, other])
        #expect(recovered.allSatisfy { $0.status == .started })
        let history = try await store.history()
        #expect(history.map(\.status) == [.succeeded, .failed, .interrupted, .interrupted])
        #expect(history.last?.finishedAt == later)
        #expect(try await store.recoverInterrupted(at: later).isEmpty)
    }

    @Test func historyFiltersByInstanceAndKeepsTheNewestInOrder() async throws {
        let directory = try StateDirectory()
        let store = try StateStore(url: directory.state)
        defer { store.close() }
        let run = try await store.beginRun(holder: "1@h", revision: nil, at: now)
        var ids: [Int64] = []
        for (name, kind) in [("a", ResourceKind.storage), ("b", .storage), ("a", .database), ("a", .instance)] {
            ids.append(try await store.recordIntent(run: run, change: change(name, kind), at: now))
        }
        #expect(try await store.history(instance: "a").map(\.resource) == [.storage, .database, .instance])
        #expect(try await store.history(instance: "b").count == 1)
        #expect(try await store.history(instance: "zzz").isEmpty)
        #expect(try await store.history(limit: 2).map(\.id) == Array(ids.suffix(2)))
        #expect(try await store.history(instance: "a", limit: 1).map(\.resource) == [.instance])
    }

    @Test func runsAreRecorded() async throws {
        let directory = try StateDirectory()
        let store = try StateStore(url: directory.state)
        defer { store.close() }
        let first = try await store.beginRun(holder: "1@h", revision: "abc", at: now)
        try await store.finishRun(first, status: "succeeded", summary: "{}", at: now)
        let second = try await store.beginRun(holder: "1@h", revision: nil, at: now)
        #expect(second > first)
        _ = try await store.recoverInterrupted(at: now)
        let statuses = try SQLiteShell.query(
            directory.state.path, "SELECT group_concat(status, ',') FROM (SELECT status FROM runs ORDER BY id)")
        #expect(statuses == "succeeded,interrupted")
    }
}

/// A lease identity in this boot and PID namespace (as a process here would record it), with a chosen pid.
func local(_ pid: Int32, startTime: String? = nil) -> LeaseIdentity {
    var identity = LeaseIdentity.current()
    identity.pid = pid
    identity.startTime = startTime ?? ProcessProbe.live.startTime(pid) ?? "1"
    return identity
}

/// A lease identity of another machine (another boot) whose pid means nothing here.
func remote(_ pid: Int32, host: String = "node-b") -> LeaseIdentity {
    LeaseIdentity(pid: pid, host: host, bootID: "other-boot", pidNamespace: "4026531836", startTime: "42")
}

@Suite struct LeaseTests {
    static let ttl = Duration.seconds(15)

    @Test func secondLiveHolderIsRefusedNamingPidAtHost() async throws {
        let directory = try StateDirectory()
        let store = try StateStore(url: directory.state)
        defer { store.close() }
        let parent = local(getppid())
        try await store.acquireLease(parent, ttl: Self.ttl, at: now)
        let error = await #expect(throws: StateError.self) {
            try await store.acquireLease(LeaseIdentity.current(), ttl: Self.ttl, at: now)
        }
        guard case .leaseHeld(let holder) = error else {
            Issue.record("expected leaseHeld, got \(String(describing: error))")
            return
        }
        #expect(holder.description == parent.description)
        #expect("\(String(describing: error))".contains("locked by \(parent)"))
        #expect(try await store.leaseHolder()?.identity == parent)
    }

    @Test func samePidAndHostInAnotherPidNamespaceIsNotTheHolder() async throws {
        // Two containers: both PID 1 on the same host name, in different PID namespaces.
        let directory = try StateDirectory()
        let store = try StateStore(url: directory.state)
        defer { store.close() }
        var first = LeaseIdentity.current()
        first.pid = 1
        first.pidNamespace = "4026532001"
        first.startTime = "100"
        var second = first
        second.pidNamespace = "4026532002"
        try await store.acquireLease(first, ttl: Self.ttl, at: now)
        await #expect(throws: StateError.self) {
            try await store.acquireLease(second, ttl: Self.ttl, at: now.addingTimeInterval(1))
        }
        #expect(try await store.leaseHolder()?.identity == first)
    }

    @Test func holderMayReacquireItsOwnLeaseWithANewEpoch() async throws {
        let directory = try StateDirectory()
        let store = try StateStore(url: directory.state)
        defer { store.close() }
        let me = LeaseIdentity.current()
        let first = try await store.acquireLease(me, ttl: Self.ttl, at: now)
        let later = now.addingTimeInterval(5)
        let second = try await store.acquireLease(me, ttl: Self.ttl, at: later)
        #expect(second == first + 1)
        #expect(try await store.leaseHolder()?.expiresAt == later.addingTimeInterval(15))
    }

    @Test func epochGrowsOnEveryAcquisitionEvenAfterRelease() async throws {
        let directory = try StateDirectory()
        let store = try StateStore(url: directory.state)
        defer { store.close() }
        var epochs: [Int64] = []
        for _ in 0..<3 {
            epochs.append(try await store.acquireLease(LeaseIdentity.current(), ttl: Self.ttl, at: now))
            try store.releaseLease()
        }
        #expect(epochs == [1, 2, 3])
        #expect(try await store.leaseHolder() == nil)
    }

    @Test func leaseOfADeadProcessInThisNamespaceIsFreeAtOnce() async throws {
        let directory = try StateDirectory()
        let store = try StateStore(url: directory.state)
        defer { store.close() }
        let finished = Process()
        finished.executableURL = URL(fileURLWithPath: "/bin/true")
        try finished.run()
        finished.waitUntilExit()
        let dead = finished.processIdentifier
        try #require(!isAlive(dead))
        try await store.acquireLease(local(dead, startTime: "12345"), ttl: Self.ttl, at: now)
        try await store.acquireLease(LeaseIdentity.current(), ttl: Self.ttl, at: now.addingTimeInterval(1))
        #expect(try await store.leaseHolder()?.identity == LeaseIdentity.current())
    }

    @Test func leaseOfAReusedPidWithAnotherStartTimeIsFreeAtOnce() async throws {
        let directory = try StateDirectory()
        let store = try StateStore(url: directory.state)
        defer { store.close() }
        // The parent lives, but not with this start time: the holder that recorded it is gone.
        let parent = getppid()
        let actual = try #require(ProcessProbe.live.startTime(parent))
        try await store.acquireLease(local(parent, startTime: actual + "9"), ttl: Self.ttl, at: now)
        try await store.acquireLease(LeaseIdentity.current(), ttl: Self.ttl, at: now.addingTimeInterval(1))
        #expect(try await store.leaseHolder()?.pid == getpid())
    }

    @Test func leaseOfAnotherBootWaitsForExpiryThenIsFree() async throws {
        let directory = try StateDirectory()
        let store = try StateStore(url: directory.state)
        defer { store.close() }
        // The pid means nothing in this boot, so only expiry frees the lease.
        try await store.acquireLease(remote(999_999), ttl: Self.ttl, at: now)
        await #expect(throws: StateError.self) {
            try await store.acquireLease(LeaseIdentity.current(), ttl: Self.ttl, at: now.addingTimeInterval(14))
        }
        try await store.acquireLease(LeaseIdentity.current(), ttl: Self.ttl, at: now.addingTimeInterval(15))
        #expect(try await store.leaseHolder()?.identity == LeaseIdentity.current())
    }

    @Test func renewExtendsAndAfterATakeoverIsLeaseLost() async throws {
        let directory = try StateDirectory()
        let mine = try StateStore(url: directory.state)
        defer { mine.close() }
        let theirs = try StateStore(url: directory.state)
        defer { theirs.close() }
        try await mine.acquireLease(LeaseIdentity.current(), ttl: Self.ttl, at: now)
        let later = now.addingTimeInterval(10)
        try await mine.renewLease(ttl: Self.ttl, at: later)
        #expect(try await mine.leaseHolder()?.expiresAt == later.addingTimeInterval(15))
        #expect(try await mine.leaseHolder()?.renewedAt == later)
        // Another process takes over once the lease has expired, even with the same PID@HOST.
        try await theirs.acquireLease(local(getpid(), startTime: "1"), ttl: Self.ttl, at: later.addingTimeInterval(16))
        let error = await #expect(throws: StateError.self) {
            try await mine.renewLease(ttl: Self.ttl, at: later.addingTimeInterval(17))
        }
        guard case .leaseLost = error else {
            Issue.record("expected leaseLost, got \(String(describing: error))")
            return
        }
        #expect(mine.hasLostLease)
        #expect(try await mine.leaseHolder()?.epoch == 2)
    }

    @Test func everyWriteOfARunThatLostItsLeaseIsRefusedInItsTransaction() async throws {
        let directory = try StateDirectory()
        let mine = try StateStore(url: directory.state)
        defer { mine.close() }
        let theirs = try StateStore(url: directory.state)
        defer { theirs.close() }
        try await mine.acquireLease(LeaseIdentity.current(), ttl: Self.ttl, at: now)
        let run = try await mine.beginRun(holder: "me", revision: nil, at: now)
        let intent = try await mine.recordIntent(run: run, change: change("acme", .storage), at: now)
        // Taken over without this store noticing (it never renewed): the fence alone must stop each write.
        try await theirs.acquireLease(remote(7), ttl: Self.ttl, at: now.addingTimeInterval(20))
        let writes: [@Sendable () async throws -> Void] = [
            { try await mine.saveInstance(instance("acme"), at: now) },
            { _ = try await mine.recordIntent(run: run, change: change("acme", .database), at: now) },
            { try await mine.recordSuccess(intent, instance: "acme", outcome: .recorded(resource(.storage)), at: now) },
            { try await mine.recordFailure(intent, error: "x", at: now) },
            { try await mine.finishRun(run, status: "succeeded", summary: "", at: now) },
            { try await mine.forgetInstance("acme") },
        ]
        for write in writes {
            let error = await #expect(throws: StateError.self) { try await write() }
            guard case .leaseLost = error else {
                Issue.record("expected leaseLost, got \(String(describing: error))")
                continue
            }
        }
        #expect(mine.hasLostLease)
        try mine.releaseLease()
        #expect(try await theirs.leaseHolder()?.identity == remote(7))
        #expect(try await theirs.instances().isEmpty)
        #expect(try await theirs.history().map(\.status) == [.started])
    }

    @Test func releaseOnlyByTheHoldingEpoch() async throws {
        let directory = try StateDirectory()
        let mine = try StateStore(url: directory.state)
        defer { mine.close() }
        let theirs = try StateStore(url: directory.state)
        defer { theirs.close() }
        try await mine.acquireLease(LeaseIdentity.current(), ttl: Self.ttl, at: now)
        try await theirs.acquireLease(remote(7), ttl: Self.ttl, at: now.addingTimeInterval(20))
        try mine.releaseLease()
        #expect(try await theirs.leaseHolder()?.identity == remote(7))
        try theirs.releaseLease()
        #expect(try await theirs.leaseHolder() == nil)
    }

    @Test func forceUnlockRefusesALeaseRenewedInTheLast15Seconds() async throws {
        let directory = try StateDirectory()
        let store = try StateStore(url: directory.state)
        defer { store.close() }
        try await store.acquireLease(remote(4242), ttl: Self.ttl, at: now)
        let error = await #expect(throws: StateError.self) {
            _ = try await store.forceUnlock(LeaseIdentity.current(), at: now.addingTimeInterval(14))
        }
        guard case .leaseLive(let holder, _, _) = error else {
            Issue.record("expected leaseLive, got \(String(describing: error))")
            return
        }
        #expect(holder.description == "4242@node-b")
        let message = "\(String(describing: error))"
        #expect(message.contains("held by 4242@node-b, renewed 14s ago"), "\(message)")
        #expect(try await store.leaseHolder() != nil)
        let former = try await store.forceUnlock(LeaseIdentity.current(), at: now.addingTimeInterval(15))
        #expect(former?.description == "4242@node-b")
        #expect(try await store.leaseHolder() == nil)
        #expect(try await store.forceUnlock(LeaseIdentity.current(), at: now) == nil)
    }

    @Test func leaseIsSharedBetweenStoresOfTheSameFile() async throws {
        let directory = try StateDirectory()
        let first = try StateStore(url: directory.state)
        defer { first.close() }
        let second = try StateStore(url: directory.state)
        defer { second.close() }
        try await first.acquireLease(local(getppid()), ttl: Self.ttl, at: now)
        await #expect(throws: StateError.self) {
            try await second.acquireLease(LeaseIdentity.current(), ttl: Self.ttl, at: now)
        }
    }

    @Test func identityOfThisProcessHasBootNamespaceAndStartTime() {
        let me = LeaseIdentity.current()
        #expect(me.pid == getpid())
        #expect(me.bootID.count == 36)
        #expect(UInt64(me.pidNamespace) != nil)
        #expect(UInt64(me.startTime) != nil)
        #expect(!me.provesGone(me))
        #expect(!me.provesGone(remote(1)))
    }
}
