import DFECore
import Testing

/// The pure parts of the GitOps features: bindings, selectors, prune guards, reported drift.
@Suite struct GitOpsPlanTests {
    static func desired(
        _ name: String, version: String = "7.4", labels: [String: String] = [:], drift: DriftPolicy = .repair
    ) -> DesiredInstance {
        let spec = InstanceSpec(
            name: name, labels: labels, owner: "ops@example.com", provisioner: "dreamfactory",
            offerings: ["instance-version": version], driftPolicy: drift,
            source: SourceLocation(path: "manifests/\(name).yaml"))
        return DesiredInstance(
            spec: spec,
            resources: [
                .storage: DesiredResource(
                    kind: .storage, host: "dreamfactory", driver: "local", fields: FieldSet(["zone": "local"])),
                .database: DesiredResource(
                    kind: .database, host: "dreamfactory", driver: "sqlite", fields: FieldSet(["name": name])),
                .instance: DesiredResource(
                    kind: .instance, host: "dreamfactory", driver: "dreamfactory",
                    fields: FieldSet(["offerings.instance-version": version])),
            ])
    }

    static func recorded(_ desired: DesiredInstance, labels: [String: String] = [:]) -> RecordedInstance {
        var record = RecordedInstance(
            name: desired.name, owner: desired.spec.owner, provisioner: "dreamfactory", specHash: desired.specHash,
            phase: .ready, labels: labels)
        for (kind, want) in desired.resources {
            record.resources[kind] = RecordedResource(
                kind: kind, host: want.host, driver: want.driver, specHash: want.specHash, fields: want.fields,
                outputs: [:])
        }
        return record
    }

    func binding(
        _ desired: DesiredInstance?, _ record: RecordedInstance?, observed: [ResourceKey: ObservedStatus] = [:],
        prune: Bool = false
    ) -> InstanceBinding {
        let name = desired?.name ?? record?.name ?? ""
        let plan = Planner.plan(
            desired: desired.map { [$0] } ?? [], recorded: record.map { [name: $0] } ?? [:], observed: observed,
            prune: prune)
        return InstanceBinding(plan.instances[0], desired: desired, recorded: record)
    }

    @Test func aBindingIsEqualOnlyForTheSameChangesFromTheSameRecordedState() {
        let old = Self.desired("a", version: "6.2")
        let new = Self.desired("a", version: "7.4")
        let saved = binding(new, Self.recorded(old))
        #expect(saved.changes.map(\.action) == [.update])
        #expect(saved.resources["instance"]?.recorded == old.resources[.instance]?.specHash)
        #expect(saved.mismatch(binding(new, Self.recorded(old))) == nil)
        // Applied since: nothing to do any more.
        #expect(saved.mismatch(binding(new, Self.recorded(new)))?.contains("nothing to do any more") == true)
        // Another run recorded something else in between.
        let other = Self.desired("a", version: "5.0")
        #expect(saved.mismatch(binding(new, Self.recorded(other)))?.contains("recorded instance changed") == true)
        // Drift by hand in between.
        let drifted = binding(new, Self.recorded(old), observed: [ResourceKey("a", .storage): .missing])
        #expect(saved.mismatch(drifted)?.contains("+ storage create (drift): missing") == true)
    }

    @Test func aPlanFromAnEmptyStateCannotCreateTwice() {
        let want = Self.desired("a")
        let saved = binding(want, nil)
        #expect(saved.changes.map(\.action) == [.create, .create, .create])
        #expect(saved.resources.values.allSatisfy { $0.recorded == nil })
        #expect(saved.mismatch(binding(want, Self.recorded(want))) != nil)
    }

    @Test func reportedDriftIsPlannedAsDriftNotAsAChange() {
        let want = Self.desired("a", drift: .report)
        let plan = Planner.plan(
            desired: [want], recorded: ["a": Self.recorded(want)],
            observed: [ResourceKey("a", .storage): .missing, ResourceKey("a", .instance): .drifted("edited")],
            prune: false)
        #expect(plan.changes.isEmpty)
        #expect(plan.summary.drifted == 2)
        #expect(!plan.summary.hasPendingChanges)
        #expect(plan.drift.map(\.detail) == ["missing", "edited"])
        // A real manifest change is still planned.
        let changed = Self.desired("a", version: "6.2", drift: .report)
        let update = Planner.plan(
            desired: [changed], recorded: ["a": Self.recorded(want)], observed: [:], prune: false)
        #expect(update.changes.map(\.action) == [.update])
    }

    @Test func theDriftPolicyChangesTheInstanceHashOnlyWhenNotTheDefault() {
        #expect(Self.desired("a").specHash == Self.desired("a", drift: .repair).specHash)
        #expect(Self.desired("a").specHash != Self.desired("a", drift: .report).specHash)
    }

    @Test func selectorsParseAndMatchAllLabels() throws {
        #expect(try LabelSelector.parse(["team=a", "tier=prod"]).labels == ["team": "a", "tier": "prod"])
        #expect(try LabelSelector.parse(["note=a=b"]).labels == ["note": "a=b"])
        #expect(throws: SelectionError.malformedSelector("team")) { try LabelSelector.parse(["team"]) }
        #expect(throws: SelectionError.malformedSelector("=a")) { try LabelSelector.parse(["=a"]) }
        #expect(throws: SelectionError.contradictorySelector("team")) {
            try LabelSelector.parse(["team=a", "team=b"])
        }
        let selector = try LabelSelector.parse(["team=a", "tier=prod"])
        #expect(selector.matches(["team": "a", "tier": "prod", "x": "y"]))
        #expect(!selector.matches(["team": "a"]))
    }

    @Test func aSelectionMatchesManifestLabelsAndAnOrphansRecordedLabels() throws {
        let desired = [Self.desired("a", labels: ["team": "x"]), Self.desired("b", labels: ["team": "y"])]
        let orphan = Self.recorded(Self.desired("c"), labels: ["team": "x"])
        // The manifest's labels win over the recorded ones.
        let stale = Self.recorded(desired[1], labels: ["team": "x"])
        let recorded = ["c": orphan, "b": stale]
        let selector = try LabelSelector.parse(["team=x"])
        #expect(try Selection.names(only: nil, selector: selector, desired: desired, recorded: recorded) == ["a", "c"])
        #expect(
            try Selection.names(only: ["a", "b"], selector: selector, desired: desired, recorded: recorded) == ["a"])
        #expect(try Selection.names(only: nil, selector: LabelSelector(), desired: desired, recorded: recorded) == nil)
        #expect(throws: SelectionError.unknownInstances(["z"])) {
            try Selection.names(only: ["a", "z"], selector: LabelSelector(), desired: desired, recorded: recorded)
        }
        #expect(throws: SelectionError.selectorMatchesNothing(try LabelSelector.parse(["team=q"]))) {
            try Selection.names(
                only: nil, selector: try LabelSelector.parse(["team=q"]), desired: desired, recorded: recorded)
        }
    }

    @Test func pruneGuardsRefuseAnEmptyManifestSetAndMoreThanMaxPrune() {
        let records = ["a", "b", "c"].map { Self.recorded(Self.desired($0)) }
        let all = Planner.plan(
            desired: [], recorded: Dictionary(uniqueKeysWithValues: records.map { ($0.name, $0) }), observed: [:],
            prune: true)
        #expect(PruneGuard.check(all, manifests: 0, maxPrune: nil, pruneAll: false) == .everyInstance(count: 3))
        #expect(PruneGuard.check(all, manifests: 0, maxPrune: nil, pruneAll: true) == nil)
        #expect(PruneGuard.check(all, manifests: 5, maxPrune: 2, pruneAll: false) == .overLimit(count: 3, limit: 2))
        #expect(PruneGuard.check(all, manifests: 5, maxPrune: 3, pruneAll: false) == nil)
        let orphansOnly = Planner.plan(
            desired: [], recorded: Dictionary(uniqueKeysWithValues: records.map { ($0.name, $0) }), observed: [:],
            prune: false)
        #expect(PruneGuard.check(orphansOnly, manifests: 0, maxPrune: 0, pruneAll: false) == nil)
        #expect(
            PruneRefusal.everyInstance(count: 3).description.contains("would prune 3 instances, every recorded one"))
        #expect(PruneRefusal.overLimit(count: 3, limit: 2).description.contains("maxPrune: 2"))
    }
}
