import DFEReconciler
import DFEState
public import Foundation
import Hummingbird
import Logging

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
}

/// The read-only HTTP surface: health, readiness, metrics and the instances API. Never serves secrets.
public struct HTTPSurface: Sendable {
    let state: ControllerState
    let queue: WorkQueue
    let stateURL: URL
    let stateSchema: String

    public init(state: ControllerState, queue: WorkQueue, stateURL: URL, stateSchema: String = "dfe") {
        self.stateSchema = stateSchema
        self.state = state
        self.queue = queue
        self.stateURL = stateURL
    }

    /// Answers one request: GET only (others 405), unknown paths 404.
    public func respond(method: String, path: String) async -> HTTPReply {
        let known = ["/healthz", "/readyz", "/metrics", "/api/v1/instances"]
        let isInstance = path.hasPrefix("/api/v1/instances/") && path.count > "/api/v1/instances/".count
        guard known.contains(path) || isInstance else { return .text(404, "not found\n") }
        guard method == "GET" else { return .text(405, "method not allowed\n", allow: "GET") }
        switch path {
        case "/healthz":
            return .text(200, "ok\n")
        case "/readyz":
            let snapshot = state.snapshot
            if let standby = snapshot.standby {
                return .text(503, "standby; leader is \(standby.leader ?? "unknown")\n")
            }
            if snapshot.ready { return .text(200, "ready\n") }
            return .text(503, "not ready\n" + snapshot.notReadyReasons.joined(separator: "\n") + "\n")
        case "/metrics":
            return HTTPReply(
                status: 200, contentType: "text/plain; version=0.0.4; charset=utf-8",
                body: Data(await metrics().prometheusText().utf8))
        case "/api/v1/instances":
            switch instances() {
            case .success(let instances): return .json(200, StatusView.json(instances))
            case .failure(let error): return error.reply
            }
        default:
            let name = String(path.dropFirst("/api/v1/instances/".count))
            switch instances() {
            case .success(let instances):
                guard let one = instances.first(where: { $0.name == name }) else {
                    return .json(404, StatusView.encode(["error": "unknown instance '\(name)'"]))
                }
                return .json(200, StatusView.encode(one))
            case .failure(let error):
                return error.reply
            }
        }
    }

    /// The current metrics, with instance phases and queue depth read now.
    func metrics() async -> MetricsSnapshot {
        let snapshot = state.snapshot
        var metrics = snapshot.metrics
        metrics.queueDepth = await queue.depth
        if case .success(let instances) = instances() {
            metrics.phases = Dictionary(grouping: instances, by: \.phase).mapValues(\.count)
        }
        return metrics
    }

    /// What `dfe status --output json` shows: the recorded state plus the last good manifests.
    func instances() -> Result<[InstanceStatus], ReplyError> {
        do {
            let recorded = try StateBackends.backend(for: stateURL, schema: stateSchema).snapshot(withFields: false)
            return .success(StatusView.instances(recorded: recorded, desired: state.snapshot.desired))
        } catch {
            return .failure(ReplyError(reply: .json(500, StatusView.encode(["error": "\(error)"]))))
        }
    }

    struct ReplyError: Error {
        var reply: HTTPReply
    }
}
