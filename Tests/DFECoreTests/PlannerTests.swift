import DFECore
import Testing

/// Builders for plans: one host `dreamfactory` with drivers local/sqlite/dreamfactory.
private enum Fixture {
    static func spec(
        _ name: String, protect: Bool = false, suspend: Bool = false, storagePolicy: DeletionPolicy = .retain,
        databasePolicy: DeletionPolicy = .retain
    ) -> InstanceSpec {
        InstanceSpec(
            name: name, owner: "ops@example.com", provisioner: "dreamfactory", offerings: ["instance-version": "7.4"],
            storageDeletionPolicy: storagePolicy, databaseDeletionPolicy: databasePolicy, protect: protect,
            suspend: suspend, source: SourceLocation(path: "manifests/\(name).yaml"))
    }

    static func desired(
        _ name: String, version: String = "7.4", protect: Bool = false, suspend: Bool = false,
        storagePolicy: DeletionPolicy = .retain, databasePolicy: DeletionPolicy = .retain
    ) -> DesiredInstance {
        let spec = spec(
            name, protect: protect, suspend: suspend, storagePolicy: storagePolicy, databasePolicy: databasePolicy)
        return DesiredInstance(
            spec: spec,
            resources: [
                .storage: DesiredResource(
                    kind: .storage, host: "dreamfactory", driver: "local",
                    fields: FieldSet(["path": "/srv/storage/\(name)", "zone": "local"])),
                .database: DesiredResource(
                    kind: .database, host: "dreamfactory", driver: "sqlite",
                    fields: FieldSet(["path": "/srv/databases/\(name).sqlite"])),
                .instance: DesiredResource(
                    kind: .instance, host: "dreamfactory", driver: "dreamfactory",
                    fields: FieldSet([
                        "endpoint": "https://\(name).dfe.localhost", "offerings.instance-version": version,
                    ])),
            ])
    }

    /// The state a successful apply of `desired` leaves behind.
    static func recorded(_ desired: DesiredInstance, kinds: [ResourceKind] = ResourceKind.allCases)
        -> RecordedInstance
    {
        var resources: [ResourceKind: RecordedResource] = [:]
        for kind in kinds {
            guard let want = desired.resources[kind] else { continue }
            resources[kind] = RecordedResource(
                kind: kind, host: want.host, driver: want.driver, specHash: want.specHash, fields: want.fields,
                outputs: [:])
        }
        return RecordedInstance(
            name: desired.name, owner: desired.spec.owner, provisioner: desired.spec.provisioner,
            specHash: desired.specHash, phase: .ready, protect: desired.spec.protect,
            storageDeletionPolicy: desired.spec.storageDeletionPolicy,
            databaseDeletionPolicy: desired.spec.databaseDeletionPolicy, resources: resources)
    }

    static func observed(_ name: String, _ statuses: [ResourceKind: ObservedStatus]) -> [ResourceKey: ObservedStatus] {
        var result: [ResourceKey: ObservedStatus] = [:]
        for (kind, status) in statuses { result[ResourceKey(name, kind)] = status }
        return result
    }

    static func all(_ name: String, _ status: ObservedStatus) -> [ResourceKey: ObservedStatus] {
        observed(name, [.storage: status, .database: status, .instance: status])
    }
}

/// A compact, comparable view of a change.
private struct Step: Equatable, CustomStringConvertible {
    var instance: String
    var resource: ResourceKind
    var action: Action
    var reason: String

    init(_ instance: String, _ resource: ResourceKind, _ action: Action, _ reason: String) {
        self.instance = instance
        self.resource = resource
        self.action = action
        self.reason = reason
    }

    init(_ change: ResourceChange) {
        self.init(change.instance, change.resource, change.action, change.reason)
    }

    var description: String { "\(action.symbol) \(instance)/\(resource.rawValue) (\(reason))" }
}

@Suite struct PlannerTests {
    @Test func sha256MatchesKnownVectors() {
        #expect(SHA256.hex("") == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        #expect(SHA256.hex("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
    }

    @Test func newInstanceIsCreatedStorageThenDatabaseThenInstance() {
        let plan = Planner.plan(
            desired: [Fixture.desired("acme")], recorded: [:], observed: Fixture.all("acme", .missing), prune: false)
        #expect(
            plan.changes.map(Step.init) == [
                Step("acme", .storage, .create, "new"), Step("acme", .database, .create, "new"),
                Step("acme", .instance, .create, "new"),
            ])
        #expect(plan.instances.map(\.disposition) == [.converge])
        let summary = plan.summary
        #expect(summary.create == 3)
        #expect(summary.unchanged == 0)
        #expect(summary.hasPendingChanges)
    }

    @Test func unrecordedButExistingResourcesAreAdopted() {
        let plan = Planner.plan(
            desired: [Fixture.desired("acme")], recorded: [:], observed: Fixture.all("acme", .ok), prune: false)
        #expect(plan.changes.map(\.reason) == ["adopt", "adopt", "adopt"])
        #expect(plan.changes.map(\.action) == [.create, .create, .create])
    }

    @Test func convergedInstanceHasNoChanges() {
        let want = Fixture.desired("acme")
        let plan = Planner.plan(
            desired: [want], recorded: ["acme": Fixture.recorded(want)], observed: Fixture.all("acme", .ok),
            prune: false)
        #expect(plan.changes.isEmpty)
        #expect(plan.summary.unchanged == 3)
        #expect(!plan.summary.hasPendingChanges)
    }

    @Test func specHashChangeUpdatesOnlyThatResourceWithOldAndNewValues() {
        let old = Fixture.desired("acme", version: "6.2")
        let new = Fixture.desired("acme", version: "7.4")
        let plan = Planner.plan(
            desired: [new], recorded: ["acme": Fixture.recorded(old)], observed: Fixture.all("acme", .ok),
            prune: false)
        #expect(plan.changes.map(Step.init) == [Step("acme", .instance, .update, "changed")])
        #expect(
            plan.changes.first?.fieldChanges == [
                FieldChange(field: "offerings.instance-version", old: "6.2", new: "7.4")
            ])
        #expect(plan.summary.update == 1)
        #expect(plan.summary.unchanged == 2)
    }

    @Test func aDatabaseDriverChangeIsAFailureNotAMigration() {
        let want = Fixture.desired("acme")
        var record = Fixture.recorded(want)
        record.resources[.database]?.driver = "postgres"
        let plan = Planner.plan(
            desired: [want], recorded: ["acme": record], observed: Fixture.all("acme", .ok), prune: false)
        #expect(plan.changes.isEmpty)
        #expect(plan.instances.first?.failures[.database]?.contains("from postgres to sqlite") == true)
        #expect(plan.summary.failed == 1)
    }

    @Test func missingResourceWithMatchingHashIsRecreatedAsDrift() {
        let want = Fixture.desired("acme")
        let observed = Fixture.observed("acme", [.storage: .missing, .database: .ok, .instance: .ok])
        let plan = Planner.plan(
            desired: [want], recorded: ["acme": Fixture.recorded(want)], observed: observed, prune: false)
        #expect(plan.changes.map(Step.init) == [Step("acme", .storage, .create, "drift")])
        #expect(plan.summary.create == 1)
        #expect(plan.summary.unchanged == 2)
    }

    @Test func driftedResourceIsUpdatedAsDriftKeepingTheDetail() {
        let want = Fixture.desired("acme")
        let observed = Fixture.observed(
            "acme", [.storage: .ok, .database: .ok, .instance: .drifted("metadata document differs")])
        let plan = Planner.plan(
            desired: [want], recorded: ["acme": Fixture.recorded(want)], observed: observed, prune: false)
        #expect(plan.changes.map(Step.init) == [Step("acme", .instance, .update, "drift")])
        #expect(plan.changes.first?.detail == "metadata document differs")
    }

    @Test func conflictIsCountedAsFailureAndPlansNoChangeForThatResource() {
        let want = Fixture.desired("acme")
        let observed = Fixture.observed(
            "acme", [.storage: .ok, .database: .conflict("owned by beta"), .instance: .ok])
        let plan = Planner.plan(
            desired: [want], recorded: ["acme": Fixture.recorded(want)], observed: observed, prune: false)
        #expect(plan.changes.isEmpty)
        #expect(plan.instances.first?.failures == [.database: "owned by beta"])
        #expect(plan.summary.failed == 1)
        #expect(plan.summary.unchanged == 2)
        #expect(!plan.summary.hasPendingChanges)
    }

    @Test func suspendedInstanceIsLeftExactlyAsItIs() {
        let old = Fixture.desired("acme", version: "6.2")
        let want = Fixture.desired("acme", version: "7.4", suspend: true)
        let plan = Planner.plan(
            desired: [want], recorded: ["acme": Fixture.recorded(old)], observed: Fixture.all("acme", .missing),
            prune: true)
        #expect(plan.instances.map(\.disposition) == [.suspended])
        #expect(plan.changes.isEmpty)
        #expect(plan.summary.unchanged == 3)
        #expect(!plan.summary.hasPendingChanges)
    }

    @Test func orphanWithoutPruneIsReportedAndLeftAlone() {
        let gone = Fixture.recorded(Fixture.desired("gone"))
        let partial = Fixture.recorded(Fixture.desired("half"), kinds: [.storage, .database])
        let plan = Planner.plan(
            desired: [], recorded: ["gone": gone, "half": partial], observed: [:], prune: false)
        #expect(plan.instances.map(\.name) == ["gone", "half"])
        #expect(plan.instances.map(\.disposition) == [.orphaned, .orphaned])
        #expect(plan.instances.map(\.orphaned) == [3, 2])
        #expect(plan.changes.isEmpty)
        #expect(plan.summary.orphaned == 5)
        #expect(!plan.summary.hasPendingChanges)
    }

    @Test func pruneDeletesTheInstanceFirstThenAppliesEachDeletionPolicy() {
        let gone = Fixture.recorded(Fixture.desired("gone", storagePolicy: .retain, databasePolicy: .delete))
        let plan = Planner.plan(desired: [], recorded: ["gone": gone], observed: [:], prune: true)
        #expect(plan.instances.map(\.disposition) == [.prune])
        #expect(
            plan.changes.map(Step.init) == [
                Step("gone", .instance, .delete, "pruned"), Step("gone", .database, .delete, "pruned"),
                Step("gone", .storage, .retain, "pruned"),
            ])
        #expect(plan.summary.delete == 2)
        #expect(plan.summary.retain == 1)
        #expect(plan.summary.orphaned == 0)
        #expect(plan.summary.hasPendingChanges)
    }

    @Test(arguments: [
        (DeletionPolicy.retain, DeletionPolicy.retain, [Action.delete, .retain, .retain]),
        (.delete, .delete, [.delete, .delete, .delete]),
        (.delete, .retain, [.delete, .retain, .delete]),
    ])
    func pruneActionsFollowPolicies(storage: DeletionPolicy, database: DeletionPolicy, expected: [Action]) {
        let gone = Fixture.recorded(Fixture.desired("gone", storagePolicy: storage, databasePolicy: database))
        let plan = Planner.plan(desired: [], recorded: ["gone": gone], observed: [:], prune: true)
        #expect(plan.changes.map(\.resource) == [.instance, .database, .storage])
        #expect(plan.changes.map(\.action) == expected)
    }

    @Test func protectedOrphanIsNeverPrunedEvenWithPrune() {
        let gone = Fixture.recorded(Fixture.desired("keep", protect: true, databasePolicy: .delete))
        let plan = Planner.plan(desired: [], recorded: ["keep": gone], observed: [:], prune: true)
        #expect(plan.instances.map(\.disposition) == [.protected])
        #expect(plan.changes.isEmpty)
        #expect(plan.summary.orphaned == 3)
        #expect(!plan.summary.hasPendingChanges)
    }

    @Test func onlyLimitsDesiredAndOrphanedInstances() {
        let recorded = ["c": Fixture.recorded(Fixture.desired("c"))]
        let desired = [Fixture.desired("b"), Fixture.desired("a")]
        let both = Planner.plan(desired: desired, recorded: recorded, observed: [:], prune: true, only: ["b", "c"])
        #expect(both.instances.map(\.name) == ["b", "c"])
        let one = Planner.plan(desired: desired, recorded: recorded, observed: [:], prune: true, only: ["a"])
        #expect(one.instances.map(\.name) == ["a"])
        #expect(one.changes.allSatisfy { $0.instance == "a" })
        let none = Planner.plan(desired: desired, recorded: recorded, observed: [:], prune: true, only: ["zzz"])
        #expect(none.instances.isEmpty)
    }

    @Test func instancesAreSortedByNameAndSummaryAddsThemUp() {
        let existing = Fixture.desired("mid")
        let desired = [Fixture.desired("zed"), existing]
        let recorded = [
            "mid": Fixture.recorded(existing),
            "aaa": Fixture.recorded(Fixture.desired("aaa", databasePolicy: .delete)),
        ]
        var observed = Fixture.all("zed", .missing)
        observed[ResourceKey("mid", .storage)] = .missing
        let plan = Planner.plan(desired: desired, recorded: recorded, observed: observed, prune: true)
        #expect(plan.instances.map(\.name) == ["aaa", "mid", "zed"])
        var expected = PlanSummary()
        expected.create = 4
        expected.delete = 2
        expected.retain = 1
        expected.unchanged = 2
        #expect(plan.summary == expected)
    }

    @Test func pendingChangesAreExactlyCreateUpdateDeleteRetain() {
        #expect(!PlanSummary().hasPendingChanges)
        let pending: [WritableKeyPath<PlanSummary, Int>] = [\.create, \.update, \.delete, \.retain]
        for key in pending {
            var summary = PlanSummary()
            summary[keyPath: key] = 1
            #expect(summary.hasPendingChanges)
        }
        let notPending: [WritableKeyPath<PlanSummary, Int>] = [\.unchanged, \.orphaned, \.failed]
        for key in notPending {
            var summary = PlanSummary()
            summary[keyPath: key] = 7
            #expect(!summary.hasPendingChanges)
        }
    }

    @Test func instanceSpecHashCoversSafetySettingsButResourceHashesDoNot() {
        let base = Fixture.desired("acme")
        let variants = [
            Fixture.desired("acme", protect: true), Fixture.desired("acme", suspend: true),
            Fixture.desired("acme", storagePolicy: .delete), Fixture.desired("acme", databasePolicy: .delete),
        ]
        for variant in variants {
            #expect(variant.specHash != base.specHash)
            #expect(variant.resources.mapValues(\.specHash) == base.resources.mapValues(\.specHash))
        }
        #expect(Fixture.desired("acme").specHash == base.specHash)
    }

    @Test func actionSymbolsReadLikeTerraform() {
        #expect(Action.allCases.map(\.symbol) == ["+", "~", "-", "!"])
        #expect(ResourceKind.allCases.sorted() == [.storage, .database, .instance])
    }
}
