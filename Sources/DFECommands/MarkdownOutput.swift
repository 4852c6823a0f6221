import DFECore
import DFEReconciler

/// `--output markdown` of plan and reconcile: a pull-request comment (GitHub renders `<details>`).
///
/// Every value that comes from a manifest, the state or a driver goes through `escape`, so it renders as the
/// text it is: no Markdown, no HTML, no mention, no link, no raw control character. Secrets print as
/// `(sensitive)`. The whole comment stays under `limit` characters: past `budget`, instances are folded into a
/// count.
enum MarkdownOutput {
    /// GitHub's limit for a comment is 65,536 characters; stay clearly below it.
    static let limit = 65_000
    /// Where folding starts, leaving room for the footer.
    static let budget = 60_000
    /// Longest value shown before it is cut.
    static let maxValue = 200

    /// The comment for a plan or an apply.
    static func render(_ report: ReconcileReport) -> String {
        let s = report.summary
        var head: [String] = []
        let title = report.dryRun ? "dfe plan" : "dfe reconcile"
        head.append("### \(title): \(summaryLine(report))")
        head.append("")
        var facts: [String] = []
        if let revision = report.revision { facts.append("revision <code>\(escape(revision))</code>") }
        let touched = report.plan.instances.filter { section($0, report: report) }.count
        facts.append("\(touched) instance\(touched == 1 ? "" : "s") with changes")
        if !report.stale.isEmpty { facts.append("\(report.stale.count) stale (not applied)") }
        head.append(facts.joined(separator: " · "))
        head.append("")
        head.append("| create | update | delete | retain | unchanged | orphaned | failed | drifted |")
        head.append("|---:|---:|---:|---:|---:|---:|---:|---:|")
        if report.dryRun {
            head.append(
                "| \(s.create) | \(s.update) | \(s.delete) | \(s.retain) | \(s.unchanged) | \(s.orphaned) | \(s.failed) | \(s.drifted) |"
            )
        } else {
            var applied = PlanSummary()
            for change in report.applied { applied.count(change.action) }
            head.append(
                "| \(applied.create) | \(applied.update) | \(applied.delete) | \(applied.retain) | \(s.unchanged) | \(s.orphaned) | \(s.failed) | \(s.drifted) |"
            )
        }
        head.append("")
        if !report.stale.isEmpty {
            head.append("**Stale** (left alone: re-planning them gave other changes than the saved plan):")
            head.append("")
            for stale in report.stale { head.append("- <code>\(escape(stale.name))</code>: \(escape(stale.reason))") }
            head.append("")
        }
        var text = head.joined(separator: "\n") + "\n"
        let errors = Dictionary(grouping: report.errors, by: \.instance)
        let sections = report.plan.instances.filter { section($0, report: report) }
        var folded = 0
        for (index, instance) in sections.enumerated() {
            let block = details(instance, errors: errors[instance.name] ?? [])
            let remaining = sections.count - index - 1
            // Keep room for the fold note of whatever would come after this block.
            if text.count + block.count > budget || (remaining > 0 && text.count + block.count > budget - 200) {
                folded = sections.count - index
                break
            }
            text += block
        }
        if folded > 0 {
            text +=
                "\n_\(folded) more instance\(folded == 1 ? "" : "s") with changes folded to keep this comment under \(limit) characters; run `dfe plan` for the full plan._\n"
        }
        if sections.isEmpty { text += "_No instance changes._\n" }
        return text
    }

    /// The bold summary line: counts of a plan, or what an apply did.
    static func summaryLine(_ report: ReconcileReport) -> String {
        let s = report.summary
        if report.dryRun {
            if !s.hasPendingChanges && s.failed == 0 {
                return "no changes (\(s.unchanged) up to date\(s.drifted > 0 ? ", \(s.drifted) drifted" : ""))"
            }
            return "\(s.create) to create, \(s.update) to update, \(s.delete) to delete, \(s.retain) to retain"
        }
        var counts = PlanSummary()
        for change in report.applied { counts.count(change.action) }
        let verdict = report.errors.isEmpty && report.stale.isEmpty ? "applied" : "finished with problems"
        return
            "\(verdict): \(counts.create) created, \(counts.update) updated, \(counts.delete) deleted, \(counts.retain) retained"
    }

    /// Whether an instance gets a `<details>` block.
    static func section(_ instance: InstancePlan, report: ReconcileReport) -> Bool {
        instance.hasChanges || !instance.failures.isEmpty || !instance.drift.isEmpty
            || report.errors.contains { $0.instance == instance.name }
            || instance.disposition == .orphaned || instance.disposition == .protected
    }

    /// One instance's `<details>` block: its changes as a table, then the changed fields.
    static func details(_ instance: InstancePlan, errors: [InstanceError]) -> String {
        var counts = PlanSummary()
        for change in instance.changes { counts.count(change.action) }
        var parts: [String] = []
        if counts.create > 0 { parts.append("\(counts.create) create") }
        if counts.update > 0 { parts.append("\(counts.update) update") }
        if counts.delete > 0 { parts.append("\(counts.delete) delete") }
        if counts.retain > 0 { parts.append("\(counts.retain) retain") }
        if !instance.drift.isEmpty { parts.append("\(instance.drift.count) drifted (report only)") }
        if !instance.failures.isEmpty || !errors.isEmpty { parts.append("failed") }
        switch instance.disposition {
        case .orphaned: parts.append("orphaned: its manifest is gone; --prune deletes it")
        case .protected: parts.append("orphaned and protected: not deleted")
        case .prune: parts.append("manifest removed: pruning")
        case .converge, .suspended: break
        }
        var lines: [String] = []
        lines.append(
            "<details><summary><code>\(escape(instance.name))</code>: \(parts.joined(separator: ", "))</summary>")
        lines.append("")
        if !instance.changes.isEmpty || !instance.drift.isEmpty || !instance.failures.isEmpty {
            lines.append("| | resource | action | reason | detail |")
            lines.append("|---|---|---|---|---|")
            for change in instance.changes {
                lines.append(
                    "| \(sign(change.action)) | \(change.resource.rawValue) | \(change.action.rawValue) | \(escape(change.reason)) | \(change.detail.map(escape) ?? "") |"
                )
            }
            for drift in instance.drift {
                lines.append(
                    "| ? | \(drift.resource.rawValue) | drift (report only) | drift | \(escape(drift.detail)) |")
            }
            for (kind, message) in instance.failures.sorted(by: { $0.key < $1.key }) {
                lines.append("| ✗ | \(kind.rawValue) | failed | | \(escape(message)) |")
            }
            lines.append("")
        }
        let fields = instance.changes.flatMap { change in change.fieldChanges.map { (change.resource, $0) } }
        if !fields.isEmpty {
            lines.append("Changed fields:")
            lines.append("")
            for (resource, field) in fields {
                lines.append(
                    "- \(resource.rawValue) <code>\(escape(field.field))</code>: \(value(field.field, field.old)) → \(value(field.field, field.new))"
                )
            }
            lines.append("")
        }
        for error in errors {
            let resource = error.resource.map { " (\($0.rawValue))" } ?? ""
            lines.append("**Error**\(resource): \(escape(error.message))")
            lines.append("")
        }
        lines.append("</details>")
        lines.append("")
        return lines.joined(separator: "\n") + "\n"
    }

    /// A field value as shown: `(sensitive)` for a secret, `(none)` when absent, else escaped code, cut when long.
    static func value(_ field: String, _ text: String?) -> String {
        guard let text else { return "_(none)_" }
        if Sensitive.isSensitive(field) { return "<code>\(Sensitive.placeholder)</code>" }
        let shown = text.count > maxValue ? String(text.prefix(maxValue)) + "…" : text
        return "<code>\(escape(shown))</code>"
    }

    static func sign(_ action: Action) -> String {
        switch action {
        case .create: "+"
        case .update: "~"
        case .delete: "−"
        case .retain: "!"
        }
    }

    /// A comment for a run that failed before planning (invalid manifests, a refused plan or prune).
    static func failure(_ message: String, dryRun: Bool) -> String {
        let title = dryRun ? "dfe plan" : "dfe reconcile"
        let lines = message.split(separator: "\n", omittingEmptySubsequences: false).map { "> " + escape(String($0)) }
        return "### \(title): failed, nothing was done\n\n" + lines.joined(separator: "\n") + "\n"
    }

    /// Text made inert for Markdown and HTML.
    ///
    /// Control characters (and bidirectional overrides) become visible escapes (`\n`, `\u001b`); `&`, `<`, `>`,
    /// quotes and every character Markdown gives a meaning to (emphasis, code, links, tables, headings,
    /// mentions, emoji, autolinks) become numeric character references, which render as the character itself.
    static func escape(_ text: String) -> String {
        var out = ""
        out.reserveCapacity(text.utf8.count)
        for scalar in text.unicodeScalars {
            switch scalar.value {
            case 0x0A: out += "&#92;n"
            case 0x0D: out += "&#92;r"
            case 0x09: out += "&#92;t"
            case 0x00..<0x20, 0x7F..<0xA0, 0x200B...0x200F, 0x202A...0x202E, 0x2066...0x2069, 0xFEFF:
                out +=
                    "&#92;u" + String(repeating: "0", count: 4 - String(scalar.value, radix: 16).count)
                    + String(scalar.value, radix: 16)
            case 0x21, 0x22, 0x23, 0x24, 0x26, 0x27, 0x28, 0x29, 0x2A, 0x2E, 0x3A, 0x3C, 0x3E, 0x40, 0x5B, 0x5C,
                0x5D, 0x5E, 0x5F, 0x60, 0x7B, 0x7C, 0x7D, 0x7E:
                out += "&#\(scalar.value);"
            default:
                out.unicodeScalars.append(scalar)
            }
        }
        return out
    }
}
