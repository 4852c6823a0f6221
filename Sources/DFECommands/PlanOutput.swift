import DFECore
import DFEReconciler
import Foundation
import Synchronization

/// Renders plans and apply results the terraform way: `+` create, `~` update, `-` delete, `!` retain, `=` held.
///
/// Every value from an input is interpolated into a ``TextLine`` and so escaped; text and JSON take their counts
/// from the same ``ReconcileReport/counts``.
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

    func quoted(_ field: String, _ value: String?) -> TextLine {
        guard let value else { return "(none)" }
        return Sensitive.isSensitive(field) ? TextLine(escaping: Sensitive.placeholder) : "\"\(value)\""
    }

    /// The text plan: instances with changes (and held, orphaned or failed ones).
    func render(_ report: ReconcileReport) -> [TextLine] {
        var lines: [TextLine] = []
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
            case .suspended:
                if instance.held > 0 {
                    lines.append(
                        "  \(terminal.paint("=", .cyan)) \(instance.name) held (suspended): \(instance.held) change\(instance.held == 1 ? "" : "s")"
                    )
                }
                continue
            case .converge, .prune:
                break
            }
            guard instance.hasChanges || !instance.failures.isEmpty || !instance.drift.isEmpty else { continue }
            let note: TextLine = instance.disposition == .prune ? " (manifest removed: pruning)" : ""
            lines.append(terminal.paint("  # \(instance.name)", .bold) + note)
            for change in instance.changes {
                let sign = terminal.paint("\(change.action.symbol)", style(change.action))
                var line: TextLine =
                    "  \(sign) \(TextLine.column(change.resource.rawValue, 9)) \(change.action.rawValue) (\(change.reason))"
                if let detail = change.detail { line += ": \(detail)" }
                lines.append(line)
                for field in change.fieldChanges {
                    lines.append(
                        "      \(field.field): \(quoted(field.field, field.old)) → \(quoted(field.field, field.new))")
                }
            }
            for drift in instance.drift { lines.append("  " + driftLine(drift)) }
            for (kind, message) in instance.failures.sorted(by: { $0.key < $1.key }) {
                lines.append("  \(terminal.paint("✗", .red)) \(TextLine.column(kind.rawValue, 9)) \(message)")
            }
            lines.append("")
        }
        return lines
    }

    /// `? RESOURCE drift (report only): DETAIL`.
    func driftLine(_ drift: DriftReport) -> TextLine {
        "\(terminal.paint("?", .cyan)) \(drift.resource.rawValue) drift (report only): \(drift.detail)"
    }

    /// After an apply: each instance's reported drift, under its name.
    func driftLines(_ report: ReconcileReport) -> [TextLine] {
        report.plan.instances.filter { !$0.drift.isEmpty }.flatMap { instance in
            ["  # \(instance.name) drifted (driftPolicy: Report; not repaired)"]
                + instance.drift.map { "  " + driftLine($0) }
        }
    }

    /// `Plan: 3 to create, ...`, `No changes. ...` or `Apply complete: ...`, from ``ReconcileReport/counts``.
    func summaryLine(_ report: ReconcileReport) -> TextLine {
        let s = report.counts
        let held: TextLine = s.held > 0 ? ", \(s.held) held (suspended)" : ""
        let drifted: TextLine = s.drifted > 0 ? ", \(s.drifted) drifted (report only)" : ""
        if report.dryRun {
            if !s.hasPendingChanges && s.failed == 0 {
                return "No changes. \(s.unchanged) resources up to date, \(s.orphaned) orphaned\(held)\(drifted)."
            }
            return
                "Plan: \(s.create) to create, \(s.update) to update, \(s.delete) to delete, \(s.retain) to retain; \(s.unchanged) unchanged, \(s.orphaned) orphaned\(held), \(s.failed) failed\(drifted)."
        }
        let failed = report.errors.isEmpty ? "" : terminal.paint(", \(s.failed) failed", .red)
        return
            "Apply \(report.errors.isEmpty ? "complete" : "finished with errors"): \(s.create) created, \(s.update) updated, \(s.delete) deleted, \(s.retain) retained; \(s.unchanged) unchanged, \(s.orphaned) orphaned\(held)\(drifted)\(failed)\(report.stale.isEmpty ? "" : ", \(report.stale.count) stale")."
    }

    /// One line per finished step while applying (when stderr is not a live terminal).
    func stepLine(_ change: ResourceChange, duration: Duration, error: String?) -> TextLine {
        let sign = terminal.paint("\(change.action.symbol)", style(change.action))
        let what: TextLine =
            "\(change.instance): \(change.resource.rawValue) \(change.action.rawValue) (\(change.reason))"
        if let error { return "  \(terminal.paint("✗", .red)) \(what) failed: \(error)" }
        return "  \(sign) \(what) " + terminal.paint("[\(DurationText.format(duration))]", .dim)
    }

    /// The `--output json` object of plan and reconcile; `revision` and `held` are always there.
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
        let drift: [[String: Any]] = report.plan.drift.map {
            ["instance": $0.instance, "resource": $0.resource.rawValue, "detail": $0.detail]
        }
        var object: [String: Any] = [
            "dryRun": report.dryRun, "summary": summaryObject(report.counts), "changes": changes,
            "errors": report.errors.map(JSONError.object), "revision": report.revision ?? NSNull(),
            "held": report.held, "drift": drift, "stale": report.stale.map(\.name),
        ]
        if !report.stale.isEmpty {
            object["staleReasons"] = Dictionary(uniqueKeysWithValues: report.stale.map { ($0.name, $0.reason) })
        }
        if !report.warnings.isEmpty { object["warnings"] = report.warnings }
        return object
    }

    /// The JSON of a plan or reconcile that produced no report (invalid inputs, state errors): same keys.
    static func emptyJSON(dryRun: Bool, revision: String?) -> [String: Any] {
        [
            "dryRun": dryRun, "summary": summaryObject(PlanSummary()), "changes": [Any](), "errors": [Any](),
            "revision": revision ?? NSNull(), "held": [String](),
        ]
    }
}

/// Live progress of an applying run on an interactive stderr: one `[n/N] …` line rewritten in place, a full line
/// per failure, cleared before the summary. Without a terminal, each step prints one line (a CI log) instead.
final class ApplyProgress: Sendable {
    struct Counters {
        var total = 0
        var done = 0
        var failed = 0
        var live = false
        /// Failures already printed (instance/resource), so the summary does not print them again.
        var reported: Set<String> = []
    }

    let terminal: Terminal
    let renderer: PlanOutput
    /// Rewrite one line on stderr (a terminal) instead of printing every step.
    let live: Bool
    /// Print a line per step (text output without a live terminal).
    let stepLines: Bool
    private let state = Mutex(Counters())

    init(terminal: Terminal, live: Bool, stepLines: Bool) {
        self.terminal = terminal
        self.renderer = PlanOutput(terminal: terminal)
        self.live = live
        self.stepLines = stepLines
    }

    static func key(_ instance: String, _ resource: ResourceKind?) -> String {
        "\(instance)/\(resource?.rawValue ?? "")"
    }

    /// Handles one event of the run.
    func handle(_ event: ReconcileEvent) {
        switch event {
        case .planned(let steps):
            state.withLock { $0.total = steps }
        case .waitingForLease(let holder):
            clearLine()
            terminal.err("waiting for the state lease held by \(holder) (--wait) ...")
        case .warning(let message):
            clearLine()
            terminal.err(terminal.paint("warning: ", .yellow) + "\(message)")
        case .stepStarted(let change):
            guard live else { return }
            let (done, total) = state.withLock { ($0.done, max($0.total, $0.done + 1)) }
            show(done: done, total: total, "\(change.instance): \(change.resource.rawValue) \(change.action.rawValue)")
        case .stepFinished(let change, let duration, let error):
            let (done, total) = state.withLock { counters -> (Int, Int) in
                counters.done += 1
                if error != nil {
                    counters.failed += 1
                    counters.reported.insert(Self.key(change.instance, change.resource))
                }
                counters.total = max(counters.total, counters.done)
                return (counters.done, counters.total)
            }
            if let error {
                clearLine()
                let line = renderer.stepLine(change, duration: duration, error: error)
                if live { terminal.err(line) } else if stepLines { terminal.out(line) }
            } else if stepLines && !live {
                terminal.out(renderer.stepLine(change, duration: duration, error: nil))
            }
            if live {
                show(
                    done: done, total: total,
                    "\(change.instance): \(change.resource.rawValue) \(change.action.rawValue)")
            }
        }
    }

    /// Whether a failure was already printed as it happened.
    func reported(_ error: InstanceError) -> Bool {
        state.withLock { $0.reported.contains(Self.key(error.instance, error.resource)) }
    }

    /// Clears the live line before other output (the summary, a failure, a warning).
    func clearLine() {
        guard live else { return }
        let wasLive = state.withLock { counters -> Bool in
            defer { counters.live = false }
            return counters.live
        }
        if wasLive { terminal.errRaw("\r\u{1B}[2K") }
    }

    private func show(done: Int, total: Int, _ what: TextLine) {
        let failed = state.withLock { counters -> Int in
            counters.live = true
            return counters.failed
        }
        let failures: TextLine = failed > 0 ? " (\(failed) failed)" : ""
        var text = "[\(done)/\(total)]\(failures) \(what)".description
        if text.count > 100 { text = String(text.prefix(99)) + "…" }
        terminal.errRaw("\r\u{1B}[2K" + text)
    }
}
