import DFEState
import DFETestSupport
import Foundation
import Testing

/// The lease with real processes: PID namespaces, SIGSTOP/SIGCONT past the TTL, SIGKILL, `unlock --force`.
@Suite(.serialized) struct LeaseProcessTests {
    /// A workspace with `count` instances.
    func manyInstances(_ count: Int) throws -> TemporaryWorkspace {
        let ws = try TemporaryWorkspace(prefix: "dfe-lease")
        for index in 0..<count {
            try ws.addInstance(String(format: "inst-%04d", index), owner: "owner\(index % 10)@example.com")
        }
        return ws
    }

    /// The lease row's holder text (`PID@HOST`), read without disturbing the run.
    func leaseText(_ ws: TemporaryWorkspace) -> String? {
        guard FileManager.default.fileExists(atPath: ws.stateURL.path) else { return nil }
        return try? SQLiteShell.query(ws.stateURL.path, "SELECT holder FROM lease WHERE id = 1")
    }

    /// Polls until `condition` holds (at most ~10 s).
    func waitUntil(_ condition: () -> Bool) async throws -> Bool {
        for _ in 0..<1000 {
            if condition() { return true }
            try await Task.sleep(for: .milliseconds(10))
        }
        return false
    }

    /// The child processes of a process (the process `unshare --fork` runs).
    func children(of pid: Int32) -> [Int32] {
        let text = (try? String(contentsOfFile: "/proc/\(pid)/task/\(pid)/children", encoding: .utf8)) ?? ""
        return text.split(separator: " ").compactMap { Int32($0) }
    }

    /// Every row of the journal, instances, resources and runs tables.
    func stateDump(_ ws: TemporaryWorkspace) throws -> [String?] {
        try [
            "SELECT group_concat(id || ':' || status || ':' || ifnull(finished_at, ''), ',') FROM journal",
            "SELECT group_concat(name || ':' || phase || ':' || updated_at, ',') FROM instances",
            "SELECT group_concat(instance || ':' || kind || ':' || updated_at, ',') FROM resources",
            "SELECT group_concat(id || ':' || status, ',') FROM runs",
        ].map { try SQLiteShell.query(ws.stateURL.path, $0) }
    }

    static let canUnshare: Bool = {
        guard getuid() == 0 else { return false }
        let probe = Process()
        probe.executableURL = URL(fileURLWithPath: "/usr/bin/unshare")
        probe.arguments = ["--pid", "--fork", "--mount-proc", "/bin/true"]
        do {
            try probe.run()
            probe.waitUntilExit()
            return probe.terminationStatus == 0
        } catch {
            return false
        }
    }()

    @Test func twoContainersWhosePid1SharesAHostNameNeverApplyAtOnce() async throws {
        guard Self.canUnshare else {
            #expect(ProcessInfo.processInfo.environment["CI"] != "true", "CI must run this as root with unshare")
            return
        }
        let ws = try manyInstances(150)
        defer { ws.delete() }
        let dfe = DFEBinary.url.path
        let firstLog = ws.root.appendingPathComponent("first.log")
        let first = Process()
        first.executableURL = URL(fileURLWithPath: "/usr/bin/unshare")
        first.arguments = ["--pid", "--fork", "--mount-proc", dfe, "reconcile", "--parallelism", "1"]
        first.currentDirectoryURL = ws.root
        first.environment = ProcessInfo.processInfo.environment.merging(["NO_COLOR": "1"]) { $1 }
        FileManager.default.createFile(atPath: firstLog.path, contents: nil)
        first.standardOutput = try FileHandle(forWritingTo: firstLog)
        first.standardError = first.standardOutput
        try first.run()
        // Pause the first container's dfe (PID 1 inside) while it holds the lease.
        let held = try await waitUntil { leaseText(ws)?.hasPrefix("1@") == true }
        let inner = children(of: first.processIdentifier)
        try #require(held && inner.count == 1, "the first run never held the lease: \(leaseText(ws) ?? "none")")
        kill(inner[0], SIGSTOP)
        defer { kill(inner[0], SIGCONT) }
        let journalBefore = try SQLiteShell.query(ws.stateURL.path, "SELECT count(*) FROM journal")

        let second = Process()
        second.executableURL = URL(fileURLWithPath: "/usr/bin/unshare")
        second.arguments = ["--pid", "--fork", "--mount-proc", dfe, "reconcile"]
        second.currentDirectoryURL = ws.root
        let errors = Pipe()
        second.standardError = errors
        second.standardOutput = FileHandle(forWritingAtPath: "/dev/null")
        try second.run()
        let message = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        second.waitUntilExit()
        #expect(second.terminationStatus == 1, "\(message)")
        #expect(message.contains("state is locked by 1@"), "\(message)")
        #expect(try SQLiteShell.query(ws.stateURL.path, "SELECT count(*) FROM journal") == journalBefore)

        kill(inner[0], SIGCONT)
        first.waitUntilExit()
        #expect(first.terminationStatus == 0, "\((try? String(contentsOf: firstLog, encoding: .utf8)) ?? "")")
        let plan = try await DFEBinary.run(["plan", "--output", "json"], in: ws.root)
        #expect(plan.status == 0, "\(plan.stdout)")
    }

    @Test func aRunPausedPastItsLeaseMakesNoFurtherChangeAndExits1() async throws {
        let ws = try manyInstances(120)
        defer { ws.delete() }
        let log = ws.root.appendingPathComponent("run.log")
        let run = try DFEBinary.start(["reconcile", "--parallelism", "1"], in: ws.root, output: log)
        let started = try await waitUntil {
            (try? SQLiteShell.query(ws.stateURL.path, "SELECT count(*) FROM journal")).flatMap { Int($0 ?? "") }
                ?? 0 >= 6
        }
        try #require(started, "the run never journaled steps")
        // Pause it outside a write transaction (a paused writer holding SQLite's write lock blocks everyone).
        var paused = false
        for _ in 0..<200 where !paused {
            kill(run.processIdentifier, SIGSTOP)
            if (try? SQLiteShell.execute(ws.stateURL.path, "DELETE FROM lease_epoch WHERE 0")) != nil {
                paused = true
            } else {
                kill(run.processIdentifier, SIGCONT)
                try await Task.sleep(for: .milliseconds(3))
            }
        }
        try #require(paused)
        // Past the TTL another process takes the lease over (the clock is moved, nobody sleeps 15 s).
        let taker = try StateStore(url: ws.stateURL)
        let takerIdentity = LeaseIdentity(pid: 4242, host: "taker", bootID: "other", pidNamespace: "1", startTime: "1")
        try await taker.acquireLease(takerIdentity, ttl: .seconds(3600), at: Date().addingTimeInterval(16))
        let journaled = try #require(
            try SQLiteShell.query(ws.stateURL.path, "SELECT group_concat(DISTINCT instance) FROM journal"))
        let before = try stateDump(ws)
        kill(run.processIdentifier, SIGCONT)
        run.waitUntilExit()
        let output = (try? String(contentsOf: log, encoding: .utf8)) ?? ""
        #expect(run.terminationStatus == 1, "\(output)")
        #expect(output.contains("the state lease was lost"), "\(output)")
        let after = try stateDump(ws)
        #expect(after == before, "the paused run changed the state after losing its lease")
        #expect(try await taker.leaseHolder()?.identity == takerIdentity)
        taker.close()
        // No driver step started after the takeover: every instance with files was journaled before it.
        let startedBefore = Set(journaled.split(separator: ",").map(String.init))
        let touched = Set(
            ws.allPaths().filter { $0.hasPrefix("var/instances/") || $0.hasPrefix("var/databases/") }
                .compactMap { path -> String? in
                    let name = path.split(separator: "/")[2]
                    return String(name.hasSuffix(".sqlite") ? name.dropLast(7) : name[...])
                }
                .filter { $0.hasPrefix("inst-") && !$0.contains(".") })
        #expect(touched.isSubset(of: startedBefore), "\(touched.subtracting(startedBefore).sorted())")
    }

    @Test func aLeaseLeftByASigkilledRunIsTakenOverAtOnce() async throws {
        let ws = try manyInstances(150)
        defer { ws.delete() }
        let log = ws.root.appendingPathComponent("run.log")
        let run = try DFEBinary.start(["reconcile", "--parallelism", "1"], in: ws.root, output: log)
        let held = try await waitUntil { leaseText(ws) != nil }
        try #require(held)
        kill(run.processIdentifier, SIGKILL)
        run.waitUntilExit()
        #expect(leaseText(ws) == "\(run.processIdentifier)@\(LeaseIdentity.hostName())")
        // Without --wait a held lease fails at once ("state is locked by"): success means it was taken over.
        let rerun = try await DFEBinary.run(["reconcile"], in: ws.root)
        #expect(rerun.status == 0, "\(rerun.stderr)")
        #expect(!rerun.stderr.contains("locked by"))
    }

    @Test func unlockForceRefusesALiveLeaseNamingItsHolderAndRenewal() async throws {
        let ws = try TemporaryWorkspace(prefix: "dfe-unlock")
        defer { ws.delete() }
        let store = try StateStore(url: ws.stateURL)
        defer { store.close() }
        let holder = LeaseIdentity(pid: 777, host: "node-b", bootID: "other", pidNamespace: "1", startTime: "1")
        try await store.acquireLease(holder, ttl: .seconds(15), at: Date().addingTimeInterval(-3))
        let refused = try await DFEBinary.run(["unlock", "--force"], in: ws.root)
        #expect(refused.status == 1)
        #expect(
            refused.stderr.contains("refusing to unlock: the lease is held by 777@node-b, renewed ")
                && refused.stderr.contains("s ago (at "),
            "\(refused.stderr)")
        #expect(try await store.leaseHolder()?.identity == holder)
        // Not renewed for 15 s: stale, cleared.
        try SQLiteShell.execute(ws.stateURL.path, "DELETE FROM lease")
        try await store.acquireLease(
            LeaseIdentity.current(), ttl: .seconds(15), at: Date().addingTimeInterval(-16))
        let cleared = try await DFEBinary.run(["unlock", "--force"], in: ws.root)
        #expect(cleared.status == 0, "\(cleared.stderr)")
        #expect(try await store.leaseHolder() == nil)
    }
}
