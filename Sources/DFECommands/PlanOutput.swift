import DFECore
import DFEReconciler
import Foundation

/// Renders plans and apply results the terraform way: `+` create, `~` update, `-` delete, `!` retain.
struct PlanOutput {
    let terminal: Terminal

    func style(_ action: Action) -> Terminal.Style {
        switch action {
        case .create: .green
        case .update: .yellow
        case .delete: .red
        case .retain: .magenta
        }
    }

    func quoted(_ field: String, _ value: String?) -> String {
        guard let value else { return "(none)" }
        return Sensitive.isSensitive(field) ? Sensitive.placeholder : "\"\(value)\""
    }

    /// The text plan: instances with changes, then the summary line.
    func render(_ report: ReconcileReport) -> [String] {
        var lines: [String] = []
        for instance in report.plan.instances {
            switch instance.disposition {
            case .orphaned:
                lines.append(
                    terminal.paint("  # \(instance.name)", .bold)
                        + " orphaned: its manifest is gone; --prune deletes it")
                continue
            case .protected:
                lines.append(terminal.paint("  # \(instance.name)", .bold) + " orphaned and protected: not deleted")
                continue
            case .suspended, .converge, .prune:
                break
            }
            guard instance.hasChanges || !instance.failures.isEmpty || !instance.drift.isEmpty else { continue }
            let note = instance.disposition == .prune ? " (manifest removed: pruning)" : ""
            lines.append(terminal.paint("  # \(instance.name)", .bold) + note)
            for change in instance.changes {
                let sign = terminal.paint(change.action.symbol, style(change.action))
                var line =
                    "  \(sign) \(change.resource.rawValue.padding(toLength: 9, withPad: " ", startingAt: 0)) \(change.action.rawValue) (\(change.reason))"
                if let detail = change.detail { line += ": \(detail)" }
                lines.append(line)
                for field in change.fieldChanges {
                    lines.append(
                        "      \(field.field): \(quoted(field.field, field.old)) → \(quoted(field.field, field.new))")
                }
            }
            for drift in instance.drift { lines.append("  " + driftLine(drift)) }
            for (kind, message) in instance.failures.sorted(by: { $0.key < $1.key }) {
                lines.append(
                    "  \(terminal.paint("✗", .red)) \(kind.rawValue.padding(toLength: 9, withPad: " ", startingAt: 0)) \(message)"
                )
            }
            lines.append("")
        }
        return lines
    }

    /// `? RESOURCE drift (report only): DETAIL`.
    func driftLine(_ drift: DriftReport) -> String {
        "\(terminal.paint("?", .cyan)) \(drift.resource.rawValue) drift (report only): \(drift.detail)"
    }

    /// After an apply: each instance's reported drift, under its name.
    func driftLines(_ report: ReconcileReport) -> [String] {
        report.plan.instances.filter { !$0.drift.isEmpty }.flatMap { instance in
            ["  # \(instance.name) drifted (driftPolicy: Report; not repaired)"]
                + instance.drift.map { "  " + driftLine($0) }
        }
    }

    /// `Plan: 3 to create, ...` or `Apply complete: ...`.
    func summaryLine(_ report: ReconcileReport) -> String {
        let s = report.summary
        let drifted = s.drifted > 0 ? ", \(s.drifted) drifted (report only)" : ""
        if report.dryRun {
            if !s.hasPendingChanges && s.failed == 0 {
                return "No changes. \(s.unchanged) resources up to date, \(s.orphaned) orphaned\(drifted)."
            }
            return
                "Plan: \(s.create) to create, \(s.update) to update, \(s.delete) to delete, \(s.retain) to retain; \(s.unchanged) unchanged, \(s.orphaned) orphaned, \(s.failed) failed\(drifted)."
        }
        var counts = PlanSummary()
        for change in report.applied { counts.count(change.action) }
        let failed = report.errors.isEmpty ? "" : terminal.paint(", \(s.failed) failed", .red)
        return
            "Apply \(report.errors.isEmpty ? "complete" : "finished with errors"): \(counts.create) created, \(counts.update) updated, \(counts.delete) deleted, \(counts.retain) retained; \(s.unchanged) unchanged, \(s.orphaned) orphaned\(drifted)\(failed)\(report.stale.isEmpty ? "" : ", \(report.stale.count) stale")."
    }

    /// One progress line per finished step while applying.
    func progress(_ event: ReconcileEvent) -> String? {
        switch event {
        case .stepStarted:
            return nil
        case .stepFinished(let change, let duration, let error):
            let sign = terminal.paint(change.action.symbol, style(change.action))
            let what = "\(change.instance): \(change.resource.rawValue) \(change.action.rawValue) (\(change.reason))"
            if let error { return "  \(terminal.paint("✗", .red)) \(what) failed: \(error)" }
            return "  \(sign) \(what) " + terminal.paint("[\(DurationText.format(duration))]", .dim)
        case .warning(let message):
            return terminal.paint("warning: ", .yellow) + message
        }
    }

    /// The `--output json` object of reconcile.
    static func json(_ report: ReconcileReport) -> [String: Any] {
        let changes: [[String: Any]] = report.plan.changes.map { change in
            var object: [String: Any] = [
                "instance": change.instance, "resource": change.resource.rawValue, "action": change.action.rawValue,
                "reason": change.reason,
            ]
            if let detail = change.detail { object["detail"] = detail }
            if !change.fieldChanges.isEmpty {
                object["fields"] = change.fieldChanges.map { field -> [String: Any] in
                    let mask: (String?) -> Any = { value in
                        guard let value else { return NSNull() }
                        return Sensitive.display(field.field, value)
                    }
                    return ["field": field.field, "old": mask(field.old), "new": mask(field.new)]
                }
            }
            return object
        }
        let errors: [[String: Any]] = report.errors.map {
            ["instance": $0.instance, "resource": $0.resource?.rawValue ?? NSNull(), "message": $0.message]
        }
        let drift: [[String: Any]] = report.plan.drift.map {
            ["instance": $0.instance, "resource": $0.resource.rawValue, "detail": $0.detail]
        }
        var object: [String: Any] = [
            "dryRun": report.dryRun, "summary": summaryObject(report.summary), "changes": changes, "errors": errors,
            "revision": report.revision ?? NSNull(), "drift": drift, "stale": report.stale.map(\.name),
        ]
        if !report.stale.isEmpty {
            object["staleReasons"] = Dictionary(uniqueKeysWithValues: report.stale.map { ($0.name, $0.reason) })
        }
        if !report.warnings.isEmpty { object["warnings"] = report.warnings }
        return object
    }
}
