public import DFECore
public import Foundation
public import Logging

#if canImport(FoundationNetworking)
    import FoundationNetworking
#endif

/// One notification as POSTed: `{"event", "instance", "phase", "message", "revision", "at"}`.
public struct NotificationPayload: Sendable, Hashable, Codable {
    public var event: NotificationEvent
    public var instance: String
    public var phase: String?
    public var message: String?
    public var revision: String?
    /// ISO 8601.
    public var at: String

    public init(
        event: NotificationEvent, instance: String, phase: String?, message: String?, revision: String?, at: String
    ) {
        self.event = event
        self.instance = instance
        self.phase = phase
        self.message = message
        self.revision = revision
        self.at = at
    }

    enum CodingKeys: String, CodingKey { case event, instance, phase, message, revision, at }

    /// Encodes every key, `null` for absent values.
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(event, forKey: .event)
        try container.encode(instance, forKey: .instance)
        try container.encode(phase, forKey: .phase)
        try container.encode(message, forKey: .message)
        try container.encode(revision, forKey: .revision)
        try container.encode(at, forKey: .at)
    }

    /// The compact, key-sorted JSON body.
    public var body: Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return (try? encoder.encode(self)) ?? Data("{}".utf8)
    }
}

/// Sends one signed POST; the outcome is the HTTP status or a transport error.
public protocol WebhookSender: Sendable {
    /// POSTs `body` with `headers`; returns the status, or throws on a transport error or timeout.
    func post(_ url: URL, body: Data, headers: [String: String], timeout: Duration) async throws -> Int
}

/// The sender over Foundation's URLSession (http and https).
public struct URLSessionSender: WebhookSender {
    public init() {}

    public func post(_ url: URL, body: Data, headers: [String: String], timeout: Duration) async throws -> Int {
        let configuration = URLSessionConfiguration.ephemeral
        let seconds = Double(timeout.components.seconds) + Double(timeout.components.attoseconds) / 1e18
        configuration.timeoutIntervalForRequest = seconds
        configuration.timeoutIntervalForResource = seconds
        let session = URLSession(configuration: configuration)
        defer { session.finishTasksAndInvalidate() }
        var request = URLRequest(url: url)
        request.httpMethod = "POST"
        request.httpBody = body
        for (name, value) in headers { request.setValue(value, forHTTPHeaderField: name) }
        let (_, response) = try await session.data(for: request)
        return (response as? HTTPURLResponse)?.statusCode ?? 0
    }
}

/// Waits between delivery attempts; injected so tests check the backoff without sleeping.
public protocol RetrySleeper: Sendable {
    func sleep(for duration: Duration) async throws
}

/// Sleeps for real (Task.sleep).
public struct TaskSleeper: RetrySleeper {
    public init() {}
    public func sleep(for duration: Duration) async throws { try await Task.sleep(for: duration) }
}

/// Delivers webhook notifications in the background: signed, retried with capped backoff, bounded.
///
/// `notify` only appends to a bounded queue per target and returns: delivery never delays reconciling. A full
/// queue drops the new notification and counts it (`dfe_notifications_total{result="dropped"}`); every failed
/// attempt counts as `failed`, every success as `delivered`. Each target has its own worker, so a receiver that
/// never answers delays only its own queue (each attempt ends at the timeout).
///
/// Other parts of the controller emit events with `notify(_:instance:phase:message:revision:)` — call it on the
/// transition (e.g. healthy to unhealthy), not on every check.
public actor Notifier {
    /// Delivery settings.
    public struct Tuning: Sendable {
        /// Notifications waiting per target before new ones are dropped.
        public var queueLimit = 256
        /// Attempts per notification (the first and the retries).
        public var attempts = 6
        public var firstRetry: Duration = .seconds(1)
        public var maxRetry: Duration = .seconds(60)
        public var timeout: Duration = .seconds(5)

        public init() {}
    }

    struct Target {
        var config: NotificationTarget
        var url: URL
        var secret: [UInt8]?
        var queue: [NotificationPayload] = []
        var running = false
    }

    private var targets: [Target] = []
    private let metrics: ControllerMetrics?
    private let sender: any WebhookSender
    private let sleeper: any RetrySleeper
    private let tuning: Tuning
    private let logger: Logger
    private let now: @Sendable () -> Date
    /// Worker tasks, one per target with pending work.
    private var workers: [Int: Task<Void, Never>] = [:]
    private var generation = 0

    public init(
        metrics: ControllerMetrics? = nil, sender: any WebhookSender = URLSessionSender(),
        sleeper: any RetrySleeper = TaskSleeper(), tuning: Tuning = Tuning(),
        logger: Logger = Logger(label: "dfe.notify"), now: @escaping @Sendable () -> Date = { Date() }
    ) {
        self.metrics = metrics
        self.sender = sender
        self.sleeper = sleeper
        self.tuning = tuning
        self.logger = logger
        self.now = now
    }

    /// Replaces the targets (on every config load); reads each secret file now. Pending notifications of the
    /// old targets are dropped.
    public func configure(_ configs: [NotificationTarget]) {
        guard configs != targets.map(\.config) else { return }
        for worker in workers.values { worker.cancel() }
        workers = [:]
        generation += 1
        targets = configs.compactMap { config in
            guard let url = URL(string: config.url) else { return nil }
            return Target(config: config, url: url, secret: readSecret(config.secretFile))
        }
    }

    /// Queues `event` for every target that wants it; returns at once.
    public func notify(
        _ event: NotificationEvent, instance: String, phase: String? = nil, message: String? = nil,
        revision: String? = nil
    ) {
        let payload = NotificationPayload(
            event: event, instance: instance, phase: phase, message: message, revision: revision,
            at: ISO8601DateFormatter().string(from: now()))
        for index in targets.indices where targets[index].config.events.contains(event) {
            guard targets[index].queue.count < tuning.queueLimit else {
                metrics?.recordNotification(result: "dropped")
                logger.warning(
                    "notification dropped: queue full",
                    metadata: ["url": "\(targets[index].config.url)", "event": "\(event.rawValue)"])
                continue
            }
            targets[index].queue.append(payload)
            startWorker(index)
        }
    }

    /// Notifications waiting (not yet delivered or given up), over all targets.
    public var pending: Int { targets.reduce(0) { $0 + $1.queue.count } }

    /// Waits until every queue is empty (tests).
    public func drained() async {
        while pending > 0 || !workers.isEmpty { await Task.yield() }
    }

    private func startWorker(_ index: Int) {
        guard workers[index] == nil else { return }
        let generation = generation
        workers[index] = Task { await self.work(index, generation: generation) }
    }

    private func work(_ index: Int, generation: Int) async {
        while generation == self.generation, index < targets.count, let payload = targets[index].queue.first {
            await deliver(payload, to: targets[index])
            guard generation == self.generation, index < targets.count else { return }
            targets[index].queue.removeFirst()
        }
        if generation == self.generation { workers[index] = nil }
    }

    /// Tries one notification up to `attempts` times, sleeping a doubling, capped delay between tries.
    private func deliver(_ payload: NotificationPayload, to target: Target) async {
        let body = payload.body
        var headers = ["Content-Type": "application/json", "User-Agent": "dfe"]
        if let secret = target.secret {
            headers["X-Dfe-Signature"] = "sha256=" + HMACSHA256.hex(key: secret, message: Array(body))
        }
        var delay = tuning.firstRetry
        for attempt in 1...max(1, tuning.attempts) {
            if Task.isCancelled { return }
            var problem: String
            do {
                let status = try await sender.post(target.url, body: body, headers: headers, timeout: tuning.timeout)
                if (200..<300).contains(status) {
                    metrics?.recordNotification(result: "delivered")
                    return
                }
                problem = "HTTP \(status)"
            } catch {
                problem = "\(error)"
            }
            metrics?.recordNotification(result: "failed")
            logger.warning(
                "notification attempt failed",
                metadata: [
                    "url": "\(target.config.url)", "event": "\(payload.event.rawValue)",
                    "instance": "\(payload.instance)", "attempt": "\(attempt)", "error": "\(problem)",
                ])
            guard attempt < tuning.attempts else { break }
            do { try await sleeper.sleep(for: delay) } catch { return }
            delay = min(delay * 2, tuning.maxRetry)
        }
        logger.error(
            "notification given up",
            metadata: [
                "url": "\(target.config.url)", "event": "\(payload.event.rawValue)", "instance": "\(payload.instance)",
            ])
    }

    /// The secret's bytes (trailing newline removed); nil, logged, when the file is unreadable or not 0600.
    private func readSecret(_ path: String) -> [UInt8]? {
        let attributes = try? FileManager.default.attributesOfItem(atPath: path)
        let mode = ((attributes?[.posixPermissions] as? NSNumber)?.intValue ?? 0) & 0o777
        guard let data = FileManager.default.contents(atPath: path), mode == 0o600 else {
            logger.error(
                "notification secret unusable: it must be a readable file with mode 0600; deliveries go unsigned",
                metadata: ["secretFile": "\(path)", "mode": "\(String(format: "%04o", mode))"])
            return nil
        }
        let text = String(decoding: data, as: UTF8.self).trimmingCharacters(in: .newlines)
        return Array(text.utf8)
    }
}

/// Finds the notification-worthy transitions between two views of the fleet.
enum Transitions {
    /// `failed` when an instance enters phase failed, `recovered` when a failed one becomes ready, `drifted` when
    /// one enters drifted, `pruned` when a recorded instance disappears. Nothing for an unchanged phase (retries).
    static func between(old: [String: RecordedInstance], new: [String: RecordedInstance]) -> [(
        NotificationEvent, RecordedInstance
    )] {
        var events: [(NotificationEvent, RecordedInstance)] = []
        for (name, record) in new.sorted(by: { $0.key < $1.key }) {
            let before = old[name]?.phase
            guard before != record.phase else { continue }
            switch record.phase {
            case .failed: events.append((.failed, record))
            case .ready where before == .failed: events.append((.recovered, record))
            default:
                if record.phase.rawValue == "drifted" { events.append((.drifted, record)) }
            }
        }
        for (name, record) in old.sorted(by: { $0.key < $1.key }) where new[name] == nil {
            events.append((.pruned, record))
        }
        return events
    }
}
