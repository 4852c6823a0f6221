import DFECore
import DFEReconciler
import DFETestSupport
import Foundation
import Hummingbird
import Synchronization
import Testing

@testable import DFEController

/// A local webhook receiver: records every POST; `failFirst` answers 500 that many times; `hang` never answers.
final class Receiver: Sendable {
    struct Delivery: Sendable {
        var body: Data
        var signature: String?
    }

    let deliveries = Mutex<[Delivery]>([])
    let attempts = Mutex(0)
    let failFirst: Int
    let hang: Bool

    init(failFirst: Int = 0, hang: Bool = false) {
        self.failFirst = failFirst
        self.hang = hang
    }

    var received: [Delivery] { deliveries.withLock { $0 } }
    var attemptCount: Int { attempts.withLock { $0 } }

    /// Serves on a free loopback port while `body` runs; passes the hook's URL.
    func serve<T: Sendable>(_ body: @Sendable (String) async throws -> T) async throws -> T {
        // A receiver that never answers is a socket that listens and never accepts: connections complete in
        // the kernel's backlog and then hear nothing. (A Hummingbird server cancelled while its handler sleeps
        // can trap in NIO's shutdown: "Deinited NIOAsyncWriter without calling finish()".)
        if hang { return try await Self.silentListener(body) }
        let router = Router()
        router.post("/hook") { request, _ -> Response in
            let attempt = self.attempts.withLock { count in
                count += 1
                return count
            }
            if self.hang { try await Task.sleep(for: .seconds(60)) }
            let data = try await request.body.collect(upTo: 1 << 20)
            if attempt <= self.failFirst { return Response(status: .internalServerError) }
            let signature = request.headers.first(where: { $0.name.canonicalName == "x-dfe-signature" })?.value
            self.deliveries.withLock { $0.append(Delivery(body: Data(buffer: data), signature: signature)) }
            return Response(status: .noContent)
        }
        let port = try freePort()
        let app = Application(
            router: router, configuration: ApplicationConfiguration(address: .hostname("127.0.0.1", port: port)))
        let task = Task { try await app.run() }
        defer { task.cancel() }
        let up = await eventually(within: .seconds(90), every: .milliseconds(50)) {
            await httpRequest("GET", "http://127.0.0.1:\(port)/") != nil
        }
        try #require(up, "the receiver did not start")
        return try await body("http://127.0.0.1:\(port)/hook")
    }
}

extension Receiver {
    /// Runs `body` with the URL of a loopback socket that listens but never accepts or answers.
    static func silentListener<T: Sendable>(_ body: @Sendable (String) async throws -> T) async throws -> T {
        let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        try #require(descriptor >= 0, "socket() failed")
        defer { close(descriptor) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        try #require(bound == 0 && listen(descriptor, 64) == 0, "bind/listen failed")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(descriptor, $0, &length) }
        }
        let port = Int(UInt16(bigEndian: address.sin_port))
        return try await body("http://127.0.0.1:\(port)/hook")
    }
}

/// Records the delays asked for and returns at once: backoff is checked without sleeping.
final class RecordingSleeper: RetrySleeper {
    let delays = Mutex<[Duration]>([])
    func sleep(for duration: Duration) async throws { delays.withLock { $0.append(duration) } }
}

/// A secret file (mode 0600) in a fresh directory.
func secretFile(_ secret: String) throws -> URL {
    let directory = FileManager.default.temporaryDirectory.appendingPathComponent("dfe-secret-\(UUID())")
    try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    let file = directory.appendingPathComponent("secret")
    try Data((secret + "\n").utf8).write(to: file)
    try FileManager.default.setAttributes([.posixPermissions: 0o600], ofItemAtPath: file.path)
    return file
}

func count(_ metrics: ControllerMetrics, _ result: String) -> String? {
    metrics.prometheusText().split(separator: "\n").first {
        $0.hasPrefix("dfe_notifications_total{result=\"\(result)\"}")
    }
    .map { String($0.split(separator: " ").last ?? "") }
}

@Suite("notifications", .serialized)
struct NotifierTests {
    @Test("HMAC-SHA256 matches RFC 4231's test vector")
    func hmacVector() {
        #expect(
            HMACSHA256.hex(key: Array("Jefe".utf8), message: Array("what do ya want for nothing?".utf8))
                == "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843")
    }

    @Test("a delivery is the JSON payload signed with X-Dfe-Signature: sha256=HMAC of the body")
    func signed() async throws {
        let receiver = Receiver()
        let secret = try secretFile("hook-secret-1")
        let metrics = ControllerMetrics()
        try await receiver.serve { url in
            let notifier = Notifier(metrics: metrics, sleeper: RecordingSleeper())
            await notifier.configure([NotificationTarget(url: url, events: [.failed], secretFile: secret.path)])
            await notifier.notify(.recovered, instance: "alpha", phase: "ready")
            await notifier.notify(
                .failed, instance: "beta", phase: "failed", message: "disk \"full\"", revision: "abc123")
            let arrived = await eventually { receiver.received.count == 1 }
            #expect(arrived)
            let delivery = try #require(receiver.received.first)
            let expected = "sha256=" + HMACSHA256.hex(key: Array("hook-secret-1".utf8), message: Array(delivery.body))
            #expect(delivery.signature == expected)
            let object = try #require(try JSONSerialization.jsonObject(with: delivery.body) as? [String: Any])
            #expect(Set(object.keys) == ["event", "instance", "phase", "message", "revision", "at"])
            #expect(object["event"] as? String == "failed")
            #expect(object["instance"] as? String == "beta")
            #expect(object["message"] as? String == "disk \"full\"")
            #expect(object["revision"] as? String == "abc123")
            #expect(receiver.attemptCount == 1, "the recovered event is not one this target wants")
            #expect(await eventually { count(metrics, "delivered") == "1" })
        }
    }

    @Test("a receiver failing twice then succeeding gets it on the third attempt, after a 1s then a 2s backoff")
    func retriedWithBackoff() async throws {
        let receiver = Receiver(failFirst: 2)
        let secret = try secretFile("s")
        let metrics = ControllerMetrics()
        let sleeper = RecordingSleeper()
        try await receiver.serve { url in
            let notifier = Notifier(metrics: metrics, sleeper: sleeper)
            await notifier.configure([NotificationTarget(url: url, events: [.failed], secretFile: secret.path)])
            await notifier.notify(.failed, instance: "beta", phase: "failed", message: "x")
            let arrived = await eventually { receiver.received.count == 1 }
            #expect(arrived)
            #expect(await eventually { count(metrics, "delivered") == "1" })
        }
        #expect(receiver.attemptCount == 3)
        #expect(sleeper.delays.withLock { $0 } == [.seconds(1), .seconds(2)])
        #expect(count(metrics, "failed") == "2")
        #expect(count(metrics, "delivered") == "1")
    }

    @Test("a receiver that never answers: notify returns at once, attempts time out, other targets still get theirs")
    func neverAnswers() async throws {
        let silent = Receiver(hang: true)
        let good = Receiver()
        let secret = try secretFile("s")
        let metrics = ControllerMetrics()
        let tuning = {
            var tuning = Notifier.Tuning()
            tuning.timeout = .seconds(2)
            tuning.attempts = 2
            return tuning
        }()
        try await silent.serve { silentURL in
            try await good.serve { goodURL in
                let notifier = Notifier(metrics: metrics, sleeper: RecordingSleeper(), tuning: tuning)
                await notifier.configure([
                    NotificationTarget(url: silentURL, events: [.failed], secretFile: secret.path),
                    NotificationTarget(url: goodURL, events: [.failed], secretFile: secret.path),
                ])
                let started = ContinuousClock.now
                await notifier.notify(.failed, instance: "beta", phase: "failed")
                #expect(ContinuousClock.now - started < .milliseconds(100), "notify never waits for a delivery")
                #expect(await eventually { good.received.count == 1 })
                #expect(await eventually(within: .seconds(20)) { await notifier.pending == 0 })
                #expect(Double(count(metrics, "failed") ?? "") ?? 0 >= 2, "both attempts at the silent one failed")
            }
        }
        #expect(count(metrics, "delivered") == "1")
    }

    @Test("a full queue drops new notifications and counts them")
    func boundedQueue() async throws {
        let silent = Receiver(hang: true)
        let secret = try secretFile("s")
        let metrics = ControllerMetrics()
        let tuning = {
            var tuning = Notifier.Tuning()
            tuning.queueLimit = 2
            tuning.timeout = .seconds(30)
            return tuning
        }()
        try await silent.serve { url in
            let notifier = Notifier(metrics: metrics, sleeper: RecordingSleeper(), tuning: tuning)
            await notifier.configure([NotificationTarget(url: url, events: [.failed], secretFile: secret.path)])
            for index in 0..<5 { await notifier.notify(.failed, instance: "i\(index)") }
            #expect(await notifier.pending == 2)
            #expect(count(metrics, "dropped") == "3")
            await notifier.configure([])
        }
    }

    @Test("transitions: failing once is one event, retries none; recovery and prune are events")
    func transitions() {
        let ready = ["a": record("a", phase: .ready), "b": record("b", phase: .ready)]
        let failed = ["a": record("a", phase: .failed, error: "boom"), "b": record("b", phase: .ready)]
        let first = Transitions.between(old: ready, new: failed)
        #expect(first.map { "\($0.0.rawValue) \($0.1.name)" } == ["failed a"])
        #expect(Transitions.between(old: failed, new: failed).isEmpty, "a retry that fails again is no transition")
        let recovered = Transitions.between(old: failed, new: ready)
        #expect(recovered.map { "\($0.0.rawValue) \($0.1.name)" } == ["recovered a"])
        let pruned = Transitions.between(old: ready, new: ["a": record("a", phase: .ready)])
        #expect(pruned.map { "\($0.0.rawValue) \($0.1.name)" } == ["pruned b"])
        let new = Transitions.between(old: [:], new: ["c": record("c", phase: .failed)])
        #expect(new.map(\.0) == [.failed])
    }

    @Test("notifications in config/dfe.yaml are validated with located errors")
    func configValidation() throws {
        let workspace = try TemporaryWorkspace(prefix: "dfe-notify-config")
        defer { workspace.delete() }
        try workspace.write(
            "config/dfe.yaml",
            """
            notifications:
              - url: https://hooks.example.com/dfe
                events: [failed, recovered]
                secretFile: config/hook.secret
              - url: ftp://nope
                events: [failed, exploded]
                secretFile: x
              - events: []
                colour: red

            """)
        #expect {
            try InputLoader.loadConfig(workspace.workspace)
        } throws: { error in
            let text = (error as? ValidationFailure)?.diagnostics.map(\.description).joined(separator: "\n") ?? ""
            return text.contains("config/dfe.yaml:5:") && text.contains("notifications[1].url must be an http")
                && text.contains("config/dfe.yaml:6:") && text.contains("exploded")
                && text.contains("unknown field 'colour' in notifications[2]")
                && text.contains("notifications[2] needs a url")
                && text.contains("notifications[2].events must be a non-empty list")
                && text.contains("notifications[2] needs a secretFile")
        }
        try workspace.write(
            "config/dfe.yaml",
            """
            notifications:
              - url: https://hooks.example.com/dfe
                events: [failed, recovered, unhealthy]
                secretFile: config/hook.secret

            """)
        let settings = try InputLoader.loadConfig(workspace.workspace).settings
        #expect(settings.notifications.count == 1)
        #expect(settings.notifications.first?.events == [.failed, .recovered, .unhealthy])
        #expect(
            settings.notifications.first?.secretFile == workspace.root.appendingPathComponent("config/hook.secret").path
        )
    }
}
