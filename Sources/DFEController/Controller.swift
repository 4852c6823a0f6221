import DFECore
public import DFEProvision
public import DFEReconciler
public import Foundation
import Hummingbird
public import Logging
import ServiceLifecycle

/// How `dfe controller` runs: the workspace, its triggers, an optional git source and the HTTP address.
public struct ControllerOptions: Sendable {
    public var workspace: Workspace
    public var registry: DriverRegistry
    public var environment: [String: String]
    /// Resync interval; nil: config's `controller.interval`.
    public var interval: Duration?
    /// `HOST:PORT` to serve on; nil: config's `controller.listen`.
    public var listen: String?
    public var git: GitSourceOptions?
    /// `--api-token-file`: a 0600 file holding the bearer token the HTTP API requires (all but `/healthz`,
    /// `/readyz`); needed to bind a non-loopback address; enables `POST /api/v1/instances/NAME/reconcile`.
    public var apiTokenFile: URL?
    /// nil: config's `prune`.
    public var prune: Bool?
    /// nil: config's `parallelism`.
    public var parallelism: Int?
    /// Quiet time after a file event before reloading.
    public var debounce: Duration = .milliseconds(200)
    /// The longest a graceful shutdown may take before the run in flight is cancelled.
    public var shutdownGrace: Duration = .seconds(9)
    public var clock: any WallClock
    public var logger: Logger
    /// Run even when this user does not own the state (`--allow-other-user`).
    public var allowOtherUser = false

    public init(
        workspace: Workspace, registry: DriverRegistry,
        environment: [String: String] = ProcessInfo.processInfo.environment, interval: Duration? = nil,
        listen: String? = nil, git: GitSourceOptions? = nil, prune: Bool? = nil, parallelism: Int? = nil,
        clock: any WallClock = SystemClock(), logger: Logger = Logger(label: "dfe.controller")
    ) {
        self.workspace = workspace
        self.registry = registry
        self.environment = environment
        self.interval = interval
        self.listen = listen
        self.git = git
        self.prune = prune
        self.parallelism = parallelism
        self.clock = clock
        self.logger = logger
    }
}

/// A `HOST:PORT` listen address (`[::1]:9420` for IPv6).
public struct ListenAddress: Sendable, Hashable, CustomStringConvertible {
    public var host: String
    public var port: Int

    /// Parses `HOST:PORT`; nil when malformed.
    public init?(_ text: String) {
        guard let colon = text.lastIndex(of: ":"), let port = Int(text[text.index(after: colon)...]),
            (0...65535).contains(port)
        else { return nil }
        var host = String(text[..<colon])
        if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        guard !host.isEmpty else { return nil }
        self.host = host
        self.port = port
    }

    public var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }
}

/// A controller setting that cannot be used.
public struct ControllerError: Error, CustomStringConvertible {
    public var description: String
}

/// `dfe controller`: reconciles continuously until SIGTERM or SIGINT.
///
/// A service group runs, in start order, the HTTP server, the reconcile worker with its timers, the git source
/// (optional) and the file watcher. Graceful shutdown goes in reverse: the watcher and git source stop, the worker
/// finishes the run in flight (releasing the state lease), then the server stops.
public struct Controller: Sendable {
    public var options: ControllerOptions

    public init(options: ControllerOptions) {
        self.options = options
    }

    /// Runs until a graceful shutdown; throws when the HTTP server cannot start or a setting is unusable.
    public func run() async throws {
        let logger = options.logger
        var workspace = options.workspace
        let settings: Settings
        do {
            settings = try InputLoader.loadConfig(workspace).settings
        } catch {
            for diagnostic in error.diagnostics {
                logger.error(
                    "invalid config",
                    metadata: ["location": "\(diagnostic.location)", "error": "\(diagnostic.message)"])
            }
            logger.warning("using default controller settings until the config is valid")
            settings = Settings()
        }
        let interval = options.interval ?? settings.controllerInterval
        guard interval > .zero else { throw ControllerError(description: "the resync interval must be positive") }
        let listenText = options.listen ?? settings.listen
        guard let listen = ListenAddress(listenText) else {
            throw ControllerError(description: "invalid listen address '\(listenText)': expected HOST:PORT")
        }
        let token = try options.apiTokenFile.map { url throws(ControllerError) in try APIToken(file: url) }
        guard token != nil || listen.isLoopback else {
            throw ControllerError(
                description:
                    "refusing to serve on the non-loopback address \(listen) without --api-token-file: "
                    + "anyone on the network could read every instance's status")
        }
        let gitDirectory = workspace.root.appendingPathComponent("var/git")
        if options.git != nil {
            // Until the first commit is adopted nothing is read; the engine then points at the checkout.
            workspace.manifests = gitDirectory.appendingPathComponent("checkouts")
        }
        if !options.allowOtherUser {
            do {
                try StateOwnership.check(workspace.state, root: workspace.root)
            } catch {
                throw ControllerError(description: "\(error)")
            }
        }
        let queue = WorkQueue()
        let state = ControllerState()
        let fleet = FleetView(metrics: state.metrics, now: { [clock = options.clock] in clock.now() })
        var reconcilerLogger = Logger(label: "dfe")
        reconcilerLogger.logLevel = logger.logLevel
        let engine = Engine(
            workspace: workspace, registry: options.registry, environment: options.environment, clock: options.clock,
            logger: logger, reconcilerLogger: reconcilerLogger, queue: queue, state: state, fleet: fleet,
            prune: options.prune, parallelism: options.parallelism, gitMode: options.git != nil,
            allowOtherUser: options.allowOtherUser)

        let surface = HTTPSurface(state: state, queue: queue, fleet: fleet, token: token)
        var httpLogger = Logger(label: "dfe.http")
        httpLogger.logLevel = .warning
        let server = Application(
            router: HTTPRoutes.router(surface),
            configuration: ApplicationConfiguration(
                address: .hostname(listen.host, port: listen.port), serverName: "dfe"),
            onServerRunning: { channel in
                logger.info(
                    "serving HTTP",
                    metadata: ["address": "\(listen.host):\(channel.localAddress?.port ?? listen.port)"])
            },
            logger: httpLogger)

        var services: [ServiceGroupConfiguration.ServiceConfiguration] = [.init(service: server)]
        if !workspace.state.isFileURL {
            // A server state may be shared by several controllers: only the elected leader reconciles.
            await engine.electLeader()
            services.append(
                .init(
                    service: LeaderElection(
                        workspace: workspace, engine: engine, state: state, clock: options.clock, logger: logger)))
        }
        services += [
            .init(
                service: ReconcileService(
                    engine: engine, queue: queue, interval: interval, clock: options.clock, logger: logger,
                    loadAtStart: options.git == nil))
        ]
        var watched = [FileWatcher.Root(url: workspace.config, isConfig: true)]
        if let git = options.git {
            services.append(
                .init(
                    service: GitSource(
                        options: git, interval: git.interval ?? interval, directory: gitDirectory, engine: engine,
                        state: state, logger: logger)))
        } else {
            watched.append(FileWatcher.Root(url: workspace.manifests, isConfig: false))
        }
        services.append(
            .init(
                service: FileWatcher(roots: watched, debounce: options.debounce, logger: logger) { change in
                    let reason = change.config ? "config changed" : "manifests changed"
                    await engine.reload(reason: reason, configChanged: change.config)
                }))
        var configuration = ServiceGroupConfiguration(
            services: services, gracefulShutdownSignals: [.sigterm, .sigint], logger: logger)
        configuration.maximumGracefulShutdownDuration = options.shutdownGrace
        configuration.maximumCancellationDuration = .seconds(1)
        logger.info(
            "controller starting",
            metadata: [
                "listen": "\(listen)", "interval": "\(DurationText.format(interval))",
                "manifests":
                    "\(options.git.map { "git \($0.displayURL) \($0.ref) \($0.path)" } ?? workspace.manifests.path)",
                "config": "\(workspace.config.path)",
            ])
        do {
            try await ServiceGroup(configuration: configuration).run()
        } catch {
            // NIO's bind error names neither the address nor what to do.
            let text = "\(error)"
            if text.contains("Address already in use") || text.contains("errno: 98") {
                throw ControllerError(
                    description:
                        "cannot listen on \(listen): the address is already in use (another dfe controller?); stop it or pass --listen HOST:PORT"
                )
            }
            if text.contains("bind(") {
                throw ControllerError(description: "cannot listen on \(listen): \(text)")
            }
            throw error
        }
        logger.info("controller stopped")
    }
}
