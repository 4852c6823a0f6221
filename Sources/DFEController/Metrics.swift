public import CoreMetrics
public import DFECore
public import Prometheus
import Synchronization

/// The controller's metrics: swift-metrics instruments backed by one Prometheus registry per controller.
///
/// Every family DESIGN lists exists from the start (labelled series at 0), so dashboards and alerts see them
/// before the first event. Other parts of the controller record through the methods below; new families are
/// declared in `ControllerMetrics.families` so that each has its help text.
public final class ControllerMetrics: Sendable {
    /// Upper bounds of the run duration histogram's buckets.
    public static let durationBuckets: [Duration] = [
        .milliseconds(100), .milliseconds(500), .seconds(1), .milliseconds(2500), .seconds(5), .seconds(10),
        .seconds(30), .seconds(60), .seconds(300),
    ]

    /// Health statuses of `dfe_instances_health`.
    public static let healthStatuses = ["healthy", "unhealthy", "unknown"]
    /// Reasons of `dfe_snapshots_total`.
    public static let snapshotReasons = ["manual", "scheduled", "final", "pre-restore"]
    /// Results of `dfe_notifications_total`.
    public static let notificationResults = ["delivered", "failed", "dropped"]

    /// Help text of every family; a family missing here cannot be made.
    static let families: [String: String] = [
        "dfe_instances": "Instances per phase.",
        "dfe_instances_health": "Instances per health status of their last probe.",
        "dfe_reconcile_runs_total": "Reconcile runs by result.",
        "dfe_reconcile_duration_seconds": "Duration of reconcile runs.",
        "dfe_steps_total": "Applied steps by resource, action and result.",
        "dfe_leader": "1 while this controller holds the state lease and reconciles, 0 on standby.",
        "dfe_ready": "1 when the first reconcile finished and the last manifest load was valid.",
        "dfe_queue_depth": "Instances (or 1 for a full reconcile) waiting to be reconciled.",
        "dfe_snapshots_total": "Snapshots taken by the controller, by reason and result.",
        "dfe_notifications_total": "Notification deliveries by result (delivered, failed attempts, dropped).",
        "dfe_manifest_load_errors_total": "Manifest or config loads that failed validation.",
        "dfe_last_applied_revision_info": "The revision of the last applied run.",
    ]

    /// The registry the instruments write to; `/metrics` renders it.
    public let registry: PrometheusCollectorRegistry
    let factory: DescribedMetricsFactory
    private let runDuration: CoreMetrics.Timer
    private let revision = Mutex<(String, CoreMetrics.Gauge)?>(nil)

    public init() {
        let registry = PrometheusCollectorRegistry()
        self.registry = registry
        self.factory = DescribedMetricsFactory(registry: registry, buckets: Self.durationBuckets)
        runDuration = CoreMetrics.Timer(label: "dfe_reconcile_duration_seconds", factory: factory)
        for phase in Phase.allCases { gauge("dfe_instances", ("phase", phase.rawValue)).record(0) }
        for status in Self.healthStatuses { gauge("dfe_instances_health", ("status", status)).record(0) }
        for result in ["success", "error"] { counter("dfe_reconcile_runs_total", ("result", result)).increment(by: 0) }
        for result in Self.notificationResults {
            counter("dfe_notifications_total", ("result", result)).increment(by: 0)
        }
        for reason in Self.snapshotReasons {
            for result in ["success", "error"] {
                counter("dfe_snapshots_total", ("reason", reason), ("result", result)).increment(by: 0)
            }
        }
        counter("dfe_manifest_load_errors_total").increment(by: 0)
        gauge("dfe_leader").record(1)
        gauge("dfe_ready").record(0)
        gauge("dfe_queue_depth").record(0)
    }

    // MARK: Recording

    /// Counts one finished reconcile run and its duration.
    public func recordRun(duration: Duration, success: Bool) {
        counter("dfe_reconcile_runs_total", ("result", success ? "success" : "error")).increment()
        runDuration.recordNanoseconds(Self.nanoseconds(duration))
    }

    /// Counts one applied step (`result`: `success` or `error`).
    public func recordStep(resource: ResourceKind, action: Action, success: Bool) {
        counter(
            "dfe_steps_total", ("resource", resource.rawValue), ("action", action.rawValue),
            ("result", success ? "success" : "error")
        ).increment()
    }

    /// Sets the instances per phase; phases not given are 0.
    public func setPhases(_ counts: [Phase: Int]) {
        for phase in Phase.allCases { gauge("dfe_instances", ("phase", phase.rawValue)).record(counts[phase] ?? 0) }
    }

    /// Sets the instances per health status (`healthy`, `unhealthy`, `unknown`); statuses not given are 0.
    public func setHealth(_ counts: [String: Int]) {
        for status in Set(Self.healthStatuses).union(counts.keys) {
            gauge("dfe_instances_health", ("status", status)).record(counts[status] ?? 0)
        }
    }

    /// Whether this controller leads (holds the lease and reconciles).
    public func setLeader(_ leading: Bool) { gauge("dfe_leader").record(leading ? 1 : 0) }

    /// Whether `/readyz` answers 200.
    public func setReady(_ ready: Bool) { gauge("dfe_ready").record(ready ? 1 : 0) }

    /// The work queue's depth, set when metrics are rendered.
    public func setQueueDepth(_ depth: Int) { gauge("dfe_queue_depth").record(depth) }

    /// Counts one snapshot the controller took (`reason`: scheduled, final, ...).
    public func recordSnapshot(reason: String, success: Bool) {
        counter("dfe_snapshots_total", ("reason", reason), ("result", success ? "success" : "error")).increment()
    }

    /// Counts one notification outcome: `delivered`, `failed` (an attempt that failed) or `dropped` (queue full).
    public func recordNotification(result: String) {
        counter("dfe_notifications_total", ("result", result)).increment()
    }

    /// Counts a manifest or config load that failed validation.
    public func recordManifestLoadError() { counter("dfe_manifest_load_errors_total").increment() }

    /// Marks `revision` as the last applied one (replacing the previous series).
    public func setLastAppliedRevision(_ value: String) {
        revision.withLock { current in
            if let current, current.0 == value { return }
            let gauge = gauge("dfe_last_applied_revision_info", ("revision", value))
            gauge.record(1)
            if let (_, old) = current { old.destroy() }
            current = (value, gauge)
        }
    }

    /// The Prometheus text exposition format (version 0.0.4).
    public func prometheusText() -> String { registry.emitToString() }

    // MARK: Instruments

    /// A counter of a declared family.
    public func counter(_ family: String, _ labels: (String, String)...) -> CoreMetrics.Counter {
        CoreMetrics.Counter(label: family, dimensions: labels, factory: factory)
    }

    /// A gauge of a declared family.
    public func gauge(_ family: String, _ labels: (String, String)...) -> CoreMetrics.Gauge {
        CoreMetrics.Gauge(label: family, dimensions: labels, factory: factory)
    }

    static func nanoseconds(_ duration: Duration) -> Int64 {
        let (seconds, attoseconds) = duration.components
        return seconds * 1_000_000_000 + attoseconds / 1_000_000_000
    }
}

/// A swift-metrics factory over a Prometheus registry that gives each family its help text.
struct DescribedMetricsFactory: MetricsFactory {
    let registry: PrometheusCollectorRegistry
    let buckets: [Duration]

    func descriptor(_ label: String) -> MetricNameDescriptor {
        guard let help = ControllerMetrics.families[label] else {
            preconditionFailure("metric family '\(label)' is not declared in ControllerMetrics.families")
        }
        return MetricNameDescriptor(metricName: label, unitName: "", helpText: help)
    }

    func makeCounter(label: String, dimensions: [(String, String)]) -> any CounterHandler {
        registry.makeCounter(descriptor: descriptor(label), labels: dimensions)
    }

    func makeFloatingPointCounter(label: String, dimensions: [(String, String)]) -> any FloatingPointCounterHandler {
        registry.makeCounter(descriptor: descriptor(label), labels: dimensions)
    }

    func makeRecorder(label: String, dimensions: [(String, String)], aggregate: Bool) -> any RecorderHandler {
        registry.makeGauge(descriptor: descriptor(label), labels: dimensions)
    }

    func makeMeter(label: String, dimensions: [(String, String)]) -> any MeterHandler {
        registry.makeGauge(descriptor: descriptor(label), labels: dimensions)
    }

    func makeTimer(label: String, dimensions: [(String, String)]) -> any TimerHandler {
        registry.makeDurationHistogram(descriptor: descriptor(label), labels: dimensions, buckets: buckets)
    }

    func destroyCounter(_ handler: any CounterHandler) {
        if let counter = handler as? Prometheus.Counter { registry.unregisterCounter(counter) }
    }

    func destroyFloatingPointCounter(_ handler: any FloatingPointCounterHandler) {
        if let counter = handler as? Prometheus.Counter { registry.unregisterCounter(counter) }
    }

    func destroyRecorder(_ handler: any RecorderHandler) {
        if let gauge = handler as? Prometheus.Gauge { registry.unregisterGauge(gauge) }
    }

    func destroyMeter(_ handler: any MeterHandler) {
        if let gauge = handler as? Prometheus.Gauge { registry.unregisterGauge(gauge) }
    }

    func destroyTimer(_ handler: any TimerHandler) {
        if let histogram = handler as? DurationHistogram { registry.unregisterDurationHistogram(histogram) }
    }
}
