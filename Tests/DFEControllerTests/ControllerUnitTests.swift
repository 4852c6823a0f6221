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

/// Hardening of the git source: links leaving the repository, the environment git sees.
@Suite struct GitHardeningTests {
    @Test func aSymlinkInTheManifestsThatLeavesTheRepositoryIsNamedAndNotFollowed() throws {
        let base = URL(fileURLWithPath: NSTemporaryDirectory()).appendingPathComponent("dfe-git-links-\(UUID())")
        defer { try? FileManager.default.removeItem(at: base) }
        let repository = base.appendingPathComponent("checkout")
        let manifests = repository.appendingPathComponent("deploy/manifests")
        try FileManager.default.createDirectory(at: manifests, withIntermediateDirectories: true)
        try Data("secret: host file\n".utf8).write(to: base.appendingPathComponent("host-secret.yaml"))
        try Data("kind: Instance\n".utf8).write(to: manifests.appendingPathComponent("ok.yaml"))
        // A link inside the repository is fine; one leaving it is named.
        try FileManager.default.createSymbolicLink(
            atPath: manifests.appendingPathComponent("inside.yaml").path, withDestinationPath: "ok.yaml")
        #expect(Git.escapingLinks(manifests, repository: repository).isEmpty)
        try FileManager.default.createSymbolicLink(
            atPath: manifests.appendingPathComponent("evil.yaml").path,
            withDestinationPath: base.appendingPathComponent("host-secret.yaml").path)
        #expect(Git.escapingLinks(manifests, repository: repository) == ["deploy/manifests/evil.yaml"])
        let message = "\(Git.LinkEscape(file: "deploy/manifests/evil.yaml"))"
        #expect(message.contains("deploy/manifests/evil.yaml") && !message.contains("host file"))

        // The manifests directory itself being a link out of the repository is refused too.
        let other = base.appendingPathComponent("other")
        try FileManager.default.createDirectory(at: other, withIntermediateDirectories: true)
        try FileManager.default.createSymbolicLink(
            atPath: repository.appendingPathComponent("linked").path, withDestinationPath: other.path)
        #expect(
            Git.escapingLinks(repository.appendingPathComponent("linked"), repository: repository) == ["linked"])
    }

    @Test func gitSeesOnlyTheVariablesItNeedsNeverTheAdminPasswords() {
        let environment = Git.environment(from: [
            "PATH": "/usr/bin", "HOME": "/home/dfe", "GIT_ASKPASS": "/etc/dfe/askpass",
            "DFE_PG_PASSWORD": "admin-secret", "AWS_SECRET_ACCESS_KEY": "x", "LD_PRELOAD": "/tmp/evil.so",
        ])
        #expect(environment["PATH"] == "/usr/bin")
        #expect(environment["HOME"] == "/home/dfe")
        #expect(environment["GIT_ASKPASS"] == "/etc/dfe/askpass")
        #expect(environment["GIT_TERMINAL_PROMPT"] == "0")
        #expect(environment["DFE_PG_PASSWORD"] == nil)
        #expect(environment["AWS_SECRET_ACCESS_KEY"] == nil)
        #expect(environment["LD_PRELOAD"] == nil)
    }
}

@Suite struct DriftLogTests {
    func plan(_ name: String, _ drift: [DriftReport]) -> Plan {
        Plan(instances: [InstancePlan(name: name, disposition: .converge, drift: drift)])
    }

    @Test("reported drift is logged once per change, and its end once")
    func driftIsReportedOncePerChange() {
        var log = DriftLog()
        let missing = DriftReport(instance: "a", resource: .storage, detail: "missing")
        #expect(log.update(with: plan("a", [missing])).changed.map(\.0) == ["a"])
        #expect(log.update(with: plan("a", [missing])).changed.isEmpty)
        let other = DriftReport(instance: "a", resource: .instance, detail: "metadata edited")
        #expect(log.update(with: plan("a", [missing, other])).changed.first?.1 == [missing, other])
        // A run that does not cover the instance keeps what was reported.
        #expect(log.update(with: plan("b", [])).changed.isEmpty)
        #expect(log.update(with: plan("a", [missing, other])).changed.isEmpty)
        #expect(log.update(with: plan("a", [])).cleared == ["a"])
        #expect(log.update(with: plan("a", [])).cleared.isEmpty)
    }
}
