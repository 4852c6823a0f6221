/// The controller's metrics at one moment, rendered in the Prometheus text format.
public struct MetricsSnapshot: Sendable, Hashable {
    /// Upper bounds (seconds) of the run duration histogram's buckets.
    public static let durationBounds: [Double] = [0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 300]

    public var runsSucceeded = 0
    public var runsFailed = 0
    /// Runs per bucket of `durationBounds` (not cumulative; rendering makes it so).
    public var durationBuckets = [Int](repeating: 0, count: MetricsSnapshot.durationBounds.count)
    public var durationSum = 0.0
    public var durationCount = 0
    /// Instances per phase (every phase is rendered, missing ones as 0).
    public var phases: [String: Int] = [:]
    public var queueDepth = 0
    public var manifestLoadErrors = 0
    public var lastAppliedRevision: String?
    public var ready = false
    /// Whether this controller leads (holds the state lease); a standby of a high-availability pair does not.
    public var leader = true

    /// Every phase an instance can be in, for stable gauges.
    public static let allPhases = [
        "pending", "provisioning", "ready", "failed", "deprovisioning", "orphaned", "suspended", "drifted",
    ]

    public init() {}

    /// Counts one finished run.
    public mutating func recordRun(seconds: Double, success: Bool) {
        if success { runsSucceeded += 1 } else { runsFailed += 1 }
        durationSum += seconds
        durationCount += 1
        if let index = Self.durationBounds.firstIndex(where: { seconds <= $0 }) { durationBuckets[index] += 1 }
    }

    /// The Prometheus text exposition format (version 0.0.4).
    public func prometheusText() -> String {
        var lines: [String] = []
        func family(_ name: String, _ type: String, _ help: String) {
            lines.append("# HELP \(name) \(help)")
            lines.append("# TYPE \(name) \(type)")
        }
        family("dfe_reconcile_runs_total", "counter", "Reconcile runs by result.")
        lines.append("dfe_reconcile_runs_total{result=\"success\"} \(runsSucceeded)")
        lines.append("dfe_reconcile_runs_total{result=\"error\"} \(runsFailed)")
        family("dfe_reconcile_duration_seconds", "histogram", "Duration of reconcile runs.")
        var cumulative = 0
        for (bound, count) in zip(Self.durationBounds, durationBuckets) {
            cumulative += count
            lines.append("dfe_reconcile_duration_seconds_bucket{le=\"\(Self.number(bound))\"} \(cumulative)")
        }
        lines.append("dfe_reconcile_duration_seconds_bucket{le=\"+Inf\"} \(durationCount)")
        lines.append("dfe_reconcile_duration_seconds_sum \(Self.number(durationSum))")
        lines.append("dfe_reconcile_duration_seconds_count \(durationCount)")
        family("dfe_instances", "gauge", "Instances per phase.")
        let phaseNames = Self.allPhases + phases.keys.filter { !Self.allPhases.contains($0) }.sorted()
        for phase in phaseNames {
            lines.append("dfe_instances{phase=\"\(Self.escape(phase))\"} \(phases[phase] ?? 0)")
        }
        family("dfe_queue_depth", "gauge", "Instances (or 1 for a full reconcile) waiting to be reconciled.")
        lines.append("dfe_queue_depth \(queueDepth)")
        family("dfe_manifest_load_errors_total", "counter", "Manifest or config loads that failed validation.")
        lines.append("dfe_manifest_load_errors_total \(manifestLoadErrors)")
        family("dfe_last_applied_revision_info", "gauge", "The revision of the last applied run.")
        if let lastAppliedRevision {
            lines.append("dfe_last_applied_revision_info{revision=\"\(Self.escape(lastAppliedRevision))\"} 1")
        }
        family("dfe_ready", "gauge", "1 when the first reconcile finished and the last manifest load was valid.")
        lines.append("dfe_ready \(ready ? 1 : 0)")
        family("dfe_leader", "gauge", "1 when this controller leads (holds the state lease), 0 on standby.")
        lines.append("dfe_leader \(leader ? 1 : 0)")
        return lines.joined(separator: "\n") + "\n"
    }

    /// A label value with `\`, `"` and newlines escaped.
    static func escape(_ value: String) -> String {
        value.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"")
            .replacingOccurrences(of: "\n", with: "\\n")
    }

    /// A sample value: integers without a fraction, others as Swift prints doubles.
    static func number(_ value: Double) -> String {
        value == value.rounded() && abs(value) < 1e15 ? String(Int64(value)) : String(value)
    }
}
