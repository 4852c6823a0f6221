import DFETestSupport
import Foundation
import Testing

/// The path of an executable on PATH (or in /usr/bin), if any.
func executable(_ name: String) -> String? {
    let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"
    for directory in path.split(separator: ":") + ["/usr/bin", "/usr/sbin"] {
        let candidate = "\(directory)/\(name)"
        if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
    }
    return nil
}

/// A tool a test needs: with CI=true its absence fails the test; elsewhere the test is skipped with a note.
func requireTool(_ name: String, package: String) -> String? {
    if let found = executable(name) { return found }
    if ProcessInfo.processInfo.environment["CI"] == "true" {
        Issue.record("\(name) is missing (Debian package \(package)); scripts/test installs it")
    } else {
        print("skipping: \(name) is missing (apt-get install \(package))")
    }
    return nil
}

/// Runs a program to completion with `input` on stdin; returns its exit status and combined output.
func runTool(_ path: String, _ arguments: [String], input: Data? = nil, environment: [String: String]? = nil) throws
    -> (status: Int32, output: String)
{
    let process = Process()
    process.executableURL = URL(fileURLWithPath: path)
    process.arguments = arguments
    if let environment { process.environment = environment }
    let output = Pipe()
    process.standardOutput = output
    process.standardError = output
    let inputPipe = Pipe()
    process.standardInput = inputPipe
    try process.run()
    if let input { inputPipe.fileHandleForWriting.write(input) }
    try inputPipe.fileHandleForWriting.close()
    let data = output.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return (process.terminationStatus, String(decoding: data, as: UTF8.self))
}

/// The value of the sample whose name and labels are `series`, if present.
func sample(_ text: String, _ series: String) -> Double? {
    text.split(separator: "\n").first { $0.hasPrefix(series + " ") }.flatMap {
        Double($0.split(separator: " ").last ?? "")
    }
}

/// A workspace with `alpha` and `gamma` fine and `beta` failing: a regular file blocks its storage directory.
func workspaceWithFailure(prefix: String) throws -> TemporaryWorkspace {
    let workspace = try TemporaryWorkspace(prefix: prefix)
    for name in ["alpha", "beta", "gamma"] { try workspace.addInstance(name) }
    let blocked = workspace.storagePath("beta")
    try FileManager.default.createDirectory(
        atPath: (blocked as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
    try Data("not a directory".utf8).write(to: URL(fileURLWithPath: blocked))
    return workspace
}

@Suite("controller fleet (process)", .serialized)
struct FleetProcessTests {
    @Test("promtool check metrics accepts the real /metrics output, which counts phases and steps")
    func promtoolAcceptsMetrics() async throws {
        let workspace = try workspaceWithFailure(prefix: "dfe-ctl-promtool")
        defer { workspace.delete() }
        let controller = try RunningController(root: workspace.root, interval: "60s")
        defer { controller.kill() }
        let ran = await eventually {
            let phase = await controller.instance("beta")?["phase"] as? String
            let ready = await controller.get("/readyz")?.status
            return phase == "failed" && ready == 200
        }
        #expect(ran, "\(controller.output)")
        let metrics = try #require(await controller.get("/metrics")).body
        #expect(metrics.contains("dfe_instances{phase=\"failed\"} 1.0"), "\(metrics)")
        #expect(metrics.contains("dfe_instances{phase=\"ready\"} 2.0"), "\(metrics)")
        #expect(metrics.contains("dfe_steps_total{resource=\"storage\",action=\"create\",result=\"success\"} 2"))
        // beta fails while it is observed (a foreign database is a conflict), before any of its steps runs.
        #expect(
            sample(metrics, "dfe_steps_total{resource=\"database\",action=\"create\",result=\"success\"}") ?? 0 >= 2)
        #expect(sample(metrics, "dfe_reconcile_runs_total{result=\"error\"}") ?? 0 >= 1)
        let file = workspace.root.appendingPathComponent("metrics.txt")
        try Data(metrics.utf8).write(to: file)
        guard let promtool = requireTool("promtool", package: "prometheus") else { return }
        let check = try runTool(promtool, ["check", "metrics"], input: Data(metrics.utf8))
        #expect(check.status == 0, "promtool check metrics:\n\(check.output)")
    }

    @Test("with a token file, POST reconcile retries a failed instance at once, ignoring its backoff")
    func postReconcileIgnoresBackoff() async throws {
        let workspace = try workspaceWithFailure(prefix: "dfe-ctl-post")
        defer { workspace.delete() }
        let tokenFile = workspace.root.appendingPathComponent("token")
        try Data("tok-\(UUID().uuidString)\n".utf8).write(to: tokenFile)
        let token = try String(contentsOf: tokenFile, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
        try FileManager.default.setAttributes([.posixPermissions: 0o644], ofItemAtPath: tokenFile.path)
        // A readable token file refuses to start, naming the file and its mode.
        let refused = try RunningController(
            root: workspace.root, extra: ["--api-token-file", tokenFile.path], interval: "60s")
        defer { refused.kill() }
        let exited = await eventually(within: .seconds(20)) { !refused.process.isRunning }
        #expect(exited && refused.process.terminationStatus == 1, "\(refused.output)")
        #expect(refused.output.contains(tokenFile.path) && refused.output.contains("0644"), "\(refused.output)")

        try FileManager.default.setAttributes([.posixPermissions: 0o600], ofItemAtPath: tokenFile.path)
        let controller = try RunningController(
            root: workspace.root, extra: ["--api-token-file", tokenFile.path], interval: "60s")
        defer { controller.kill() }
        let auth = ["Authorization": "Bearer \(token)"]
        let base = "http://127.0.0.1:\(controller.port)"
        let failed = await eventually {
            guard let answer = await httpRequest("GET", base + "/api/v1/instances/beta", headers: auth) else {
                return false
            }
            return answer.body.contains("\"phase\" : \"failed\"")
        }
        #expect(failed, "\(controller.output)")
        #expect(await controller.get("/api/v1/instances")?.status == 401)
        #expect(await controller.get("/healthz")?.status == 200)
        let queued = try #require(await httpRequest("POST", base + "/api/v1/instances/beta/reconcile", headers: auth))
        #expect(queued.status == 202)
        let retried = await eventually(within: .seconds(10)) {
            controller.output.contains("trigger=\"requested through the API\"")
                || controller.output.contains("trigger=requested through the API")
        }
        #expect(retried, "\(controller.output)")
        let attempts = await eventually {
            guard let answer = await httpRequest("GET", base + "/api/v1/instances/beta", headers: auth) else {
                return false
            }
            return answer.body.contains("\"attempts\" : 2")
        }
        #expect(attempts, "\(controller.output)")
    }

    @Test("in Chromium the fleet page shows rows, counts and the failed instance's error; the filter narrows rows")
    func browserChecksTheFleetPage() async throws {
        let workspace = try workspaceWithFailure(prefix: "dfe-ctl-browser")
        defer { workspace.delete() }
        try workspace.addInstance("delta", owner: "web@example.com")
        let controller = try RunningController(root: workspace.root, interval: "60s")
        defer { controller.kill() }
        let ran = await eventually {
            let phase = await controller.instance("beta")?["phase"] as? String
            let ready = await controller.get("/readyz")?.status
            return phase == "failed" && ready == 200
        }
        #expect(ran, "\(controller.output)")
        guard requireTool("chromium", package: "chromium") != nil,
            requireTool("chromedriver", package: "chromium-driver") != nil,
            let python = requireTool("python3", package: "python3")
        else { return }
        let hasSelenium = try runTool(python, ["-c", "import selenium"]).status == 0
        if !hasSelenium {
            if ProcessInfo.processInfo.environment["CI"] == "true" {
                Issue.record("python selenium is missing; scripts/test installs it")
            }
            return
        }
        let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .appendingPathComponent("Browser/fleet_page.py")
        let output = workspace.root.appendingPathComponent("screenshots")
        try FileManager.default.createDirectory(at: output, withIntermediateDirectories: true)
        let run = try runTool(
            python, [script.path, "http://127.0.0.1:\(controller.port)", output.path, "beta", "4"])
        #expect(run.status == 0, "browser checks:\n\(run.output)\ncontroller:\n\(controller.output)")
        #expect(run.output.contains("browser checks passed"), "\(run.output)")
        for name in ["fleet.png", "instance.png"] {
            let data = try Data(contentsOf: output.appendingPathComponent(name))
            #expect(data.starts(with: [0x89, 0x50, 0x4E, 0x47]), "\(name) is a PNG")
        }
        if let keep = ProcessInfo.processInfo.environment["DFE_KEEP_SCREENSHOTS"] {
            for name in ["fleet.png", "instance.png"] {
                let target = URL(fileURLWithPath: keep).appendingPathComponent(name)
                try? FileManager.default.removeItem(at: target)
                try FileManager.default.copyItem(at: output.appendingPathComponent(name), to: target)
            }
        }
    }
}
