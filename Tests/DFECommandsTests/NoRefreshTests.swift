import DFETestSupport
import Foundation
import Testing

/// `--no-refresh`: plan from the recorded state alone, observing nothing.
@Suite struct NoRefreshTests {
    @Test func planWithoutRefreshTrustsTheRecordedStateAndObservesNothing() async throws {
        let ws = try TemporaryWorkspace(prefix: "dfe-norefresh")
        defer { ws.delete() }
        try ws.addInstance("alpha")
        let apply = try await DFEBinary.run(["reconcile"], in: ws.root)
        try #require(apply.status == 0, "\(apply.stderr)")
        // Drift made by hand: a refreshing plan sees it, a plan without refresh cannot.
        try ws.remove("var/instances/alpha/instance.json")
        let refreshed = try await DFEBinary.run(["plan", "--output", "json"], in: ws.root)
        #expect(refreshed.status == 2, "\(refreshed.stdout)")
        let unrefreshed = try await DFEBinary.run(["plan", "--no-refresh", "--output", "json"], in: ws.root)
        #expect(unrefreshed.status == 0, "\(unrefreshed.stdout) \(unrefreshed.stderr)")
        #expect((DFEBinary.json(unrefreshed)?["summary"] as? [String: Int])?["unchanged"] == 3)
        // A new manifest is still planned: nothing recorded means missing.
        try ws.addInstance("beta")
        let withNew = try await DFEBinary.run(
            ["reconcile", "--dry-run", "--no-refresh", "--output", "json"], in: ws.root)
        #expect(withNew.status == 2)
        #expect((DFEBinary.json(withNew)?["summary"] as? [String: Int])?["create"] == 3)
    }

    @Test func savedPlanRecordsThatItWasNotRefreshed() async throws {
        let ws = try TemporaryWorkspace(prefix: "dfe-norefresh")
        defer { ws.delete() }
        try ws.addInstance("alpha")
        let out = ws.root.appendingPathComponent("plan.json")
        let plan = try await DFEBinary.run(["plan", "--no-refresh", "--out", out.path], in: ws.root)
        #expect(plan.status == 2, "\(plan.stderr)")
        let saved = try JSONSerialization.jsonObject(with: Data(contentsOf: out)) as? [String: Any]
        #expect(saved?["refresh"] as? Bool == false)
    }
}
