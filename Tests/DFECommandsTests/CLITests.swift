import DFETestSupport
import Foundation
import Testing

/// The `dfe` binary as an operator runs it: exit codes, output shapes, secrets.
@Suite struct CLITests {
    func threeInstances() throws -> TemporaryWorkspace {
        let ws = try TemporaryWorkspace()
        try ws.addInstance("alpha", owner: "a@example.com")
        try ws.addInstance("beta", owner: "b@example.com", extra: "  offerings: {instance-version: \"6.2\"}")
        try ws.addInstance("gamma", owner: "a@example.com")
        return ws
    }

    @Test func planExitsTwoWithNineCreatesThenReconcileConvergesAndPlanExitsZero() async throws {
        let ws = try threeInstances()
        defer { ws.delete() }
        let plan = try await DFEBinary.run(["reconcile", "--dry-run", "--output", "json"], in: ws.root)
        #expect(plan.status == 2)
        let json = try #require(DFEBinary.json(plan))
        #expect(json["dryRun"] as? Bool == true)
        let summary = try #require(json["summary"] as? [String: Int])
        #expect(
            summary == [
                "create": 9, "update": 0, "delete": 0, "retain": 0, "unchanged": 0, "orphaned": 0, "failed": 0,
                "held": 0, "drifted": 0,
            ])
        let changes = try #require(json["changes"] as? [[String: Any]])
        #expect(changes.count == 9)
        #expect(changes.first?["instance"] as? String == "alpha")
        #expect(changes.first?["resource"] as? String == "storage")
        #expect(changes.first?["action"] as? String == "create")
        #expect(changes.first?["reason"] as? String == "new")
        #expect((json["errors"] as? [Any])?.isEmpty == true)

        let apply = try await DFEBinary.run(["reconcile"], in: ws.root)
        #expect(apply.status == 0, "\(apply.stderr)")
        #expect(apply.stdout.contains("Apply complete: 9 created"))

        let again = try await DFEBinary.run(["plan"], in: ws.root)
        #expect(again.status == 0)
        #expect(again.stdout.contains("No changes. 9 resources up to date"))
    }

    @Test func textPlanShowsChangedFieldsLikeTerraformWithoutColourWhenNotATerminal() async throws {
        let ws = try threeInstances()
        defer { ws.delete() }
        _ = try await DFEBinary.run(["reconcile"], in: ws.root)
        try ws.addInstance("beta", owner: "b@example.com", extra: "  offerings: {instance-version: \"7.4\"}")
        let plan = try await DFEBinary.run(["plan"], in: ws.root, environment: ["NO_COLOR": "1"])
        #expect(plan.status == 2)
        #expect(plan.stdout.contains("# beta"))
        #expect(plan.stdout.contains("~ instance  update (changed)"))
        #expect(plan.stdout.contains("offerings.instance-version: \"6.2\" → \"7.4\""))
        #expect(plan.stdout.contains("Plan: 0 to create, 1 to update, 0 to delete, 0 to retain; 8 unchanged"))
        #expect(!plan.stdout.contains("\u{1B}["))
    }

    @Test func secretsNeverAppearInAnyOutput() async throws {
        let ws = try threeInstances()
        defer { ws.delete() }
        var outputs: [String] = []
        for arguments in [["reconcile"], ["reconcile", "--output", "json"], ["plan", "--output", "json"]] {
            let result = try await DFEBinary.run(arguments, in: ws.root)
            outputs += [result.stdout, result.stderr]
        }
        try ws.addInstance("alpha", owner: "a@example.com", extra: "  state: locked")
        for arguments in [
            ["plan"], ["reconcile", "--log-level", "trace"], ["status"], ["status", "--output", "json"], ["history"],
            ["history", "--output", "json"], ["status", "alpha"], ["provisioners", "--output", "json"],
        ] {
            let result = try await DFEBinary.run(arguments, in: ws.root)
            outputs += [result.stdout, result.stderr]
        }
        for name in ["alpha", "beta", "gamma"] {
            let appKey = try #require(ws.metadata(name)["appKey"] as? [String: String])
            let secret = try #require(appKey["clientSecret"])
            #expect(secret.count >= 32)
            for output in outputs { #expect(!output.contains(secret)) }
        }
    }

    @Test func statusJSONHasTheContractKeysAndUnknownNameExitsOne() async throws {
        let ws = try threeInstances()
        defer { ws.delete() }
        _ = try await DFEBinary.run(["reconcile"], in: ws.root)
        let status = try await DFEBinary.run(["status", "--output", "json"], in: ws.root)
        #expect(status.status == 0)
        let instances = try #require(DFEBinary.json(status)?["instances"] as? [[String: Any]])
        #expect(instances.map { $0["name"] as? String } == ["alpha", "beta", "gamma"])
        let alpha = try #require(instances.first)
        for key in [
            "name", "owner", "provisioner", "phase", "lastError", "attempts", "nextAttemptAt", "revision", "resources",
        ] {
            #expect(alpha.keys.contains(key), "missing \(key)")
        }
        #expect(alpha["phase"] as? String == "ready")
        let resources = try #require(alpha["resources"] as? [String: [String: Any]])
        #expect(resources["storage"]?["driver"] as? String == "local")
        #expect((resources["storage"]?["path"] as? String)?.hasPrefix("/") == true)
        #expect(resources["database"]?["path"] as? String == ws.databasePath("alpha"))
        #expect(resources["instance"]?["endpoint"] as? String == "https://alpha.dfe.localhost")
        #expect(resources["instance"]?["metadataPath"] as? String == ws.metadataPath("alpha"))

        let unknown = try await DFEBinary.run(["status", "nope"], in: ws.root)
        #expect(unknown.status == 1)
        #expect(unknown.stderr.contains("unknown instance 'nope'"))
    }

    @Test func validateAndProvisionersDescribeTheWorkspace() async throws {
        let ws = try threeInstances()
        defer { ws.delete() }
        let validate = try await DFEBinary.run(["validate"], in: ws.root)
        #expect(validate.status == 0)
        #expect(validate.stdout.contains("3 instance manifests and 1 host are valid"))
        let provisioners = try await DFEBinary.run(["provisioners", "--output", "json"], in: ws.root)
        let hosts = try #require(DFEBinary.json(provisioners)?["hosts"] as? [[String: Any]])
        #expect(hosts.first?["resourceUri"] as? String == "/api/v2/system/")
        let provides = try #require(hosts.first?["provides"] as? [String: [String: Any]])
        #expect(provides["database"]?["driver"] as? String == "sqlite")
    }

    @Test func anUnknownDriverIsAConfigErrorListingTheKnownOnes() async throws {
        let provisioners = TemporaryWorkspace.defaultProvisioners.replacingOccurrences(
            of: "{driver: sqlite,", with: "{driver: oracle,")
        let ws = try TemporaryWorkspace(provisioners: provisioners)
        defer { ws.delete() }
        try ws.addInstance("alpha")
        let result = try await DFEBinary.run(["reconcile"], in: ws.root)
        #expect(result.status == 1)
        #expect(result.stderr.contains("config/provisioners.yaml:"))
        #expect(result.stderr.contains("unknown database driver 'oracle'"))
        #expect(result.stderr.contains("mysql, postgres, sqlite"))
        #expect(!ws.exists("var"))
    }
}

@Suite struct CLIErrorTests {
    @Test func usageErrorsExitOneLikeEveryOtherError() async throws {
        let ws = try TemporaryWorkspace()
        defer { ws.delete() }
        let bad = try await DFEBinary.run(["plan", "--output", "jsn"], in: ws.root)
        #expect(bad.status == 1)
        #expect(bad.stderr.contains("'jsn' is invalid"))
        let version = try await DFEBinary.run(["--version"], in: ws.root)
        #expect(version.status == 0)
    }

    @Test func statusDuringABadCommitShowsRecordedPhasesNotOrphans() async throws {
        let ws = try TemporaryWorkspace()
        defer { ws.delete() }
        try ws.addInstance("alpha")
        _ = try await DFEBinary.run(["reconcile"], in: ws.root)
        try ws.write("manifests/broken.yaml", "apiVersion: dfe/v1\nkind: Nope\n")
        let status = try await DFEBinary.run(["status", "--output", "json"], in: ws.root)
        #expect(status.status == 0)
        let instances = try #require(DFEBinary.json(status)?["instances"] as? [[String: Any]])
        #expect(instances.first?["phase"] as? String == "ready")
        let provisioners = try await DFEBinary.run(["provisioners"], in: ws.root)
        #expect(provisioners.status == 0)
        #expect(provisioners.stdout.contains("dreamfactory (default)"))
    }
}
