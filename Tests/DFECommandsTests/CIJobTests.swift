import DFETestSupport
import Foundation
import Testing

/// The README's GitOps CI job, run as written: a bare repository, a pull-request branch planned and
/// commented on, a merge, and the reviewed plan applied on the production workspace — and nothing else.
@Suite struct CIJobTests {
    static let scripts = DFEBinary.packageRoot.appendingPathComponent("deploy/ci")

    /// Runs a command with `dfe` first on PATH; returns status and combined output.
    func run(_ arguments: [String], in directory: URL, environment: [String: String] = [:]) throws -> (
        Int32, String
    ) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = arguments
        process.currentDirectoryURL = directory
        var env = ProcessInfo.processInfo.environment
        env["PATH"] = DFEBinary.url.deletingLastPathComponent().path + ":" + (env["PATH"] ?? "/usr/bin:/bin")
        env["NO_COLOR"] = "1"
        env["GIT_AUTHOR_NAME"] = "dfe test"
        env["GIT_AUTHOR_EMAIL"] = "test@example.com"
        env["GIT_COMMITTER_NAME"] = "dfe test"
        env["GIT_COMMITTER_EMAIL"] = "test@example.com"
        for (key, value) in environment { env[key] = value }
        process.environment = env
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        process.standardInput = FileHandle(forReadingAtPath: "/dev/null")
        try process.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: data, as: UTF8.self))
    }

    @discardableResult
    func git(_ arguments: [String], in directory: URL) throws -> String {
        let (status, output) = try run(["git"] + arguments, in: directory)
        #expect(status == 0, "git \(arguments): \(output)")
        return output
    }

    func write(_ text: String, to url: URL) throws {
        try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        try Data(text.utf8).write(to: url)
    }

    @Test func theReadmeJobPlansThePullRequestAndTheMergeAppliesExactlyThatPlan() async throws {
        let base = URL(fileURLWithPath: NSTemporaryDirectory()).appendingPathComponent(
            "dfe-ci-\(UUID().uuidString.prefix(8))")
        defer { try? FileManager.default.removeItem(at: base) }
        let origin = base.appendingPathComponent("origin.git")
        let dev = base.appendingPathComponent("dev")
        let prod = base.appendingPathComponent("prod")
        let ci = base.appendingPathComponent("ci")
        let artifacts = base.appendingPathComponent("artifacts")
        try FileManager.default.createDirectory(at: base, withIntermediateDirectories: true)
        try git(["init", "-q", "--bare", "-b", "main", origin.path], in: base)
        try git(["clone", "-q", origin.path, dev.path], in: base)
        try write(TemporaryWorkspace.defaultProvisioners, to: dev.appendingPathComponent("config/provisioners.yaml"))
        try write(TemporaryWorkspace.defaultSettings, to: dev.appendingPathComponent("config/dfe.yaml"))
        try write("var/\n", to: dev.appendingPathComponent(".gitignore"))
        try write(TemporaryWorkspace.manifest("alpha"), to: dev.appendingPathComponent("manifests/alpha.yaml"))
        try write(TemporaryWorkspace.manifest("beta"), to: dev.appendingPathComponent("manifests/beta.yaml"))
        try git(["checkout", "-q", "-b", "main"], in: dev)
        try git(["add", "-A"], in: dev)
        try git(["commit", "-q", "-m", "alpha and beta"], in: dev)
        try git(["push", "-q", "origin", "main"], in: dev)

        // The production workspace: a clone of main, applied once.
        try git(["clone", "-q", origin.path, prod.path], in: base)
        let (first, firstOutput) = try run(["dfe", "reconcile"], in: prod)
        #expect(first == 0, "\(firstOutput)")
        let betaMetadata = prod.appendingPathComponent("var/instances/beta/instance.json")
        let betaBefore = try Data(contentsOf: betaMetadata)

        // A pull request: lock alpha, add gamma.
        try git(["checkout", "-q", "-b", "lock-alpha"], in: dev)
        try write(
            TemporaryWorkspace.manifest("alpha", extra: "  state: locked"),
            to: dev.appendingPathComponent("manifests/alpha.yaml"))
        try write(TemporaryWorkspace.manifest("gamma"), to: dev.appendingPathComponent("manifests/gamma.yaml"))
        try git(["add", "-A"], in: dev)
        try git(["commit", "-q", "-m", "lock alpha, add gamma"], in: dev)
        try git(["push", "-q", "origin", "lock-alpha"], in: dev)

        // CI on the pull request: a checkout of the branch, the README's job as written.
        try git(["clone", "-q", "-b", "lock-alpha", origin.path, ci.path], in: base)
        let (planned, comment) = try run(
            ["sh", Self.scripts.appendingPathComponent("pull-request.sh").path], in: ci,
            environment: ["DFE_PRODUCTION": prod.path, "PLAN_DIR": artifacts.path])
        #expect(planned == 0, "\(comment)")
        #expect(comment.hasPrefix("### dfe plan: 3 to create, 1 to update, 0 to delete, 0 to retain"))
        #expect(comment.contains("<details><summary><code>alpha</code>: 1 update</summary>"))
        #expect(comment.contains("<details><summary><code>gamma</code>: 3 create</summary>"))
        #expect(!comment.contains("<code>beta</code>"))
        #expect(try String(contentsOf: artifacts.appendingPathComponent("comment.md"), encoding: .utf8) == comment)
        #expect(FileManager.default.fileExists(atPath: artifacts.appendingPathComponent("plan.json").path))
        #expect(!FileManager.default.fileExists(atPath: prod.appendingPathComponent("var/instances/gamma").path))

        // The merge, then the merge job on the production host.
        try git(["checkout", "-q", "main"], in: dev)
        try git(["merge", "-q", "--no-ff", "lock-alpha", "-m", "Merge lock-alpha"], in: dev)
        try git(["push", "-q", "origin", "main"], in: dev)
        let (applied, applyOutput) = try run(
            ["sh", Self.scripts.appendingPathComponent("merge.sh").path], in: prod,
            environment: ["PLAN_DIR": artifacts.path])
        #expect(applied == 0, "\(applyOutput)")
        #expect(applyOutput.contains("Apply complete: 3 created, 1 updated, 0 deleted, 0 retained; 5 unchanged"))
        #expect(!applyOutput.contains("beta"))
        #expect(try Data(contentsOf: betaMetadata) == betaBefore)
        let (after, afterPlan) = try run(["dfe", "plan"], in: prod)
        #expect(after == 0, "\(afterPlan)")
        #expect(afterPlan.contains("No changes. 9 resources up to date"))

        // The same plan again: nothing applied, every changed instance stale.
        let (again, againOutput) = try run(["dfe", "reconcile", "--plan", artifacts.path + "/plan.json"], in: prod)
        #expect(again == 1)
        #expect(againOutput.contains("stale: alpha (nothing to do any more"))
        #expect(againOutput.contains("stale: gamma (nothing to do any more"))

        // A change pushed to main without review: the merge job refuses the old plan, nothing is done.
        try write(
            TemporaryWorkspace.manifest("beta", extra: "  state: maintenance"),
            to: dev.appendingPathComponent("manifests/beta.yaml"))
        try git(["commit", "-q", "-am", "unreviewed"], in: dev)
        try git(["push", "-q", "origin", "main"], in: dev)
        let (refused, refusedOutput) = try run(
            ["sh", Self.scripts.appendingPathComponent("merge.sh").path], in: prod,
            environment: ["PLAN_DIR": artifacts.path])
        #expect(refused == 1)
        #expect(refusedOutput.contains("the manifests or config changed since it was made"))
        #expect(try Data(contentsOf: betaMetadata) == betaBefore)
    }

    @Test func theReadmeShowsTheJobScriptsExactly() throws {
        let readme = try String(
            contentsOf: DFEBinary.packageRoot.appendingPathComponent("README.md"), encoding: .utf8)
        for name in ["pull-request.sh", "merge.sh"] {
            let script = try String(contentsOf: Self.scripts.appendingPathComponent(name), encoding: .utf8)
            #expect(readme.contains("```sh\n" + script + "```"), "README does not show deploy/ci/\(name) as written")
        }
    }
}
