import DFECore
import DFEDrivers
import DFEReconciler
import DFEState
import DFETestSupport
import Foundation
import Hummingbird
import Testing

@testable import DFEController

#if canImport(FoundationNetworking)
    import FoundationNetworking
#endif

/// One HTTP exchange's outcome.
struct HTTPAnswer: Sendable {
    var status: Int
    var headers: [String: String]
    var body: String
}

/// Any request with a short timeout; nil on a transport error.
func httpRequest(
    _ method: String, _ url: String, headers: [String: String] = [:], body: Data? = nil
) async -> HTTPAnswer? {
    let configuration = URLSessionConfiguration.ephemeral
    configuration.timeoutIntervalForRequest = 5
    let session = URLSession(configuration: configuration)
    defer { session.finishTasksAndInvalidate() }
    guard let url = URL(string: url) else { return nil }
    var request = URLRequest(url: url)
    request.httpMethod = method
    request.httpBody = body
    for (name, value) in headers { request.setValue(value, forHTTPHeaderField: name) }
    guard let (data, response) = try? await session.data(for: request), let http = response as? HTTPURLResponse
    else { return nil }
    var fields: [String: String] = [:]
    for (name, value) in http.allHeaderFields {
        if let name = name as? String, let value = value as? String { fields[name.lowercased()] = value }
    }
    return HTTPAnswer(status: http.statusCode, headers: fields, body: String(decoding: data, as: UTF8.self))
}

/// The controller's router served in-process on a free loopback port while `body` runs.
struct RouterServer {
    let port: Int

    static func with<T: Sendable>(
        _ surface: HTTPSurface, _ body: @Sendable (RouterServer) async throws -> T
    ) async throws -> T {
        let port = try freePort()
        let app = Application(
            router: HTTPRoutes.router(surface),
            configuration: ApplicationConfiguration(address: .hostname("127.0.0.1", port: port)))
        let task = Task { try await app.run() }
        defer { task.cancel() }
        let server = RouterServer(port: port)
        let up = await eventually(within: .seconds(90), every: .milliseconds(50)) {
            await server.request("GET", "/healthz") != nil
        }
        try #require(up, "the in-process server did not start")
        return try await body(server)
    }

    func request(_ method: String, _ path: String, headers: [String: String] = [:]) async -> HTTPAnswer? {
        await httpRequest(method, "http://127.0.0.1:\(port)\(path)", headers: headers)
    }
}

/// A recorded instance for views (no resource rows needed).
func record(_ name: String, phase: Phase, error: String? = nil, owner: String = "ops@example.com")
    -> RecordedInstance
{
    var record = RecordedInstance(name: name, owner: owner, provisioner: "dreamfactory")
    record.phase = phase
    record.lastError = error
    if phase == .failed { record.attempts = 2 }
    return record
}

@Suite("controller metrics")
struct ControllerMetricsTests {
    @Test("every family DESIGN lists is exposed from the start, each with HELP and TYPE")
    func everyFamilyExists() {
        let text = ControllerMetrics().prometheusText()
        for (name, type) in [
            ("dfe_instances", "gauge"), ("dfe_instances_health", "gauge"), ("dfe_reconcile_runs_total", "counter"),
            ("dfe_reconcile_duration_seconds", "histogram"), ("dfe_leader", "gauge"), ("dfe_ready", "gauge"),
            ("dfe_queue_depth", "gauge"), ("dfe_snapshots_total", "counter"), ("dfe_notifications_total", "counter"),
            ("dfe_manifest_load_errors_total", "counter"),
        ] {
            #expect(text.contains("# TYPE \(name) \(type)\n"), "missing TYPE of \(name)")
            #expect(text.contains("# HELP \(name) "), "missing HELP of \(name)")
        }
        #expect(text.contains("dfe_instances{phase=\"pending\"} 0.0"))
        #expect(text.contains("dfe_instances_health{status=\"unknown\"} 0.0"))
        #expect(text.contains("dfe_snapshots_total{reason=\"scheduled\",result=\"error\"} 0"))
        #expect(text.contains("dfe_leader 1.0"))
        #expect(text.contains("dfe_ready 0.0"))
        #expect(!text.contains("dfe_last_applied_revision_info{"))
    }

    @Test("runs, steps, the duration histogram, phases and the revision are recorded")
    func recording() {
        let metrics = ControllerMetrics()
        metrics.recordRun(duration: .milliseconds(50), success: true)
        metrics.recordRun(duration: .seconds(2), success: false)
        metrics.recordStep(resource: .storage, action: .create, success: true)
        metrics.recordStep(resource: .storage, action: .create, success: true)
        metrics.recordStep(resource: .database, action: .update, success: false)
        metrics.setPhases([.ready: 2, .failed: 1])
        metrics.setQueueDepth(3)
        metrics.recordManifestLoadError()
        metrics.setLastAppliedRevision("abc\"1")
        metrics.setLastAppliedRevision("def2")
        metrics.recordNotification(result: "dropped")
        metrics.recordSnapshot(reason: "scheduled", success: true)
        metrics.setReady(true)
        let lines = Set(metrics.prometheusText().split(separator: "\n").map(String.init))
        for expected in [
            "dfe_reconcile_runs_total{result=\"success\"} 1",
            "dfe_reconcile_runs_total{result=\"error\"} 1",
            "dfe_reconcile_duration_seconds_bucket{le=\"0.1\"} 1",
            "dfe_reconcile_duration_seconds_bucket{le=\"1.0\"} 1",
            "dfe_reconcile_duration_seconds_bucket{le=\"2.5\"} 2",
            "dfe_reconcile_duration_seconds_bucket{le=\"+Inf\"} 2",
            "dfe_reconcile_duration_seconds_count 2",
            "dfe_steps_total{resource=\"storage\",action=\"create\",result=\"success\"} 2",
            "dfe_steps_total{resource=\"database\",action=\"update\",result=\"error\"} 1",
            "dfe_instances{phase=\"ready\"} 2.0",
            "dfe_instances{phase=\"failed\"} 1.0",
            "dfe_instances{phase=\"pending\"} 0.0",
            "dfe_queue_depth 3.0",
            "dfe_manifest_load_errors_total 1",
            "dfe_last_applied_revision_info{revision=\"def2\"} 1.0",
            "dfe_notifications_total{result=\"dropped\"} 1",
            "dfe_snapshots_total{reason=\"scheduled\",result=\"success\"} 1",
            "dfe_ready 1.0",
        ] {
            #expect(lines.contains(expected), "missing: \(expected)")
        }
        #expect(!lines.contains { $0.contains("abc") }, "the replaced revision is gone")
    }
}

@Suite("fleet view")
struct FleetViewTests {
    @Test("a refresh counts phases, indexes names, encodes the status JSON once and sets the phase gauges")
    func refresh() async throws {
        let metrics = ControllerMetrics()
        let view = FleetView(metrics: metrics)
        let before = await view.snapshot.version
        await view.refresh(recorded: [
            "a": record("a", phase: .ready), "b": record("b", phase: .failed, error: "boom"),
            "c": record("c", phase: .ready),
        ])
        let snapshot = await view.snapshot
        #expect(snapshot.version > before)
        #expect(snapshot.instances.map(\.name) == ["a", "b", "c"])
        #expect(snapshot.instance("b")?.lastError == "boom")
        #expect(snapshot.instance("zz") == nil)
        #expect(snapshot.phases == [.ready: 2, .failed: 1])
        let object = try JSONSerialization.jsonObject(with: snapshot.json) as? [String: Any]
        #expect((object?["instances"] as? [Any])?.count == 3)
        #expect(metrics.prometheusText().contains("dfe_instances{phase=\"ready\"} 2.0"))
    }

    @Test("history keeps only the newest steps of an instance, newest first, and forgets removed instances")
    func boundedHistory() async {
        let view = FleetView()
        await view.refresh(recorded: ["a": record("a", phase: .ready)])
        for index in 0..<(FleetView.historyLimit + 5) {
            await view.recordStep(
                StepRecord(
                    resource: .storage, action: .update, reason: "r\(index)", error: nil,
                    at: Date(timeIntervalSince1970: Double(index)), duration: .zero), instance: "a")
        }
        let history = await view.history("a")
        #expect(history.count == FleetView.historyLimit)
        #expect(history.first?.reason == "r\(FleetView.historyLimit + 4)")
        await view.refresh(recorded: [:])
        #expect(await view.history("a").isEmpty)
    }

    @Test("a standby refreshes from the recorded state on disk")
    func refreshFromState() async throws {
        let workspace = try TemporaryWorkspace(prefix: "dfe-fleet-standby")
        defer { workspace.delete() }
        try workspace.addInstance("one")
        try workspace.addInstance("two")
        _ = try await workspace.reconciler().run(ReconcileOptions())
        let view = FleetView()
        try await view.refresh(from: workspace.workspace.stateBackend())
        #expect(await view.snapshot.instances.map(\.phase) == ["ready", "ready"])
    }
}

@Suite("HTTP routes")
struct HTTPRoutesTests {
    func surface(token: APIToken? = nil, state: ControllerState = ControllerState()) async -> HTTPSurface {
        let fleet = FleetView(metrics: state.metrics)
        await fleet.refresh(recorded: [
            "alpha": record("alpha", phase: .ready), "beta": record("beta", phase: .failed, error: "disk <full>"),
        ])
        return HTTPSurface(state: state, queue: WorkQueue(), fleet: fleet, token: token)
    }

    @Test("GET and HEAD on every read endpoint, 405 with Allow for other methods, 404 elsewhere")
    func methodsAndPaths() async throws {
        try await RouterServer.with(await surface()) { server in
            for path in [
                "/healthz", "/metrics", "/", "/instances/alpha", "/api/v1/instances", "/api/v1/instances/beta",
            ] {
                let get = try #require(await server.request("GET", path))
                #expect(get.status == 200, "GET \(path)")
                let head = try #require(await server.request("HEAD", path))
                #expect(head.status == 200, "HEAD \(path)")
                #expect(head.body.isEmpty, "HEAD \(path) has no body")
                #expect(head.headers["content-type"] == get.headers["content-type"])
                let post = try #require(await server.request("POST", path))
                #expect(post.status == 405, "POST \(path)")
                #expect(post.headers["allow"] == "GET, HEAD")
            }
            #expect(await server.request("DELETE", "/api/v1/instances/x")?.status == 405)
            #expect(await server.request("GET", "/nope")?.status == 404)
            let unknown = try #require(await server.request("GET", "/api/v1/instances/ghost"))
            #expect(unknown.status == 404)
            #expect(unknown.headers["content-type"] == "application/json")
            #expect(await server.request("GET", "/instances/ghost")?.status == 404)
            // Without a token file the reconcile endpoint does not exist.
            #expect(await server.request("POST", "/api/v1/instances/alpha/reconcile")?.status == 404)
        }
    }

    @Test("the API answers from the fleet view: no state file is read")
    func answersFromMemory() async throws {
        try await RouterServer.with(await surface()) { server in
            let list = try #require(await server.request("GET", "/api/v1/instances"))
            let object = try JSONSerialization.jsonObject(with: Data(list.body.utf8)) as? [String: Any]
            let names = (object?["instances"] as? [[String: Any]])?.compactMap { $0["name"] as? String }
            #expect(names == ["alpha", "beta"])
            let one = try #require(await server.request("GET", "/api/v1/instances/beta"))
            let beta = try JSONSerialization.jsonObject(with: Data(one.body.utf8)) as? [String: Any]
            #expect(beta?["lastError"] as? String == "disk <full>")
            #expect(beta?["phase"] as? String == "failed")
        }
    }

    @Test("readyz is 503 with reasons until the first run finished and manifests are valid")
    func readiness() async throws {
        let state = ControllerState()
        try await RouterServer.with(await surface(state: state)) { server in
            let before = try #require(await server.request("GET", "/readyz"))
            #expect(before.status == 503)
            #expect(before.body.contains("first reconcile"))
            state.update { $0.firstRunFinished = true }
            #expect(await server.request("GET", "/readyz")?.status == 200)
            #expect(await server.request("GET", "/metrics")?.body.contains("dfe_ready 1.0") == true)
            state.update { $0.loadErrors = ["manifests/x.yaml:1:1: error: boom"] }
            let invalid = try #require(await server.request("GET", "/readyz"))
            #expect(invalid.status == 503)
            #expect(invalid.body.contains("manifests/x.yaml:1:1: error: boom"))
            #expect(await server.request("GET", "/metrics")?.body.contains("dfe_ready 0.0") == true)
        }
    }

    @Test("with a token every endpoint but healthz and readyz needs the bearer token; POST reconcile queues")
    func authentication() async throws {
        let queue = WorkQueue()
        let state = ControllerState()
        let fleet = FleetView()
        await fleet.refresh(recorded: ["alpha": record("alpha", phase: .failed, error: "x")])
        let surface = HTTPSurface(state: state, queue: queue, fleet: fleet, token: APIToken("s3cret-token"))
        try await RouterServer.with(surface) { server in
            let good = ["Authorization": "Bearer s3cret-token"]
            for path in ["/", "/metrics", "/api/v1/instances", "/api/v1/instances/alpha", "/instances/alpha", "/nope"] {
                let denied = try #require(await server.request("GET", path))
                #expect(denied.status == 401, "GET \(path) without a token")
                #expect(denied.headers["www-authenticate"]?.hasPrefix("Bearer") == true)
                #expect(await server.request("GET", path, headers: ["Authorization": "Bearer wrong"])?.status == 401)
                #expect(await server.request("GET", path, headers: ["Authorization": "s3cret-token"])?.status == 401)
            }
            #expect(await server.request("GET", "/api/v1/instances", headers: good)?.status == 200)
            #expect(await server.request("GET", "/", headers: good)?.status == 200)
            #expect(await server.request("GET", "/healthz")?.status == 200)
            #expect(await server.request("GET", "/readyz")?.status == 503)
            #expect(await server.request("POST", "/api/v1/instances/alpha/reconcile")?.status == 401)
            #expect(await server.request("POST", "/api/v1/instances/ghost/reconcile", headers: good)?.status == 404)
            #expect(await queue.depth == 0)
            let queued = try #require(await server.request("POST", "/api/v1/instances/alpha/reconcile", headers: good))
            #expect(queued.status == 202)
            #expect(await server.request("GET", "/api/v1/instances/alpha/reconcile", headers: good)?.status == 405)
        }
        let work = await queue.next()
        #expect(work?.names == ["alpha"])
        #expect(work?.urgent == ["alpha"])
    }
}

@Suite("API token")
struct APITokenTests {
    @Test("a token file must have mode 0600: another mode refuses, naming the file and the mode")
    func fileMode() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("dfe-token-\(UUID())")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let file = directory.appendingPathComponent("token")
        try Data("abc123\n".utf8).write(to: file)
        try FileManager.default.setAttributes([.posixPermissions: 0o644], ofItemAtPath: file.path)
        #expect {
            try APIToken(file: file)
        } throws: { error in
            "\(error)".contains(file.path) && "\(error)".contains("0644")
        }
        try FileManager.default.setAttributes([.posixPermissions: 0o600], ofItemAtPath: file.path)
        let token = try APIToken(file: file)
        #expect(token.accepts(authorization: "Bearer abc123"))
        #expect(token.accepts(authorization: "bearer abc123"))
        #expect(!token.accepts(authorization: "Bearer abc1234"))
        #expect(!token.accepts(authorization: "Bearer abc12"))
        #expect(!token.accepts(authorization: nil))
        #expect(throws: ControllerError.self) { try APIToken(file: directory.appendingPathComponent("missing")) }
    }

    @Test("constant-time comparison is plain equality of bytes")
    func constantTime() {
        #expect(APIToken.constantTimeEqual(Array("abc".utf8), Array("abc".utf8)))
        #expect(!APIToken.constantTimeEqual(Array("abc".utf8), Array("abd".utf8)))
        #expect(!APIToken.constantTimeEqual(Array("abc".utf8), Array("ab".utf8)))
        #expect(!APIToken.constantTimeEqual([], Array("a".utf8)))
        #expect(APIToken.constantTimeEqual([], []))
    }

    @Test("loopback addresses are 127.0.0.0/8, ::1 and localhost")
    func loopback() {
        #expect(ListenAddress("127.0.0.1:1")?.isLoopback == true)
        #expect(ListenAddress("127.8.9.1:1")?.isLoopback == true)
        #expect(ListenAddress("[::1]:1")?.isLoopback == true)
        #expect(ListenAddress("localhost:1")?.isLoopback == true)
        #expect(ListenAddress("0.0.0.0:1")?.isLoopback == false)
        #expect(ListenAddress("[::]:1")?.isLoopback == false)
        #expect(ListenAddress("10.0.0.1:1")?.isLoopback == false)
        #expect(ListenAddress("127.0.0.1.example.com:1")?.isLoopback == false)
    }

    @Test("binding a non-loopback address without a token file refuses to start")
    func nonLoopbackNeedsToken() async throws {
        let workspace = try TemporaryWorkspace(prefix: "dfe-ctl-bind")
        defer { workspace.delete() }
        let options = ControllerOptions(
            workspace: workspace.workspace, registry: BuiltinDrivers.registry(), environment: [:],
            listen: "0.0.0.0:\(try freePort())")
        await #expect {
            try await Controller(options: options).run()
        } throws: { error in
            "\(error)".contains("--api-token-file") && "\(error)".contains("0.0.0.0")
        }
    }
}

@Suite("fleet pages")
struct FleetPagesTests {
    func snapshot() async -> FleetView.Snapshot {
        let view = FleetView()
        await view.refresh(recorded: [
            "alpha": record("alpha", phase: .ready, owner: "<b>o'wner</b>&co"),
            "beta": record("beta", phase: .failed, error: "<script>alert(1)</script>\u{1b}[31m\nline"),
        ])
        return await view.snapshot
    }

    @Test("every value is escaped, control characters shown as escapes, and phases are words with a colour")
    func escaping() async {
        let html = String(decoding: FleetPages().fleet(await snapshot()), as: UTF8.self)
        #expect(!html.contains("<script>alert"))
        #expect(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;\\u001b[31m\\nline"))
        #expect(html.contains("&lt;b&gt;o&#39;wner&lt;/b&gt;&amp;co"))
        #expect(!html.contains("\u{1b}"))
        #expect(html.contains("<span class=\"badge bad\">failed</span>"))
        #expect(html.contains("<span class=\"badge good\">ready</span>"))
        #expect(html.contains("<a href=\"/instances/beta\">beta</a>"))
        #expect(html.contains("<tr data-name=\"beta\" data-phase=\"failed\" data-health=\"unknown\">"))
    }

    @Test("the fleet page is rendered once per version of the fleet view")
    func cached() async {
        let pages = FleetPages()
        let snapshot = await snapshot()
        let first = pages.fleet(snapshot)
        var changed = snapshot
        changed.instances = []
        #expect(pages.fleet(changed) == first, "same version: the cached page")
        changed.version += 1
        #expect(pages.fleet(changed) != first)
    }

    @Test("an instance page shows resources and recent history, escaped")
    func instancePage() async throws {
        let snapshot = await snapshot()
        let beta = try #require(snapshot.instance("beta"))
        let step = StepRecord(
            resource: .storage, action: .create, reason: "new", error: "mkdir <x>: denied",
            at: Date(timeIntervalSince1970: 0), duration: .milliseconds(12))
        let html = String(decoding: FleetPages().instance(beta, history: [step]), as: UTF8.self)
        #expect(html.contains("<dd class=\"error\" id=\"last-error\">&lt;script&gt;"))
        #expect(html.contains("mkdir &lt;x&gt;: denied"))
        #expect(html.contains("<td>1970-01-01T00:00:00Z</td><td>storage</td><td>create</td>"))
    }
}
