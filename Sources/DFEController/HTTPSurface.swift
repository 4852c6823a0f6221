import DFEReconciler
public import Foundation

/// One HTTP answer, independent of the server library.
public struct HTTPReply: Sendable, Hashable {
    public var status: Int
    public var contentType: String
    public var body: Data
    /// The `Allow` header of a 405.
    public var allow: String?

    public init(status: Int, contentType: String, body: Data, allow: String? = nil) {
        self.status = status
        self.contentType = contentType
        self.body = body
        self.allow = allow
    }

    static func text(_ status: Int, _ text: String, allow: String? = nil) -> HTTPReply {
        HTTPReply(status: status, contentType: "text/plain; charset=utf-8", body: Data(text.utf8), allow: allow)
    }

    static func json(_ status: Int, _ body: Data) -> HTTPReply {
        HTTPReply(status: status, contentType: "application/json", body: body)
    }

    static func html(_ status: Int, _ body: Data) -> HTTPReply {
        HTTPReply(status: status, contentType: "text/html; charset=utf-8", body: body)
    }
}

/// What the controller serves: health, readiness, metrics, the instances API and the fleet pages.
///
/// Every answer comes from memory (the fleet view, the controller state, the metrics registry); nothing here
/// reads the state. Never serves a secret.
public struct HTTPSurface: Sendable {
    let state: ControllerState
    let queue: WorkQueue
    let fleet: FleetView
    /// When set, every endpoint but `/healthz` and `/readyz` needs `Authorization: Bearer TOKEN`, and
    /// `POST /api/v1/instances/NAME/reconcile` exists.
    let token: APIToken?
    let pages: FleetPages

    public init(state: ControllerState, queue: WorkQueue, fleet: FleetView, token: APIToken? = nil) {
        self.state = state
        self.queue = queue
        self.fleet = fleet
        self.token = token
        self.pages = FleetPages()
    }

    /// `/healthz`: the process is up.
    func healthz() -> HTTPReply { .text(200, "ok\n") }

    /// `/readyz`: 200 once the first reconcile finished and the last load was valid; 503 with reasons otherwise.
    func readyz() -> HTTPReply {
        let snapshot = state.snapshot
        if let standby = snapshot.standby { return .text(503, "standby; leader is \(standby.leader ?? "unknown")\n") }
        if snapshot.ready { return .text(200, "ready\n") }
        return .text(503, "not ready\n" + snapshot.notReadyReasons.joined(separator: "\n") + "\n")
    }

    /// `/metrics`: the Prometheus text of the registry, with the queue depth read now.
    func metrics() async -> HTTPReply {
        state.metrics.setQueueDepth(await queue.depth)
        return HTTPReply(
            status: 200, contentType: "text/plain; version=0.0.4; charset=utf-8",
            body: Data(state.metrics.prometheusText().utf8))
    }

    /// `/api/v1/instances`: what `dfe status --output json` shows, encoded once per change of the fleet.
    func instances() async -> HTTPReply { .json(200, await fleet.snapshot.json) }

    /// `/api/v1/instances/NAME`: one instance object; 404 if unknown.
    func instance(_ name: String) async -> HTTPReply {
        guard let one = await fleet.snapshot.instance(name) else { return Self.unknown(name) }
        return .json(200, StatusView.encode(one))
    }

    /// `POST /api/v1/instances/NAME/reconcile`: queues a known instance at once, ignoring its backoff (202).
    func reconcile(_ name: String) async -> HTTPReply {
        guard await fleet.snapshot.instance(name) != nil else { return Self.unknown(name) }
        await queue.enqueue([name], reason: "requested through the API", ignoringBackoff: true)
        return .json(202, StatusView.encode(["queued": name]))
    }

    /// `/`: the fleet page.
    func fleetPage() async -> HTTPReply { .html(200, pages.fleet(await fleet.snapshot)) }

    /// `/instances/NAME`: one instance's page; 404 if unknown.
    func instancePage(_ name: String) async -> HTTPReply {
        let snapshot = await fleet.snapshot
        guard let one = snapshot.instance(name) else {
            return .html(404, pages.notFound(name))
        }
        return .html(200, pages.instance(one, history: await fleet.history(name)))
    }

    /// Whether a request to `path` with this `Authorization` header may proceed.
    func authorized(path: String, authorization: String?) -> Bool {
        guard let token else { return true }
        if path == "/healthz" || path == "/readyz" { return true }
        return token.accepts(authorization: authorization)
    }

    static func unknown(_ name: String) -> HTTPReply {
        .json(404, StatusView.encode(["error": "unknown instance '\(name)'"]))
    }
}
