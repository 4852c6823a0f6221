import DFECore
import DFEDrivers
import DFEReconciler
import DFETestSupport
import Foundation
import Testing

@testable import DFEController

@Suite("work queue")
struct WorkQueueTests {
    @Test("an instance queued many times is taken once, and bursts coalesce into one unit of work")
    func duplicatesCoalesce() async {
        let queue = WorkQueue()
        await queue.enqueue(["a", "b"], reason: "manifests changed")
        await queue.enqueue(["a"], reason: "manifests changed")
        await queue.enqueue(["c"], reason: "backoff ended")
        #expect(await queue.depth == 3)
        let work = await queue.next()
        #expect(work == Work(full: false, names: ["a", "b", "c"], reasons: ["manifests changed", "backoff ended"]))
        #expect(await queue.depth == 0)
    }

    @Test("a queued full reconcile absorbs queued instances")
    func fullAbsorbsInstances() async {
        let queue = WorkQueue()
        await queue.enqueue(["a"], reason: "manifests changed")
        await queue.enqueueFull(reason: "resync")
        await queue.enqueue(["b"], reason: "manifests changed")
        #expect(await queue.depth == 1)
        let work = await queue.next()
        #expect(work?.full == true)
        #expect(work?.names.isEmpty == true)
    }

    @Test("a waiting worker is woken by new work, and finish ends it")
    func waitingWorkerWakesAndFinishes() async {
        let queue = WorkQueue()
        async let taken = queue.next()
        try? await Task.sleep(for: .milliseconds(50))
        await queue.enqueue(["x"], reason: "test")
        #expect(await taken?.names == ["x"])
        await queue.enqueue(["dropped"], reason: "test")
        await queue.finish()
        #expect(await queue.next() == nil)
        await queue.enqueueFull(reason: "after finish")
        #expect(await queue.depth == 0)
    }

    @Test("an empty set queues nothing")
    func emptySetQueuesNothing() async {
        let queue = WorkQueue()
        await queue.enqueue([], reason: "nothing")
        #expect(await queue.depth == 0)
    }
}

@Suite("controller decisions")
struct ControllerDecisionTests {
    func desired(_ workspace: TemporaryWorkspace) throws -> [DesiredInstance] {
        try InputLoader.load(workspace.workspace, registry: BuiltinDrivers.registry(), environment: [:]).desired
    }

    @Test("a file event re-plans only added, changed and removed instances")
    func changedInstances() throws {
        let workspace = try TemporaryWorkspace(prefix: "dfe-ctl-diff")
        defer { workspace.delete() }
        try workspace.addInstance("same")
        try workspace.addInstance("edited")
        try workspace.addInstance("removed")
        let before = try desired(workspace)
        try workspace.addInstance("edited", owner: "other@example.com")
        try workspace.remove("manifests/removed.yaml")
        try workspace.addInstance("added")
        let after = try desired(workspace)
        #expect(Engine.changedInstances(old: before, new: after) == ["edited", "removed", "added"])
        #expect(Engine.changedInstances(old: after, new: after).isEmpty)
    }

    @Test("a failed instance is woken when its backoff ends, unless its manifest changed since")
    func backoffSchedule() throws {
        let workspace = try TemporaryWorkspace(prefix: "dfe-ctl-backoff")
        defer { workspace.delete() }
        try workspace.addInstance("waiting")
        try workspace.addInstance("edited")
        try workspace.addInstance("healthy")
        let desired = try desired(workspace)
        let hash = Dictionary(uniqueKeysWithValues: desired.map { ($0.name, $0.specHash) })
        let now = Date(timeIntervalSince1970: 1_800_000_000)
        func failed(_ name: String, next: Double, specHash: String?) -> RecordedInstance {
            RecordedInstance(
                name: name, owner: "ops@example.com", provisioner: "dreamfactory", phase: .failed, attempts: 2,
                nextAttemptAt: now.timeIntervalSince1970 + next, failedSpecHash: specHash)
        }
        let recorded: [String: RecordedInstance] = [
            "waiting": failed("waiting", next: 30, specHash: hash["waiting"]),
            "edited": failed("edited", next: 30, specHash: "an older spec"),
            "healthy": RecordedInstance(name: "healthy", owner: "ops@example.com", provisioner: "dreamfactory"),
            "gone": failed("gone", next: 30, specHash: "whatever"),
        ]
        let pending = BackoffSchedule.pending(recorded: recorded, desired: desired, now: now)
        #expect(pending == ["waiting": now.addingTimeInterval(30)])
        #expect(BackoffSchedule.pending(recorded: recorded, desired: desired, now: now.addingTimeInterval(31)).isEmpty)
    }

    @Test("listen addresses are HOST:PORT, IPv6 in brackets")
    func listenAddress() {
        #expect(ListenAddress("127.0.0.1:9420") == ListenAddress("127.0.0.1:9420"))
        #expect(ListenAddress("127.0.0.1:9420")?.port == 9420)
        #expect(ListenAddress("[::1]:0")?.host == "::1")
        #expect(ListenAddress("[::1]:0")?.description == "[::1]:0")
        #expect(ListenAddress("localhost") == nil)
        #expect(ListenAddress(":80") == nil)
        #expect(ListenAddress("host:99999") == nil)
    }
}

@Suite struct GitCredentialTests {
    @Test func aTokenInTheGitURLIsNeverShown() {
        let options = GitSourceOptions(url: "https://x-access-token:ghp_secret123@git.example.com/ops/manifests.git")
        #expect(options.displayURL == "https://(sensitive)@git.example.com/ops/manifests.git")
        let message = GitSourceOptions.redact(
            "fatal: unable to access 'https://x-access-token:ghp_secret123@git.example.com/': 403", in: options.url)
        #expect(!message.contains("ghp_secret123"))
        #expect(GitSourceOptions(url: "file:///srv/repo.git").displayURL == "file:///srv/repo.git")
    }
}
