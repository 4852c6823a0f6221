import DFECore
import DFEReconciler
import DFETestSupport
import Foundation
import Testing

@testable import DFECommands

/// `--output markdown`: a pull-request comment that renders every value as the text it is.
@Suite struct MarkdownOutputTests {
    /// A plan with hostile values in every place a manifest, the state or a driver can put text.
    static func hostileReport() -> ReconcileReport {
        let update = ResourceChange(
            instance: "acme-prod", resource: .instance, action: .update, reason: "changed",
            fieldChanges: [
                FieldChange(field: "offerings.instance-version", old: "6.2", new: "7.4"),
                FieldChange(field: "owner", old: "ops@acme.example", new: "@octocat *boss* <script>alert(1)</script>"),
                FieldChange(
                    field: "labels.note", old: nil, new: "a | b `c` [x](https://evil.example) :tada:\n# h\u{1B}[31m"),
                FieldChange(field: "database.password", old: "hunter2-old", new: "hunter2-new"),
            ])
        let acme = InstancePlan(
            name: "acme-prod", disposition: .converge,
            changes: [
                ResourceChange(
                    instance: "acme-prod", resource: .storage, action: .create, reason: "drift", detail: "missing"),
                update,
            ], unchanged: 1)
        let globex = InstancePlan(
            name: "globex", disposition: .converge, unchanged: 2,
            drift: [DriftReport(instance: "globex", resource: .storage, detail: "edited by <b>hand</b> & more")])
        let gone = InstancePlan(
            name: "initech", disposition: .prune,
            changes: [
                ResourceChange(instance: "initech", resource: .instance, action: .delete, reason: "pruned"),
                ResourceChange(instance: "initech", resource: .database, action: .retain, reason: "pruned"),
                ResourceChange(instance: "initech", resource: .storage, action: .retain, reason: "pruned"),
            ])
        let quiet = InstancePlan(name: "umbrella", disposition: .converge, unchanged: 3)
        var report = ReconcileReport(
            dryRun: true, plan: Plan(instances: [acme, globex, gone, quiet]), revision: "0123456789abcdef")
        report.errors = []
        return report
    }

    @Test func aPlanCommentMatchesItsGoldenFile() {
        let text = MarkdownOutput.render(Self.hostileReport())
        if let mismatch = Golden.mismatch(text, named: "plan.md") { Issue.record("\(mismatch)") }
    }

    @Test func anApplyCommentWithStaleInstancesMatchesItsGoldenFile() {
        var report = Self.hostileReport()
        report.dryRun = false
        report.applied = report.plan.instances[2].changes
        report.plan.instances.removeFirst()
        report.stale = [StaleInstance(name: "acme-prod", reason: "the recorded storage changed since the plan")]
        report.errors = [InstanceError(instance: "globex", resource: .storage, message: "permission <denied>")]
        let text = MarkdownOutput.render(report)
        if let mismatch = Golden.mismatch(text, named: "reconcile.md") { Issue.record("\(mismatch)") }
    }

    @Test func noValueKeepsAMeaningInMarkdownOrHTMLAndNoSecretIsShown() {
        let text = MarkdownOutput.render(Self.hostileReport())
        for forbidden in [
            "<script>", "@octocat", "*boss*", "`c`", "[x](", ":tada:", "\u{1B}", "<b>", "hunter2", "| b", "\n# h",
        ] {
            #expect(!text.contains(forbidden), "\(forbidden.debugDescription) appears raw")
        }
        #expect(text.contains("(sensitive)"))
        #expect(MarkdownOutput.escape("a\nb") == "a&#92;nb")
        #expect(MarkdownOutput.escape("x\u{202E}y") == "x&#92;u202ey")
        #expect(MarkdownOutput.escape("7-4/5,=") == "7-4/5,=")
    }

    @Test func aHugePlanIsFoldedUnderTheCommentLimitSayingHowManyInstancesWereFolded() {
        let instances = (0..<3000).map { index in
            let name = String(format: "customer-%04d", index)
            return InstancePlan(
                name: name, disposition: .converge,
                changes: ResourceKind.allCases.map {
                    ResourceChange(instance: name, resource: $0, action: .create, reason: "new")
                })
        }
        let text = MarkdownOutput.render(ReconcileReport(dryRun: true, plan: Plan(instances: instances)))
        #expect(text.count < MarkdownOutput.limit)
        let shown = text.components(separatedBy: "<details>").count - 1
        #expect(shown > 10)
        #expect(text.contains("_\(3000 - shown) more instances folded to keep this comment under 65000"))
        #expect(text.contains("| 9000 | 0 | 0 | 0 | 0 | 0 | 0 | 0 |"))
    }

    @Test func aLongValueIsCut() {
        let long = String(repeating: "x", count: 5000)
        let change = ResourceChange(
            instance: "a", resource: .instance, action: .update, reason: "changed",
            fieldChanges: [FieldChange(field: "labels.big", old: nil, new: long)])
        let text = MarkdownOutput.render(
            ReconcileReport(
                dryRun: true,
                plan: Plan(instances: [InstancePlan(name: "a", disposition: .converge, changes: [change])])))
        #expect(text.contains(String(repeating: "x", count: 200) + "…"))
        #expect(!text.contains(String(repeating: "x", count: 201)))
    }
}
