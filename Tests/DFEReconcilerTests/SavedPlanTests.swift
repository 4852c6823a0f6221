import DFECore
import DFEReconciler
import DFETestSupport
import Foundation
import Testing

extension TemporaryWorkspace {
    /// A digest of every file below the root except the state database (whose lease row a run always touches).
    func resourceDigest() throws -> String {
        var lines: [String] = []
        for path in allPaths() where !path.contains("state.sqlite") {
            let url = root.appendingPathComponent(path)
            var line = path
            if let data = FileManager.default.contents(atPath: url.path) {
                line += " " + SHA256.hex(String(decoding: data, as: UTF8.self))
            }
            lines.append(line)
        }
        return SHA256.hex(lines.joined(separator: "\n"))
    }
}

/// Saved plans bound per instance: applied only when re-planning gives exactly the reviewed changes.
@Suite struct SavedPlanTests {
    /// A dry run's bindings, as `dfe plan --out` saves them.
    func bindings(_ ws: TemporaryWorkspace, _ options: ReconcileOptions = ReconcileOptions(dryRun: true)) async throws
        -> [String: InstanceBinding]
    {
        var options = options
        options.dryRun = true
        let report = try await ws.reconciler().run(options)
        return Dictionary(uniqueKeysWithValues: report.bindings.map { ($0.name, $0) })
    }

    func apply(_ ws: TemporaryWorkspace, _ binding: [String: InstanceBinding]) async throws -> ReconcileReport {
        var options = ReconcileOptions()
        options.binding = binding
        return try await ws.reconciler().run(options)
    }

    @Test func aPlanFromAnEmptyStateCreatesOnceAndIsStaleTheSecondTime() async throws {
        let ws = try TemporaryWorkspace()
        defer { ws.delete() }
        try ws.addInstance("alpha")
        try ws.addInstance("beta")
        let saved = try await bindings(ws)
        #expect(saved.keys.sorted() == ["alpha", "beta"])
        let first = try await apply(ws, saved)
        #expect(first.stale.isEmpty)
        #expect(first.applied.count == 6)
        #expect(try ws.recorded().keys.sorted() == ["alpha", "beta"])
        let digest = try ws.resourceDigest()

        let second = try await apply(ws, saved)
        #expect(second.applied.isEmpty)
        #expect(second.stale.map(\.name) == ["alpha", "beta"])
        #expect(second.stale.first?.reason.contains("nothing to do any more") == true)
        #expect(try ws.resourceDigest() == digest)
    }

    @Test func aHandMadeDriftBetweenPlanAndApplyMakesThatInstanceStaleAndLeavesItAlone() async throws {
        let ws = try TemporaryWorkspace()
        defer { ws.delete() }
        try ws.addInstance("alpha")
        try ws.addInstance("beta")
        _ = try await ws.reconciler().run(ReconcileOptions())
        try ws.addInstance("alpha", extra: "  state: locked")
        try ws.addInstance("beta", extra: "  state: locked")
        let saved = try await bindings(ws)
        // Drift by hand after the review: beta's storage tree disappears.
        try FileManager.default.removeItem(atPath: ws.storagePath("beta"))
        let report = try await apply(ws, saved)
        #expect(report.stale.map(\.name) == ["beta"])
        #expect(report.stale.first?.reason.contains("storage create (drift)") == true)
        #expect(report.applied.map(\.instance) == ["alpha"])
        #expect(!FileManager.default.fileExists(atPath: ws.storagePath("beta")))
        #expect(
            try ws.metadata("beta")["instance"].flatMap { ($0 as? [String: Any])?["platformState"] as? String }
                == "active")
        #expect(
            try ws.metadata("alpha")["instance"].flatMap { ($0 as? [String: Any])?["platformState"] as? String }
                == "locked")
    }

    @Test func anotherRunApplyingBetweenPlanAndApplyMakesThePlanStale() async throws {
        let ws = try TemporaryWorkspace()
        defer { ws.delete() }
        try ws.addInstance("alpha")
        _ = try await ws.reconciler().run(ReconcileOptions())
        try ws.addInstance("alpha", extra: "  offerings: {instance-version: \"6.2\"}")
        let saved = try await bindings(ws)
        #expect(saved["alpha"]?.changes.map(\.action) == [.update])
        // Someone applies a different manifest in between, then the reviewed one comes back.
        try ws.addInstance("alpha", extra: "  state: maintenance")
        _ = try await ws.reconciler().run(ReconcileOptions())
        try ws.addInstance("alpha", extra: "  offerings: {instance-version: \"6.2\"}")
        let report = try await apply(ws, saved)
        #expect(report.stale.map(\.name) == ["alpha"])
        #expect(report.stale.first?.reason.contains("recorded instance changed") == true)
        #expect(report.applied.isEmpty)
    }

    @Test func instancesNotInThePlanAreNotTouched() async throws {
        let ws = try TemporaryWorkspace()
        defer { ws.delete() }
        try ws.addInstance("alpha")
        var only = ReconcileOptions(dryRun: true)
        only.only = ["alpha"]
        let saved = try await bindings(ws, only)
        try ws.addInstance("beta")
        let report = try await apply(ws, saved)
        #expect(report.stale.isEmpty)
        #expect(report.applied.map(\.instance) == ["alpha", "alpha", "alpha"])
        #expect(try ws.recorded()["beta"] == nil)
        #expect(!ws.exists("var/instances/beta"))
    }

    @Test func anInstanceGoneFromManifestsAndStateIsStale() async throws {
        let ws = try TemporaryWorkspace()
        defer { ws.delete() }
        try ws.addInstance("alpha")
        try ws.addInstance("beta")
        let saved = try await bindings(ws)
        try ws.remove("manifests/beta.yaml")
        let report = try await apply(ws, saved)
        #expect(report.stale == [StaleInstance(name: "beta", reason: "no longer in the manifests or the state")])
        #expect(try ws.recorded().keys.sorted() == ["alpha"])
    }

    @Test func unchangedInstancesInThePlanStayUnchangedAndCountAsApplied() async throws {
        let ws = try TemporaryWorkspace()
        defer { ws.delete() }
        try ws.addInstance("alpha")
        _ = try await ws.reconciler().run(ReconcileOptions())
        let saved = try await bindings(ws)
        #expect(saved["alpha"]?.changes.isEmpty == true)
        let report = try await apply(ws, saved)
        #expect(report.stale.isEmpty)
        #expect(report.applied.isEmpty)
    }

    @Test func aSavedPlanRoundTripsThroughItsFileWithModeSixHundred() async throws {
        let ws = try TemporaryWorkspace()
        defer { ws.delete() }
        try ws.addInstance("alpha")
        let report = try await ws.reconciler().run(ReconcileOptions(dryRun: true))
        let saved = SavedPlan(
            createdAt: Date(), revision: nil, inputs: InputDigest.of(ws.workspace), refresh: true, prune: false,
            pruneAll: false, report: report)
        let url = ws.root.appendingPathComponent("plan.json")
        try saved.write(to: url)
        let mode = try FileManager.default.attributesOfItem(atPath: url.path)[.posixPermissions] as? Int
        #expect(mode == 0o600)
        let read = try SavedPlan.read(from: url)
        #expect(read == saved)
        #expect(read.format == "dfe-plan/v1")
        #expect(try ws.read("plan.json").contains("\"revision\" : null"))
        try ws.write("bad.json", "{\"format\": \"dfe-plan/v9\"}")
        #expect(throws: PlanFileError.self) { try SavedPlan.read(from: ws.root.appendingPathComponent("bad.json")) }
    }

    @Test func theInputDigestDependsOnContentsNotOnWhereTheWorkspaceLies() throws {
        let one = try TemporaryWorkspace()
        let two = try TemporaryWorkspace()
        defer {
            one.delete()
            two.delete()
        }
        try one.addInstance("alpha")
        try two.addInstance("alpha")
        #expect(InputDigest.of(one.workspace) == InputDigest.of(two.workspace))
        try two.write("manifests/alpha.yaml", TemporaryWorkspace.manifest("alpha") + "\n# a comment\n")
        #expect(InputDigest.of(one.workspace) != InputDigest.of(two.workspace))
        try two.addInstance("alpha")
        try two.write("manifests/extra.txt", "not a manifest")
        #expect(InputDigest.of(one.workspace) == InputDigest.of(two.workspace))
        try two.write("config/dfe.yaml", TemporaryWorkspace.defaultSettings + "prune: false\n")
        #expect(InputDigest.of(one.workspace) != InputDigest.of(two.workspace))
    }
}

/// `driftPolicy: Report`, the prune guards and selectors, end to end on real files and state.
@Suite struct GitOpsGuardTests {
    @Test func reportedDriftIsNotRepairedAndTheInstanceIsDrifted() async throws {
        let ws = try TemporaryWorkspace()
        defer { ws.delete() }
        try ws.addInstance("alpha", extra: "  driftPolicy: Report")
        try ws.addInstance("beta")
        _ = try await ws.reconciler().run(ReconcileOptions())
        try FileManager.default.removeItem(atPath: ws.storagePath("alpha"))
        try FileManager.default.removeItem(atPath: ws.storagePath("beta"))
        let plan = try await ws.reconciler().run(ReconcileOptions(dryRun: true))
        #expect(plan.plan.drift == [DriftReport(instance: "alpha", resource: .storage, detail: "missing")])
        #expect(plan.summary.drifted == 1)
        #expect(plan.plan.changes.map(\.instance) == ["beta"])
        let report = try await ws.reconciler().run(ReconcileOptions())
        #expect(report.errors.isEmpty)
        #expect(!FileManager.default.fileExists(atPath: ws.storagePath("alpha")))
        #expect(FileManager.default.fileExists(atPath: ws.storagePath("beta")))
        #expect(try ws.recorded()["alpha"]?.phase == .drifted)
        #expect(try ws.recorded()["beta"]?.phase == .ready)
        // Repair again once the policy is back to the default.
        try ws.addInstance("alpha")
        _ = try await ws.reconciler().run(ReconcileOptions())
        #expect(FileManager.default.fileExists(atPath: ws.storagePath("alpha")))
        #expect(try ws.recorded()["alpha"]?.phase == .ready)
    }

    @Test func theConfigDefaultDriftPolicyAppliesToManifestsWithoutOne() async throws {
        let ws = try TemporaryWorkspace(settings: TemporaryWorkspace.defaultSettings + "driftPolicy: Report\n")
        defer { ws.delete() }
        try ws.addInstance("alpha")
        try ws.addInstance("beta", extra: "  driftPolicy: Repair")
        _ = try await ws.reconciler().run(ReconcileOptions())
        try FileManager.default.removeItem(atPath: ws.storagePath("alpha"))
        try FileManager.default.removeItem(atPath: ws.storagePath("beta"))
        let plan = try await ws.reconciler().run(ReconcileOptions(dryRun: true))
        #expect(plan.plan.drift.map(\.instance) == ["alpha"])
        #expect(plan.plan.changes.map(\.instance) == ["beta"])
    }

    @Test func pruningEveryInstanceIsRefusedWithNothingDoneUnlessPruneAll() async throws {
        let ws = try TemporaryWorkspace()
        defer { ws.delete() }
        try ws.addInstance("alpha", extra: "  storage: {deletionPolicy: Delete}")
        try ws.addInstance("beta")
        _ = try await ws.reconciler().run(ReconcileOptions())
        try ws.remove("manifests/alpha.yaml")
        try ws.remove("manifests/beta.yaml")
        let before = try ws.resourceDigest()
        for dryRun in [true, false] {
            await #expect(throws: ReconcileError.self) {
                _ = try await ws.reconciler().run(ReconcileOptions(dryRun: dryRun, prune: true))
            }
        }
        do {
            _ = try await ws.reconciler().run(ReconcileOptions(prune: true))
        } catch {
            guard case .pruneRefused(.everyInstance(let count)) = error else { throw error }
            #expect(count == 2)
            #expect(error.description.contains("--prune-all"))
        }
        #expect(try ws.resourceDigest() == before)
        #expect(try ws.recorded().keys.sorted() == ["alpha", "beta"])
        var all = ReconcileOptions(prune: true)
        all.pruneAll = true
        let report = try await ws.reconciler().run(all)
        #expect(report.errors.isEmpty)
        #expect(try ws.recorded().isEmpty)
    }

    @Test func maxPruneRefusesARunThatWouldPruneMore() async throws {
        let ws = try TemporaryWorkspace(settings: TemporaryWorkspace.defaultSettings + "maxPrune: 1\n")
        defer { ws.delete() }
        for name in ["alpha", "beta", "gamma"] { try ws.addInstance(name) }
        _ = try await ws.reconciler().run(ReconcileOptions())
        try ws.remove("manifests/alpha.yaml")
        try ws.remove("manifests/beta.yaml")
        let before = try ws.resourceDigest()
        do {
            _ = try await ws.reconciler().run(ReconcileOptions(prune: true))
            Issue.record("expected a refusal")
        } catch {
            guard case .pruneRefused(.overLimit(let count, let limit)) = error else { throw error }
            #expect(count == 2 && limit == 1)
            #expect(error.description.contains("maxPrune: 1"))
        }
        #expect(try ws.resourceDigest() == before)
        // One at a time is within the limit.
        let one = try await ws.reconciler().run(ReconcileOptions(prune: true, only: ["alpha"]))
        #expect(one.errors.isEmpty)
        #expect(try ws.recorded().keys.sorted() == ["beta", "gamma"])
    }

    @Test func selectorsLimitARunAndOneMatchingNothingIsAnError() async throws {
        let ws = try TemporaryWorkspace()
        defer { ws.delete() }
        try ws.write(
            "manifests/all.yaml",
            """
            apiVersion: dfe/v1
            kind: Instance
            metadata: {name: alpha, labels: {team: a, tier: prod}}
            spec: {owner: a@example.com}
            ---
            apiVersion: dfe/v1
            kind: Instance
            metadata: {name: beta, labels: {team: a, tier: dev}}
            spec: {owner: b@example.com}
            ---
            apiVersion: dfe/v1
            kind: Instance
            metadata: {name: gamma, labels: {team: g, tier: prod}}
            spec: {owner: g@example.com}

            """)
        var options = ReconcileOptions()
        options.selector = try LabelSelector.parse(["team=a", "tier=prod"])
        let report = try await ws.reconciler().run(options)
        #expect(Set(report.applied.map(\.instance)) == ["alpha"])
        options.selector = try LabelSelector.parse(["team=nobody"])
        do {
            _ = try await ws.reconciler().run(options)
            Issue.record("expected an error")
        } catch {
            guard case .selection(.selectorMatchesNothing) = error else { throw error }
        }
        do {
            _ = try await ws.reconciler().run(ReconcileOptions(dryRun: true, only: ["nope"]))
            Issue.record("expected an error")
        } catch {
            guard case .selection(.unknownInstances(["nope"])) = error else { throw error }
        }
        #expect(try ws.recorded().keys.sorted() == ["alpha"])
    }
}
