import Foundation
public import Hummingbird

/// The controller's routes on Hummingbird's `Router`: GET (with HEAD) on every read endpoint, 405 with `Allow`
/// for other methods on a known path, 404 elsewhere, and bearer authentication when a token is set.
public enum HTTPRoutes {
    /// Methods answered with 405 on a path that exists.
    static let otherMethods: [HTTPRequest.Method] = [.post, .put, .delete, .patch]

    /// The router serving `surface`.
    public static func router(_ surface: HTTPSurface) -> Router<BasicRequestContext> {
        let router = Router(context: BasicRequestContext.self, options: [.autoGenerateHeadEndpoints])
        router.add(middleware: Authentication(surface: surface))
        read(router, "/healthz") { _, _ in surface.healthz() }
        read(router, "/readyz") { _, _ in surface.readyz() }
        read(router, "/metrics") { _, _ in await surface.metrics() }
        read(router, "/") { _, _ in await surface.fleetPage() }
        read(router, "/instances/:name") { _, context in await surface.instancePage(name(context)) }
        read(router, "/api/v1/instances") { _, _ in await surface.instances() }
        read(router, "/api/v1/instances/:name") { _, context in await surface.instance(name(context)) }
        if surface.token != nil {
            router.post("/api/v1/instances/:name/reconcile") { _, context in
                response(await surface.reconcile(name(context)))
            }
            for method in [HTTPRequest.Method.get, .put, .delete, .patch] {
                router.on("/api/v1/instances/:name/reconcile", method: method) { _, _ in
                    response(.text(405, "method not allowed\n", allow: "POST"))
                }
            }
        }
        return router
    }

    /// Registers GET (HEAD is generated from it) and 405 for the other methods.
    static func read(
        _ router: Router<BasicRequestContext>, _ path: RouterPath,
        _ handler: @escaping @Sendable (Request, BasicRequestContext) async -> HTTPReply
    ) {
        router.get(path) { request, context in response(await handler(request, context)) }
        for method in otherMethods {
            router.on(path, method: method) { _, _ in response(.text(405, "method not allowed\n", allow: "GET, HEAD")) }
        }
    }

    /// The `:name` path parameter, percent-decoded.
    static func name(_ context: BasicRequestContext) -> String {
        let raw = context.parameters.get("name") ?? ""
        return raw.removingPercentEncoding ?? raw
    }

    /// A Hummingbird response for a reply.
    static func response(_ reply: HTTPReply) -> Response {
        var headers = HTTPFields()
        headers[.contentType] = reply.contentType
        headers[.cacheControl] = "no-store"
        if let allow = reply.allow { headers[.allow] = allow }
        if reply.status == 401 { headers[.wwwAuthenticate] = "Bearer realm=\"dfe\"" }
        return Response(
            status: HTTPResponse.Status(code: reply.status), headers: headers,
            body: ResponseBody(byteBuffer: ByteBuffer(bytes: reply.body)))
    }

    /// Answers 401 to a request without the bearer token, when a token is set (except `/healthz`, `/readyz`).
    struct Authentication: RouterMiddleware {
        typealias Context = BasicRequestContext
        let surface: HTTPSurface

        func handle(
            _ request: Request, context: BasicRequestContext,
            next: (Request, BasicRequestContext) async throws -> Response
        ) async throws -> Response {
            guard surface.authorized(path: request.uri.path, authorization: request.headers[.authorization]) else {
                return response(.text(401, "unauthorized: send Authorization: Bearer TOKEN\n"))
            }
            return try await next(request, context)
        }
    }
}
