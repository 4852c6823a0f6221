import DFETestSupport
import Foundation
import Testing

@testable import DFECommands

/// The outputs' contract (DESIGN "Outputs (all commands)"): shapes, counts, held, errors, first run, escaping.
@Suite struct OutputContractTests {
    func workspace(_ names: [String] = ["alpha"]) throws -> TemporaryWorkspace {
        let ws = try TemporaryWorkspace()
        for name in names { try ws.addInstance(name) }
        return ws
    }

    func run(_ arguments: [String], _ ws: TemporaryWorkspace, environment: [String: String] = [:]) async throws
        -> ProcessResult
    {
        try await DFEBinary.run(arguments, in: ws.root, environment: environment)
    }

    // MARK: JSON shapes

    @Test func everyJSONErrorHasTheOneShapeAndPlanJSONAlwaysHasRevisionAndHeld() async throws {
        let ws = try workspace()
        defer { ws.delete() }
        try ws.write("manifests/bad.yaml", TemporaryWorkspace.manifest("bad", extra: "  colour: blue"))
        let allowed: Set<String> = ["message", "path", "line", "column", "instance", "resource"]
        for arguments in [
            ["plan", "--output", "json"], ["reconcile", "--output", "json"], ["validate", "--output", "json"],
        ] {
            let result = try await run(arguments, ws)
            #expect(result.status == 1)
            let json = try #require(DFEBinary.json(result), "\(arguments): \(result.stdout)")
            let errors = try #require(json["errors"] as? [[String: Any]])
            #expect(errors.count == 1)
            for error in errors {
                #expect(Set(error.keys).isSubset(of: allowed), "\(error)")
                #expect(error["message"] is String)
                #expect(error["path"] as? String == "manifests/bad.yaml")
                #expect(error["line"] as? Int == 7)
            }
            if arguments[0] != "validate" {
                #expect(json.keys.contains("revision"), "\(arguments)")
                #expect(json["revision"] is NSNull)
                #expect(json["held"] as? [String] == [])
                #expect(json["summary"] is [String: Int])
            }
        }
        // A missing file has no line or column (":1:1" would mean nothing).
        try ws.remove("manifests/bad.yaml")
        try ws.remove("config/provisioners.yaml")
        let missing = try await run(["validate", "--output", "json"], ws)
        let error = try #require((DFEBinary.json(missing)?["errors"] as? [[String: Any]])?.first)
        #expect(error["path"] as? String == "config/provisioners.yaml")
        #expect(error["line"] == nil && error["column"] == nil)
        let text = try await run(["validate"], ws)
        #expect(text.stderr.contains("config/provisioners.yaml: error: config file is missing (workspace root "))
        #expect(!text.stderr.contains(":1:1"))
    }

    @Test func aFailedCreateCountsAsFailedInTextAndJSONAndNeverAsCreated() async throws {
        let ws = try workspace()
        defer { ws.delete() }
        // The database root is a file: the storage is created, the database fails, the instance is not tried.
        try ws.write("var/databases", "not a directory")
        let text = try await run(["reconcile"], ws)
        #expect(text.status == 1)
        #expect(text.stdout.contains("Apply finished with errors: 1 created, 0 updated, 0 deleted, 0 retained"))
        #expect(text.stdout.contains(", 1 failed."), "\(text.stdout)")
        // The failure is printed once: one ✗ line, no duplicate log lines and no repeated error line.
        let mentions = (text.stdout + text.stderr).components(separatedBy: "a file is in the way").count - 1
        #expect(mentions == 1, "stdout: \(text.stdout)\nstderr: \(text.stderr)")
        try ws.remove("var/storage")
        let json = try await run(["reconcile", "--output", "json"], ws)
        let object = try #require(DFEBinary.json(json))
        let summary = try #require(object["summary"] as? [String: Int])
        #expect(summary["create"] == 1 && summary["failed"] == 1, "\(summary)")
        let error = try #require((object["errors"] as? [[String: Any]])?.first)
        #expect(error["instance"] as? String == "alpha")
        #expect(error["resource"] as? String == "database")
        #expect(Set(error.keys) == ["message", "instance", "resource"])
    }

    @Test func statusOfOneInstanceIsWrappedInInstancesLikeStatusOfAll() async throws {
        let ws = try workspace(["alpha", "beta"])
        defer { ws.delete() }
        let one = try await run(["status", "alpha", "--output", "json"], ws)
        #expect(one.status == 0)
        let instances = try #require(DFEBinary.json(one)?["instances"] as? [[String: Any]])
        #expect(instances.count == 1)
        #expect(instances.first?["name"] as? String == "alpha")
        #expect(instances.first?["platformState"] as? String == "active")
        #expect((instances.first?["offerings"] as? [String: String])?["instance-version"] == "7.4")
        let unknown = try await run(["status", "nosuch", "--output", "json"], ws)
        #expect(unknown.status == 1)
        #expect(DFEBinary.json(unknown)?["instances"] as? [Any] != nil)
        let text = try await run(["status"], ws)
        #expect(text.stdout.contains("STATE"))
        #expect(text.stdout.contains("instance-version=7.4"))
    }

    // MARK: Status is the truth

    @Test func revertingAFailedChangeClearsTheFailureInStatusAsThePlanSaysNoChanges() async throws {
        let ws = try workspace()
        defer { ws.delete() }
        #expect(try await run(["reconcile"], ws).status == 0)
        // Move the database root onto a file: the update fails.
        let moved = TemporaryWorkspace.defaultProvisioners.replacingOccurrences(
            of: "root: var/databases", with: "root: var/blocked")
        try ws.write("var/blocked", "a file")
        try ws.write("config/provisioners.yaml", moved)
        #expect(try await run(["reconcile"], ws).status == 1)
        let failed = try await run(["status", "alpha", "--output", "json"], ws)
        #expect((DFEBinary.json(failed)?["instances"] as? [[String: Any]])?.first?["phase"] as? String == "failed")
        // Revert: nothing to do, so status must not say failed either (and the read-only commands write nothing).
        try ws.write("config/provisioners.yaml", TemporaryWorkspace.defaultProvisioners)
        let before = try ws.treeDigest()
        let plan = try await run(["plan"], ws)
        #expect(plan.status == 0, "\(plan.stdout)")
        #expect(plan.stdout.contains("No changes."))
        let status = try await run(["status", "alpha", "--output", "json"], ws)
        let instance = try #require((DFEBinary.json(status)?["instances"] as? [[String: Any]])?.first)
        #expect(instance["phase"] as? String == "ready")
        #expect(instance["lastError"] is NSNull)
        #expect(try ws.treeDigest() == before)
        // The next apply records it.
        #expect(try await run(["reconcile"], ws).status == 0)
        let recorded = try await run(["status", "alpha", "--output", "json"], ws)
        #expect((DFEBinary.json(recorded)?["instances"] as? [[String: Any]])?.first?["phase"] as? String == "ready")
    }

    // MARK: Held

    @Test func aSuspendedInstanceWithAChangedManifestIsHeldAndADryRunExitsZero() async throws {
        let ws = try workspace(["alpha", "beta"])
        defer { ws.delete() }
        #expect(try await run(["reconcile"], ws).status == 0)
        try ws.addInstance("alpha", extra: "  suspend: true\n  storage: {quota: 2Gi}\n  state: locked")
        let plan = try await run(["plan"], ws)
        #expect(plan.status == 0, "\(plan.stdout)")
        #expect(plan.stdout.contains("= alpha held (suspended): 2 changes"), "\(plan.stdout)")
        #expect(plan.stdout.contains("1 held (suspended)"))
        let json = try await run(["plan", "--output", "json"], ws)
        #expect(json.status == 0)
        let object = try #require(DFEBinary.json(json))
        #expect((object["summary"] as? [String: Int])?["held"] == 1)
        #expect(object["held"] as? [String] == ["alpha"])
        // Suspend alone changes nothing applied: not held.
        try ws.addInstance("alpha", extra: "  suspend: true")
        let quiet = try await run(["plan", "--output", "json"], ws)
        #expect(DFEBinary.json(quiet)?["held"] as? [String] == [])
    }

    // MARK: Unknown names and limits

    @Test func onlyNamingNoKnownInstanceIsAnErrorAndTouchesNothing() async throws {
        let ws = try workspace()
        defer { ws.delete() }
        for arguments in [["plan", "--only", "nosuch"], ["reconcile", "--only", "alpha", "--only", "nosuch"]] {
            let result = try await run(arguments, ws)
            #expect(result.status == 1, "\(arguments)")
            #expect(result.stderr.contains("--only nosuch: no such instance"), "\(result.stderr)")
        }
        #expect(!ws.exists("var/storage"))
        let json = try await run(["plan", "--only", "nosuch", "--output", "json"], ws)
        #expect(json.status == 1)
        #expect((DFEBinary.json(json)?["errors"] as? [[String: Any]])?.first?["message"] is String)
    }

    @Test func historyRefusesUnknownNamesAndZeroLimitAndSaysWhenItTruncates() async throws {
        let ws = try workspace(["alpha", "beta"])
        defer { ws.delete() }
        #expect(try await run(["history", "nosuch"], ws).status == 1)
        #expect(try await run(["reconcile"], ws).status == 0)
        let unknown = try await run(["history", "nosuch"], ws)
        #expect(unknown.status == 1)
        #expect(unknown.stderr.contains("unknown instance 'nosuch'"))
        let zero = try await run(["history", "--limit", "0"], ws)
        #expect(zero.status == 1)
        #expect(zero.stderr.contains("--limit must be at least 1"))
        let truncated = try await run(["history", "--limit", "2"], ws)
        #expect(truncated.status == 0)
        #expect(truncated.stderr.contains("showing the newest 2 of 6 entries; use --limit"), "\(truncated.stderr)")
        let json = try await run(["history", "--limit", "2", "--output", "json"], ws)
        #expect(DFEBinary.json(json)?["total"] as? Int == 6)
        // Columns line up: every line has its status at the same column.
        let lines = try await run(["history"], ws).stdout.split(separator: "\n")
        let columns = Set(
            lines.map { line in
                (line.range(of: "STATUS") ?? line.range(of: "succeeded"))?.lowerBound.utf16Offset(in: line) ?? -1
            })
        #expect(columns.count == 1, "\(lines)")
    }

    // MARK: Config checks and first run

    @Test(arguments: ["9420", "localhost", ":9420", "127.0.0.1:99999"])
    func aListenAddressThatIsNotHostColonPortIsALocatedValidationError(listen: String) async throws {
        let ws = try TemporaryWorkspace(
            settings: TemporaryWorkspace.defaultSettings + "controller: {listen: \"\(listen)\"}\n")
        defer { ws.delete() }
        let result = try await run(["validate"], ws)
        #expect(result.status == 1)
        #expect(result.stderr.contains("config/dfe.yaml:5:"), "\(result.stderr)")
        #expect(result.stderr.contains("controller.listen"))
        if listen == "9420" { #expect(result.stderr.contains("write 127.0.0.1:9420")) }
    }

    @Test func anEmptyDirectoryOrAMissingRootNamesTheRootAndHowToMakeAWorkspace() async throws {
        let empty = FileManager.default.temporaryDirectory.appendingPathComponent("dfe-empty-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: empty, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: empty) }
        for arguments in [["plan"], ["status"], ["validate"], ["history"], ["provisioners"]] {
            let result = try await DFEBinary.run(arguments, in: empty)
            #expect(result.status == 1, "\(arguments)")
            #expect(result.stderr.contains("\(empty.path) is not a dfe workspace"), "\(result.stderr)")
            #expect(result.stderr.contains("dfe init"))
            #expect(!result.stderr.contains("invalid"))
            #expect(!result.stderr.contains(":1:1"))
        }
        let missing = try await DFEBinary.run(["plan", "--root", "/nonexistent/dfe"], in: empty)
        #expect(missing.status == 1)
        #expect(missing.stderr.contains("workspace root /nonexistent/dfe does not exist"))
        #expect(missing.stderr.contains("dfe init /nonexistent/dfe"))
        #expect(missing.stderr.contains("A dfe workspace is a directory holding manifests/"))
    }

    @Test func initWritesAWorkspaceThatPlansAndReconcilesAndRefusesAnExistingOne() async throws {
        let base = FileManager.default.temporaryDirectory.appendingPathComponent("dfe-init-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: base, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: base) }
        let made = try await DFEBinary.run(["init", "ws"], in: base)
        #expect(made.status == 0, "\(made.stderr)")
        let root = base.appendingPathComponent("ws")
        #expect(try String(contentsOf: root.appendingPathComponent(".gitignore"), encoding: .utf8).contains("var/"))
        let plan = try await DFEBinary.run(["plan"], in: root)
        #expect(plan.status == 2, "\(plan.stdout)\(plan.stderr)")
        #expect(try await DFEBinary.run(["reconcile"], in: root).status == 0)
        #expect(try await DFEBinary.run(["plan"], in: root).status == 0)
        let again = try await DFEBinary.run(["init", "ws"], in: base)
        #expect(again.status == 1)
        #expect(again.stderr.contains("already"))
    }

    @Test func schemaIsADraft2020JSONSchemaOfEachKind() async throws {
        let ws = try workspace()
        defer { ws.delete() }
        for kind in ["manifest", "config", "settings"] {
            let result = try await run(["schema", kind], ws)
            #expect(result.status == 0)
            let json = try #require(DFEBinary.json(result))
            #expect(json["$schema"] as? String == "https://json-schema.org/draft/2020-12/schema")
            #expect(json["type"] as? String == "object")
        }
        let manifest = try #require(DFEBinary.json(try await run(["schema"], ws)))
        #expect((manifest["required"] as? [String]) == ["apiVersion", "kind", "metadata", "spec"])
    }

    // MARK: Manifest messages

    @Test func manifestMessagesSayWhatToDo() async throws {
        let ws = try workspace()
        defer { ws.delete() }
        try ws.write(
            "manifests/configmap.yaml",
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: settings}\ndata: {a: b}\n")
        try ws.addInstance("zero", extra: "  storage: {quota: 0Gi}")
        try ws.addInstance("quoted", extra: "  protect: \"true\"")
        let result = try await run(["validate"], ws)
        #expect(result.status == 1)
        let errors = result.stderr.split(separator: "\n").filter { $0.contains(": error: ") }
        #expect(errors.count == 3, "\(result.stderr)")
        #expect(
            errors.contains {
                $0.hasPrefix("manifests/configmap.yaml:1:1: error: not a dfe manifest (apiVersion v1, kind ConfigMap)")
            })
        #expect(errors.contains { $0.contains("quota must be more than zero") })
        #expect(errors.contains { $0.contains("drop the quotes (protect: true)") })
    }

    // MARK: Flags

    @Test func flagsAreCheckedWithClearErrors() async throws {
        let ws = try workspace()
        defer { ws.delete() }
        let xml = try await run(["controller", "--log-format", "xml"], ws)
        #expect(xml.status == 1)
        #expect(xml.stderr.contains("'xml'"), "\(xml.stderr)")
        #expect(xml.stderr.contains("dfe controller"))
        for flag in ["--ref", "--path"] {
            let result = try await run(["controller", flag, "x"], ws)
            #expect(result.status == 1)
            #expect(result.stderr.contains("\(flag) needs --git"), "\(result.stderr)")
        }
        let help = try await run(["controller", "--help"], ws)
        #expect(help.stdout.components(separatedBy: "default: main").count == 2, "\(help.stdout)")
    }

    @Test func onlyANonEmptyNoColorTurnsColourOff() {
        #expect(Terminal.colourAllowed([:]))
        #expect(Terminal.colourAllowed(["NO_COLOR": ""]))
        #expect(!Terminal.colourAllowed(["NO_COLOR": "1"]))
        #expect(!Terminal.colourAllowed(["TERM": "dumb"]))
    }

    // MARK: Escaping

    @Test func everyInterpolatedValueIsEscapedAndOneLineStaysOneLine() {
        let hostile = "x\u{1B}[31m\nmanifests/a.yaml:1:1: error: forged\r\u{7}\u{202E}"
        let line: TextLine = "  # \(hostile) ok"
        #expect(
            line.description == "  # x\\u001b[31m\\nmanifests/a.yaml:1:1: error: forged\\r\\u0007\\u202e ok")
        #expect(!line.description.unicodeScalars.contains { $0.value < 0x20 })
        #expect(LineLogHandler.logfmtValue("a\u{1B}b\nc") == "\"a\\u001bb\\nc\"")
    }

    @Test func hostileManifestValuesNeverReachTheTerminalRaw() async throws {
        let ws = try workspace()
        defer { ws.delete() }
        let yamlOwner = "\"ops\\e[2J@example.com\\nmanifests/alpha.yaml:1:1: error: forged\""
        try ws.write(
            "manifests/alpha.yaml",
            TemporaryWorkspace.manifest("alpha", owner: yamlOwner))
        try ws.write(
            "manifests/evil.yaml",
            TemporaryWorkspace.manifest(
                "evil", extra: "  offerings: {instance-version: \"9\\e[31m\\n  + storage create\"}"))
        var outputs: [ProcessResult] = [try await run(["validate"], ws), try await run(["plan"], ws)]
        try ws.remove("manifests/evil.yaml")
        outputs.append(try await run(["reconcile"], ws))
        outputs.append(try await run(["status"], ws))
        outputs.append(try await run(["status", "alpha"], ws))
        try ws.addInstance("alpha", owner: "other@example.com")
        outputs.append(try await run(["plan"], ws))
        for result in outputs {
            for text in [result.stdout, result.stderr] {
                #expect(!text.unicodeScalars.contains { $0.value == 0x1B || $0.value == 0x07 }, "\(text)")
                #expect(!text.contains("\nmanifests/alpha.yaml:1:1: error: forged"), "\(text)")
                #expect(!text.contains("\n  + storage create"), "\(text)")
            }
        }
        #expect(outputs[0].stderr.contains("\\u001b[31m\\n  + storage create"), "\(outputs[0].stderr)")
        #expect(
            outputs[3].stdout.contains("ops\\u001b[2J@example.com\\nmanifests/alpha.yaml:1:1"), "\(outputs[3].stdout)")
    }
}
