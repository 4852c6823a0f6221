import DFETestSupport
import Foundation
import Testing

/// `dfe controller` as an operator runs it: a real child process, real files, real HTTP on loopback.
@Suite("dfe controller process", .serialized)
struct ControllerProcessTests {
    @Test("a manifest added while the controller runs is applied and listed by the API")
    func addedManifestIsApplied() async throws {
        let workspace = try TemporaryWorkspace(prefix: "dfe-ctl-add")
        defer { workspace.delete() }
        // A resync interval of an hour: only the file event can apply it in time.
        let controller = try RunningController(root: workspace.root, interval: "1h")
        defer { controller.kill() }
        let ready = await eventually { await controller.get("/readyz")?.status == 200 }
        #expect(ready, "never ready:\n\(controller.output)")

        try workspace.addInstance("late-comer")
        let applied = await eventually(within: .seconds(10)) {
            await controller.instance("late-comer")?["phase"] as? String == "ready"
        }
        #expect(applied, "not applied:\n\(controller.output)")
        #expect(FileManager.default.fileExists(atPath: workspace.metadataPath("late-comer")))
        let list = await controller.json("/api/v1/instances")
        let names = (list?["instances"] as? [[String: Any]])?.compactMap { $0["name"] as? String }
        #expect(names == ["late-comer"])
    }

    @Test("a storage directory deleted by hand is back after the next resync")
    func driftIsRepairedByResync() async throws {
        let workspace = try TemporaryWorkspace(prefix: "dfe-ctl-drift")
        defer { workspace.delete() }
        try workspace.addInstance("drifty")
        let controller = try RunningController(root: workspace.root)
        defer { controller.kill() }
        let ready = await eventually { await controller.instance("drifty")?["phase"] as? String == "ready" }
        #expect(ready, "never ready:\n\(controller.output)")
        let storage = workspace.storagePath("drifty")
        #expect(FileManager.default.fileExists(atPath: storage))

        try FileManager.default.removeItem(atPath: storage)
        let repaired = await eventually { FileManager.default.fileExists(atPath: storage + "/applications") }
        #expect(repaired, "storage not re-created:\n\(controller.output)")
    }

    @Test("drift of a driftPolicy: Report instance is reported once per change, never repaired, phase drifted")
    func reportedDriftIsLoggedOnceAndNotRepaired() async throws {
        let workspace = try TemporaryWorkspace(prefix: "dfe-ctl-report")
        defer { workspace.delete() }
        try workspace.addInstance("watched", extra: "  driftPolicy: Report")
        let controller = try RunningController(root: workspace.root, interval: "1s")
        defer { controller.kill() }
        let ready = await eventually { await controller.instance("watched")?["phase"] as? String == "ready" }
        #expect(ready, "never ready:\n\(controller.output)")
        let storage = workspace.storagePath("watched")
        try FileManager.default.removeItem(atPath: storage)
        let drifted = await eventually { await controller.instance("watched")?["phase"] as? String == "drifted" }
        #expect(drifted, "never drifted:\n\(controller.output)")
        // Several more resyncs: still not repaired, and reported only once.
        try await Task.sleep(for: .seconds(3))
        #expect(!FileManager.default.fileExists(atPath: storage))
        let reports = controller.output.components(separatedBy: "drift detected").count - 1
        #expect(reports == 1, "\(controller.output)")
        let metrics = await controller.get("/metrics")?.body ?? ""
        #expect(metrics.contains("dfe_instances{phase=\"drifted\"} 1"))
    }

    @Test("a broken manifest keeps the controller running and not ready; fixing it gets applied")
    func brokenManifestIsReportedThenFixed() async throws {
        let workspace = try TemporaryWorkspace(prefix: "dfe-ctl-broken")
        defer { workspace.delete() }
        try workspace.addInstance("steady")
        let controller = try RunningController(root: workspace.root, interval: "1h")
        defer { controller.kill() }
        let ready = await eventually { await controller.get("/readyz")?.status == 200 }
        #expect(ready, "never ready:\n\(controller.output)")

        try workspace.write("manifests/typo.yaml", TemporaryWorkspace.manifest("typo", extra: "  ownr: nobody\n"))
        let notReady = await eventually(within: .seconds(10)) {
            guard let reply = await controller.get("/readyz") else { return false }
            return reply.status == 503 && reply.body.contains("manifests/typo.yaml:")
        }
        #expect(notReady, "readyz did not report the error:\n\(controller.output)")
        #expect(await controller.get("/healthz")?.status == 200)
        #expect(controller.process.isRunning)
        let errors = await controller.get("/metrics")?.body ?? ""
        #expect(errors.contains("dfe_manifest_load_errors_total 1"), "\(errors)")
        #expect(errors.contains("dfe_ready 0"))
        // The last good manifests still count: the healthy instance is listed, the broken one is not.
        #expect(await controller.instance("steady")?["phase"] as? String == "ready")
        #expect(await controller.get("/api/v1/instances/typo")?.status == 404)
        #expect(controller.output.contains("location=manifests/typo.yaml:"))

        try workspace.write("manifests/typo.yaml", TemporaryWorkspace.manifest("typo"))
        let fixed = await eventually(within: .seconds(10)) {
            await controller.instance("typo")?["phase"] as? String == "ready"
        }
        #expect(fixed, "fix not applied:\n\(controller.output)")
        #expect(await eventually { await controller.get("/readyz")?.status == 200 })
    }

    @Test("SIGTERM exits 0 and releases the lease for a hand-typed reconcile")
    func sigtermExitsCleanlyAndReleasesLease() async throws {
        let workspace = try TemporaryWorkspace(prefix: "dfe-ctl-term")
        defer { workspace.delete() }
        try workspace.addInstance("stopper")
        let controller = try RunningController(root: workspace.root)
        defer { controller.kill() }
        let ready = await eventually { await controller.get("/readyz")?.status == 200 }
        #expect(ready, "never ready:\n\(controller.output)")

        let status = await controller.terminate(timeout: .seconds(10))
        #expect(status == 0, "exit status \(String(describing: status)):\n\(controller.output)")
        #expect(controller.output.contains("controller stopped"))
        let leases = try SQLiteShell.query(workspace.stateURL.path, "SELECT CAST(count(*) AS TEXT) FROM lease")
        #expect(leases == "0", "the lease was not released")
        let reconcile = try await DFEBinary.run(["reconcile", "--root", workspace.root.path], in: workspace.root)
        #expect(reconcile.status == 0, "reconcile refused:\n\(reconcile.stdout)\n\(reconcile.stderr)")
    }

    @Test("a commit pushed to the git source is applied and its SHA is each instance's revision")
    func gitCommitIsAppliedWithItsRevision() async throws {
        let workspace = try TemporaryWorkspace(prefix: "dfe-ctl-git")
        defer { workspace.delete() }
        // In git mode the workspace's own manifests directory is not read.
        try workspace.addInstance("local-only")
        let remote = workspace.root.appendingPathComponent("remote.git")
        let clone = workspace.root.appendingPathComponent("clone")
        try git(["init", "--quiet", "--bare", remote.path], in: workspace.root)
        try git(["clone", "--quiet", remote.absoluteString, clone.path], in: workspace.root)
        try FileManager.default.createDirectory(
            at: clone.appendingPathComponent("deploy/manifests"), withIntermediateDirectories: true)
        try Data(TemporaryWorkspace.manifest("from-git").utf8).write(
            to: clone.appendingPathComponent("deploy/manifests/from-git.yaml"))
        try git(["add", "."], in: clone)
        try git(["commit", "--quiet", "-m", "first"], in: clone)
        try git(["push", "--quiet", "origin", "HEAD:refs/heads/main"], in: clone)
        let first = try git(["rev-parse", "HEAD"], in: clone)

        let controller = try RunningController(
            root: workspace.root,
            extra: [
                "--git", remote.absoluteString, "--ref", "main", "--path", "deploy/manifests", "--git-interval", "1s",
            ])
        defer { controller.kill() }
        // The revision is recorded when provisioning starts; ready follows once the steps are done.
        let applied = await eventually {
            let instance = await controller.instance("from-git")
            return instance?["revision"] as? String == first && instance?["phase"] as? String == "ready"
        }
        #expect(applied, "first commit not applied:\n\(controller.output)")

        try Data(TemporaryWorkspace.manifest("second").utf8).write(
            to: clone.appendingPathComponent("deploy/manifests/second.yaml"))
        try git(["add", "."], in: clone)
        try git(["commit", "--quiet", "-m", "second"], in: clone)
        try git(["push", "--quiet", "origin", "HEAD:refs/heads/main"], in: clone)
        let second = try git(["rev-parse", "HEAD"], in: clone)
        let both = await eventually {
            let new = await controller.instance("second")
            let old = await controller.instance("from-git")
            return new?["phase"] as? String == "ready" && new?["revision"] as? String == second
                && old?["revision"] as? String == second
        }
        #expect(both, "second commit not applied:\n\(controller.output)")
        let metrics = await controller.get("/metrics")?.body ?? ""
        #expect(metrics.contains("dfe_last_applied_revision_info{revision=\"\(second)\"} 1"), "\(metrics)")
        #expect(await controller.get("/api/v1/instances/local-only")?.status == 404)
        #expect(FileManager.default.fileExists(atPath: workspace.root.appendingPathComponent("var/git/repo.git").path))
    }
}
