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

    @Test func killedDuringCreatesThenPrunedWithDeleteLeavesNothingAndTheStateForgetsNothingEarly() async throws {
        let count = 200
        let ws = try TemporaryWorkspace(prefix: "dfe-crash-prune")
        defer { ws.delete() }
        for index in 0..<count {
            try ws.addInstance(
                String(format: "inst-%04d", index), owner: "owner\(index % 10)@example.com",
                extra: "  storage: {deletionPolicy: Delete}\n  database: {deletionPolicy: Delete}")
        }
        let log = ws.root.appendingPathComponent("kill.log")
        var killedMidway = 0
        let instances = ws.root.appendingPathComponent("var/instances")
        for wanted in [5, 60] {
            let process = try DFEBinary.start(["reconcile"], in: ws.root, output: log)
            // Kill it once it is creating: when some instance directories exist.
            for _ in 0..<1000 where process.isRunning {
                let made = (try? FileManager.default.contentsOfDirectory(atPath: instances.path))?.count ?? 0
                if made >= wanted { break }
                try await Task.sleep(for: .milliseconds(5))
            }
            if process.isRunning {
                kill(process.processIdentifier, SIGKILL)
                killedMidway += 1
            }
            process.waitUntilExit()
        }
        #expect(killedMidway >= 1, "the run finished before any kill; use more instances")
        try FileManager.default.removeItem(at: log)
        // Something was made but not all: the kill interrupted creates.
        let made = ws.allPaths().filter { $0.hasPrefix("var/instances/") || $0.hasPrefix("var/databases/") }
        #expect(!made.isEmpty)

        // Every manifest is removed; the prune deletes everything the crashed runs may have made.
        try ws.remove("manifests")
        try FileManager.default.createDirectory(
            at: ws.root.appendingPathComponent("manifests"), withIntermediateDirectories: true)
        let prune = try await DFEBinary.run(["reconcile", "--prune", "--prune-all"], in: ws.root)
        #expect(prune.status == 0, "\(prune.stdout)\n\(prune.stderr)")
        let left = ws.allPaths().filter {
            ($0.hasPrefix("var/instances/") || $0.hasPrefix("var/databases/") || $0.hasPrefix("var/storage/"))
                && !$0.hasSuffix("/.private") && !$0.hasSuffix("/.private/snapshots")
        }
        // Only the owners' own trees (their .private/snapshots survive their instances) and the zone and
        // partition directories remain.
        let instanceLeft = left.filter { path in
            let parts = path.split(separator: "/")
            return (path.hasPrefix("var/storage/") && parts.count > 5) || path.hasPrefix("var/instances/")
                || path.hasPrefix("var/databases/")
        }
        #expect(instanceLeft.isEmpty, "\(instanceLeft.prefix(20))")
        let store = try StateStore(url: ws.stateURL)
        defer { store.close() }
        #expect(try await store.instances().isEmpty)
        #expect(try await store.integrityCheck() == "ok")
    }

    @Test func aPruneThatCannotDeleteSomethingExitsOneAndKeepsItRecorded() async throws {
        let ws = try TemporaryWorkspace(prefix: "dfe-prune-fail")
        defer { ws.delete() }
        try ws.addInstance("alpha", extra: "  database: {deletionPolicy: Delete}")
        try ws.addInstance("beta")
        #expect(try await DFEBinary.run(["reconcile"], in: ws.root).status == 0)
        // Someone swaps alpha's database for a file that is not ours: the prune must refuse to delete it.
        let path = ws.root.appendingPathComponent("var/databases/alpha.sqlite").path
        try FileManager.default.removeItem(atPath: path)
        try Data("someone else's".utf8).write(to: URL(fileURLWithPath: path))
        try ws.remove("manifests/alpha.yaml")
        let prune = try await DFEBinary.run(["reconcile", "--prune"], in: ws.root)
        #expect(prune.status == 1, "\(prune.stdout)\n\(prune.stderr)")
        #expect((prune.stdout + prune.stderr).contains("refusing to delete"), "\(prune.stdout)\n\(prune.stderr)")
        #expect(try Data(contentsOf: URL(fileURLWithPath: path)) == Data("someone else's".utf8))
        let store = try StateStore(url: ws.stateURL)
        defer { store.close() }
        #expect(try await store.instances()["alpha"]?.resources[.database] != nil)
        #expect(try await store.instances()["alpha"]?.terminal == true)
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
