import DFETestSupport
import Foundation
import Testing

/// `plan --out`, `reconcile --plan`, selectors and prune guards as an operator runs them.
@Suite struct GitOpsCLITests {
    @Test func aSavedPlanIsAppliedOnceAndChangedInputsRefuseItWithNothingDone() async throws {
        let ws = try TemporaryWorkspace()
        defer { ws.delete() }
        try ws.addInstance("alpha")
        let plan = try await DFEBinary.run(["plan", "--out", "plan.json"], in: ws.root)
        #expect(plan.status == 2, "\(plan.stderr)")
        let attributes = try FileManager.default.attributesOfItem(
            atPath: ws.root.appendingPathComponent("plan.json").path)
        #expect(attributes[.posixPermissions] as? Int == 0o600)
        let saved = try #require(
            try JSONSerialization.jsonObject(with: Data(ws.read("plan.json").utf8)) as? [String: Any])
        #expect(saved["format"] as? String == "dfe-plan/v1")
        #expect((saved["inputs"] as? String)?.hasPrefix("sha256:") == true)
        #expect(saved["refresh"] as? Bool == true)
        #expect(saved.keys.contains("revision"))

        // A manifest edited after the review: the whole apply is refused.
        try ws.addInstance("alpha", extra: "  state: locked")
        let refused = try await DFEBinary.run(["reconcile", "--plan", "plan.json"], in: ws.root)
        #expect(refused.status == 1)
        #expect(refused.stderr.contains("the manifests or config changed since it was made"))
        #expect(!ws.exists("var/instances"))

        try ws.addInstance("alpha")
        let apply = try await DFEBinary.run(["reconcile", "--plan", "plan.json"], in: ws.root)
        #expect(apply.status == 0, "\(apply.stderr)")
        #expect(apply.stdout.contains("Apply complete: 3 created"))
        let again = try await DFEBinary.run(["reconcile", "--plan", "plan.json", "--output", "json"], in: ws.root)
        #expect(again.status == 1)
        let json = try #require(DFEBinary.json(again))
        #expect(json["stale"] as? [String] == ["alpha"])
        #expect((json["changes"] as? [Any])?.isEmpty == true)
        let text = try await DFEBinary.run(["reconcile", "--plan", "plan.json"], in: ws.root)
        #expect(text.stdout.contains("stale: alpha (nothing to do any more"))
    }

    @Test func aSavedPlanHoldsNoSecret() async throws {
        let ws = try TemporaryWorkspace()
        defer { ws.delete() }
        try ws.addInstance("alpha")
        _ = try await DFEBinary.run(["reconcile"], in: ws.root)
        try ws.addInstance("alpha", extra: "  state: locked")
        let plan = try await DFEBinary.run(["plan", "--out", "plan.json", "--output", "markdown"], in: ws.root)
        #expect(plan.status == 2)
        let appKey = try #require(ws.metadata("alpha")["appKey"] as? [String: String])
        let secret = try #require(appKey["clientSecret"])
        #expect(try !ws.read("plan.json").contains(secret))
        #expect(!plan.stdout.contains(secret))
        #expect(plan.stdout.contains("<details><summary><code>alpha</code>: 1 update</summary>"))
        #expect(plan.stdout.contains("platformState</code>: <code>active</code> → <code>locked</code>"))
    }

    @Test func selectorsWorkOnPlanReconcileAndStatusAndMatchingNothingExitsOne() async throws {
        let ws = try TemporaryWorkspace()
        defer { ws.delete() }
        try ws.write(
            "manifests/all.yaml",
            """
            apiVersion: dfe/v1
            kind: Instance
            metadata: {name: alpha, labels: {team: a}}
            spec: {owner: a@example.com}
            ---
            apiVersion: dfe/v1
            kind: Instance
            metadata: {name: beta, labels: {team: b}}
            spec: {owner: b@example.com}

            """)
        let plan = try await DFEBinary.run(["plan", "-l", "team=a", "--output", "json"], in: ws.root)
        #expect(plan.status == 2)
        let changes = try #require(DFEBinary.json(plan)?["changes"] as? [[String: Any]])
        #expect(Set(changes.compactMap { $0["instance"] as? String }) == ["alpha"])
        let apply = try await DFEBinary.run(["reconcile", "--selector", "team=b"], in: ws.root)
        #expect(apply.status == 0)
        let status = try await DFEBinary.run(["status", "-l", "team=b", "--output", "json"], in: ws.root)
        let names = try #require(DFEBinary.json(status)?["instances"] as? [[String: Any]]).compactMap {
            $0["name"] as? String
        }
        #expect(names == ["beta"])
        for arguments in [["plan", "-l", "team=z"], ["reconcile", "-l", "team=z"], ["status", "-l", "team=z"]] {
            let none = try await DFEBinary.run(arguments, in: ws.root)
            #expect(none.status == 1, "\(arguments)")
            #expect(none.stderr.contains("--selector team=z matches no instance"), "\(arguments)")
        }
        let bad = try await DFEBinary.run(["plan", "-l", "team"], in: ws.root)
        #expect(bad.status == 1)
        #expect(bad.stderr.contains("use KEY=VALUE"))
        let only = try await DFEBinary.run(["plan", "--only", "nope"], in: ws.root)
        #expect(only.status == 1)
        #expect(only.stderr.contains("--only nope: no such instance"))
    }

    @Test func anEmptyManifestsDirectoryRefusesToPruneInPlanAndApply() async throws {
        let ws = try TemporaryWorkspace()
        defer { ws.delete() }
        try ws.addInstance("alpha")
        try ws.addInstance("beta")
        _ = try await DFEBinary.run(["reconcile"], in: ws.root)
        try ws.remove("manifests/alpha.yaml")
        try ws.remove("manifests/beta.yaml")
        for arguments in [["plan", "--prune"], ["reconcile", "--prune"]] {
            let refused = try await DFEBinary.run(arguments, in: ws.root)
            #expect(refused.status == 1)
            #expect(refused.stderr.contains("would delete all 2 recorded instances"))
            #expect(refused.stderr.contains("--prune-all"))
        }
        #expect(ws.exists("var/instances/alpha/instance.json"))
        let all = try await DFEBinary.run(["reconcile", "--prune", "--prune-all"], in: ws.root)
        #expect(all.status == 0, "\(all.stderr)")
        #expect(!ws.exists("var/instances/alpha/instance.json"))
    }
}
