import DFEState
import DFETestSupport
import Foundation
import Testing

/// Real processes killed with SIGKILL, and two writers at once.
@Suite(.serialized) struct CrashSafetyTests {
    /// A workspace with `count` instances over `count / 20` owners.
    func manyInstances(_ count: Int) throws -> TemporaryWorkspace {
        let ws = try TemporaryWorkspace(prefix: "dfe-crash")
        for index in 0..<count {
            try ws.addInstance(
                String(format: "inst-%04d", index), owner: "owner\(index % max(1, count / 20))@example.com")
        }
        return ws
    }

    /// Checks that every resource exists exactly once and nothing temporary remains.
    func expectConvergedExactlyOnce(_ ws: TemporaryWorkspace, count: Int) async throws {
        let plan = try await DFEBinary.run(["reconcile", "--dry-run", "--output", "json"], in: ws.root)
        #expect(plan.status == 0, "\(plan.stdout) \(plan.stderr)")
        let summary = DFEBinary.json(plan)?["summary"] as? [String: Int]
        #expect(summary?["unchanged"] == count * 3)
        let paths = ws.allPaths()
        #expect(paths.filter { $0.hasSuffix("/instance.json") }.count == count)
        #expect(paths.filter { $0.hasPrefix("var/databases/") && $0.hasSuffix(".sqlite") }.count == count)
        #expect(paths.filter { $0.hasSuffix("/applications") }.count == count)
        #expect(paths.filter { $0.contains(".dfe-tmp") || $0.contains(".foreign-") }.isEmpty)
        let store = try StateStore(url: ws.stateURL)
        defer { store.close() }
        #expect(try await store.integrityCheck() == "ok")
        #expect(try await store.instances().count == count)
        #expect(try await store.history(limit: 100_000).filter { $0.status == .started }.isEmpty)
        // Nothing done twice: each resource was created by exactly one successful journaled step.
        let created = try await store.history(limit: 100_000).filter { $0.status == .succeeded && $0.action == .create }
        #expect(Set(created.map { "\($0.instance)/\($0.resource)" }).count == count * 3)
    }

    @Test func reconcileKilledAtSeveralMomentsIsFinishedByTheNextRun() async throws {
        let count = 300
        let ws = try manyInstances(count)
        defer { ws.delete() }
        let log = ws.root.appendingPathComponent("kill.log")
        var killedMidway = 0
        for delay in [0.05, 0.3, 0.6, 1.0, 1.5] {
            let process = try DFEBinary.start(["reconcile"], in: ws.root, output: log)
            try await Task.sleep(for: .milliseconds(Int(delay * 1000)))
            if process.isRunning {
                kill(process.processIdentifier, SIGKILL)
                killedMidway += 1
            }
            process.waitUntilExit()
        }
        #expect(killedMidway >= 1, "the run finished before any kill; use more instances")
        try FileManager.default.removeItem(at: log)
        let rerun = try await DFEBinary.run(["reconcile"], in: ws.root)
        #expect(rerun.status == 0, "\(rerun.stderr)")
        try await expectConvergedExactlyOnce(ws, count: count)
    }

    @Test func twoConcurrentWritersOneIsRefusedAndTheStateStaysIntact() async throws {
        let count = 200
        let ws = try manyInstances(count)
        defer { ws.delete() }
        let firstLog = ws.root.appendingPathComponent("first.log")
        let first = try DFEBinary.start(["reconcile"], in: ws.root, output: firstLog)
        // Wait until the first run holds the lease, then start the second.
        var held = false
        for _ in 0..<200 where !held {
            try await Task.sleep(for: .milliseconds(20))
            if FileManager.default.fileExists(atPath: ws.stateURL.path),
                let snapshot = try? await leaseHolder(ws.stateURL)
            {
                held = snapshot
            }
        }
        #expect(held)
        let second = try await DFEBinary.run(["reconcile"], in: ws.root)
        first.waitUntilExit()
        #expect(first.terminationStatus == 0)
        #expect(second.status == 1)
        #expect(second.stderr.contains("state is locked by \(first.processIdentifier)@"), "\(second.stderr)")
        try FileManager.default.removeItem(at: firstLog)
        try await expectConvergedExactlyOnce(ws, count: count)
    }

    @Test func waitLetsASecondWriterRunAfterTheFirst() async throws {
        let ws = try manyInstances(40)
        defer { ws.delete() }
        async let first = DFEBinary.run(["reconcile", "--wait"], in: ws.root)
        async let second = DFEBinary.run(["reconcile", "--wait"], in: ws.root)
        let results = try await [first, second]
        #expect(results.map(\.status) == [0, 0])
        try await expectConvergedExactlyOnce(ws, count: 40)
    }

    func leaseHolder(_ url: URL) async throws -> Bool {
        let store = try StateStore(url: url)
        defer { store.close() }
        return try await store.leaseHolder() != nil
    }
}
