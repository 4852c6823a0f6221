import DFETestSupport
import Foundation
import Testing

/// Golden files: every command's output in every format over one fixed workspace, compared byte for byte.
///
/// In the style of swift-argument-parser's help snapshots: a change of any output is a visible diff of a file under
/// `Tests/DFECommandsTests/Golden/`. Outputs are made deterministic by normalising what changes between runs: the
/// workspace's temporary path becomes `/WORKSPACE`, ISO 8601 times `<TIME>`, step durations `[<DURATION>]`.
///
/// To re-record after an intended change: `DFE_RECORD_GOLDEN=1 swift test --filter GoldenTests`, then review
/// `git diff Tests/DFECommandsTests/Golden` and commit it with the change.
@Suite(.serialized) struct GoldenTests {
    static let directory = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Golden")
    static let recording = !(ProcessInfo.processInfo.environment["DFE_RECORD_GOLDEN"] ?? "").isEmpty

    /// The output of `dfe ARGS` with stdout, stderr and the exit code, normalised.
    static func transcript(_ result: ProcessResult, root: URL) -> String {
        var text = "$ exit \(result.status)\n"
        if !result.stdout.isEmpty { text += "--- stdout\n" + result.stdout }
        if !result.stderr.isEmpty { text += "--- stderr\n" + result.stderr }
        if !text.hasSuffix("\n") { text += "\n" }
        return normalise(text, root: root)
    }

    static func normalise(_ text: String, root: URL) -> String {
        var text = text
        for path in [root.path, root.resolvingSymlinksInPath().path] {
            text = text.replacingOccurrences(of: path, with: "/WORKSPACE")
        }
        let patterns: [(String, String)] = [
            (#"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z"#, "<TIME>"),
            (#"\[\d+(\.\d+)?(ms|s|m|h|µs|us|ns)\]"#, "[<DURATION>]"),
        ]
        for (pattern, replacement) in patterns {
            text = text.replacingOccurrences(of: pattern, with: replacement, options: .regularExpression)
        }
        return text
    }

    /// Compares (or records) one golden file.
    static func check(_ name: String, _ actual: String, sourceLocation: SourceLocation = #_sourceLocation) throws {
        let url = directory.appendingPathComponent(name + ".txt")
        if recording {
            try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
            try Data(actual.utf8).write(to: url)
            return
        }
        let expected = try? String(contentsOf: url, encoding: .utf8)
        #expect(
            expected == actual,
            "golden \(name).txt differs (re-record with DFE_RECORD_GOLDEN=1 after an intended change):\n\(actual)",
            sourceLocation: sourceLocation)
    }

    /// The fixed workspace: two instances, one with a chosen offering, one protected.
    static func workspace() throws -> TemporaryWorkspace {
        let ws = try TemporaryWorkspace(prefix: "dfe-golden")
        try ws.addInstance("alpha", owner: "a@example.com", extra: "  storage: {quota: 1Gi}")
        try ws.addInstance("beta", owner: "b@example.com", extra: "  offerings: {instance-version: \"6.2\"}")
        return ws
    }

    func run(_ name: String, _ arguments: [String], _ ws: TemporaryWorkspace) async throws {
        let result = try await DFEBinary.run(arguments, in: ws.root, environment: ["COLUMNS": "100"])
        try Self.check(name, Self.transcript(result, root: ws.root))
    }

    @Test func everyCommandInEveryFormatMatchesItsGoldenFile() async throws {
        let ws = try Self.workspace()
        defer { ws.delete() }
        try await run("validate.text", ["validate"], ws)
        try await run("validate.json", ["validate", "--output", "json"], ws)
        try await run("provisioners.text", ["provisioners"], ws)
        try await run("provisioners.json", ["provisioners", "--output", "json"], ws)
        try await run("plan.text", ["plan"], ws)
        try await run("plan.json", ["plan", "--output", "json"], ws)
        try await run("plan.markdown", ["plan", "--output", "markdown"], ws)
        try await run("status-before.text", ["status"], ws)
        try await run("history-empty.text", ["history"], ws)
        try await run("reconcile.text", ["reconcile", "--parallelism", "1"], ws)
        try await run("plan-converged.text", ["plan"], ws)
        try await run("plan-converged.json", ["plan", "--output", "json"], ws)
        try ws.addInstance("gamma", owner: "a@example.com")
        try await run("reconcile.json", ["reconcile", "--parallelism", "1", "--output", "json"], ws)
        try await run("status.text", ["status"], ws)
        try await run("status.json", ["status", "--output", "json"], ws)
        try await run("status-one.text", ["status", "alpha"], ws)
        try await run("status-one.json", ["status", "alpha", "--output", "json"], ws)
        try await run("history.text", ["history"], ws)
        try await run("history.json", ["history", "--limit", "2", "--output", "json"], ws)
        try await run("history-one.text", ["history", "beta"], ws)
        // Held, orphaned and an invalid manifest.
        try ws.addInstance("beta", owner: "b@example.com", extra: "  suspend: true\n  state: locked")
        try ws.remove("manifests/gamma.yaml")
        try await run("plan-held-orphaned.text", ["plan"], ws)
        try await run("plan-held-orphaned.json", ["plan", "--output", "json"], ws)
        try ws.write("manifests/bad.yaml", TemporaryWorkspace.manifest("Bad", extra: "  colour: blue"))
        try await run("plan-invalid.text", ["plan"], ws)
        try await run("plan-invalid.json", ["plan", "--output", "json"], ws)
        try await run("validate-invalid.text", ["validate"], ws)
        try await run("validate-invalid.json", ["validate", "--output", "json"], ws)
        try await run("unknown-status.text", ["status", "nosuch"], ws)
        try await run("unknown-status.json", ["status", "nosuch", "--output", "json"], ws)
    }

    @Test func firstRunAndSchemaMatchTheirGoldenFiles() async throws {
        let ws = try Self.workspace()
        defer { ws.delete() }
        try ws.remove("config")
        try ws.remove("manifests")
        try await run("first-run.text", ["plan"], ws)
        try await run("first-run.json", ["plan", "--output", "json"], ws)
        try await run("init.text", ["init"], ws)
        try await run("schema-manifest.json", ["schema", "manifest"], ws)
        try await run("schema-config.json", ["schema", "config"], ws)
        try await run("schema-settings.json", ["schema", "settings"], ws)
    }

    static let commands = [
        "", "init", "validate", "reconcile", "plan", "status", "history", "provisioners", "unlock", "controller",
        "schema",
    ]

    @Test(arguments: commands) func helpOfEachCommandMatchesItsGoldenFile(command: String) async throws {
        let ws = try Self.workspace()
        defer { ws.delete() }
        let arguments = command.isEmpty ? ["--help"] : [command, "--help"]
        try await run("help-\(command.isEmpty ? "dfe" : command)", arguments, ws)
    }
}
