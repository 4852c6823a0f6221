import ArgumentParser
import DFEController
import DFECore
import DFEReconciler
import Foundation
import Logging

/// `dfe controller`: reconcile continuously.
struct ControllerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "controller", abstract: "Reconcile continuously: on start, on change, on an interval.",
        discussion: "Exits 0 on SIGTERM or SIGINT after finishing the step in flight and releasing the lease.")

    @OptionGroup var workspace: WorkspaceOptions

    @Option(name: .long, help: "Resync interval (default: config's controller.interval, 60s).")
    var interval: String?

    @Option(name: .long, help: "HTTP listen address (default: config's controller.listen, 127.0.0.1:9420).")
    var listen: String?

    @Option(
        name: .long,
        help: ArgumentHelp(
            "A file (mode 0600) holding the bearer token the HTTP API requires; needed for a non-loopback --listen.",
            valueName: "path"))
    var apiTokenFile: String?

    @Option(name: .long, help: "Git repository URL to take manifests from.")
    var git: String?

    @Option(name: .long, help: "Git ref to follow (with --git; default: main).")
    var ref: String?

    @Option(name: .long, help: "Manifests directory inside the repository (with --git; default: manifests).")
    var path: String?

    @Option(name: .long, help: "How often to fetch the git source (default: the resync interval).")
    var gitInterval: String?

    @Flag(name: .long, help: "Delete instances whose manifest is gone (default: config's prune).")
    var prune = false

    @Option(name: .long, help: "Instances reconciled at once (default: config's parallelism).")
    var parallelism: Int?

    @Flag(name: .long, help: "Run even when this user does not own the state.")
    var allowOtherUser = false

    @Option(name: .long, help: "Log format.")
    var logFormat: LogSetup.Format = .logfmt

    @Option(name: .long, help: "Log level.")
    var logLevel: LogLevel = .info

    func run() async throws {
        LogSetup.bootstrap(level: logLevel.level, format: logFormat)
        var logger = Logger(label: "dfe.controller")
        logger.logLevel = logLevel.level
        var options = ControllerOptions(
            workspace: workspace.workspace(), registry: AllDrivers.registry(), listen: listen,
            prune: prune ? true : nil, parallelism: parallelism, logger: logger)
        options.interval = try Self.duration(interval, option: "--interval")
        options.apiTokenFile = apiTokenFile.map { URL(fileURLWithPath: $0) }
        options.allowOtherUser = allowOtherUser
        if let git {
            options.git = GitSourceOptions(
                url: git, ref: ref ?? "main", path: path ?? "manifests",
                interval: try Self.duration(gitInterval, option: "--git-interval"))
        }
        do {
            try await Controller(options: options).run()
        } catch {
            throw CommandFailure("controller: \(error)")
        }
    }

    func validate() throws {
        if let parallelism, !(1...256).contains(parallelism) {
            throw ValidationError("--parallelism must be between 1 and 256")
        }
        if let listen, ListenAddress(listen) == nil {
            throw ValidationError("--listen must be HOST:PORT, e.g. 127.0.0.1:9420")
        }
        _ = try Self.duration(interval, option: "--interval")
        _ = try Self.duration(gitInterval, option: "--git-interval")
        if git == nil {
            for (flag, value) in [("--git-interval", gitInterval), ("--ref", ref), ("--path", path)] where value != nil
            {
                throw ValidationError("\(flag) needs --git (it applies to the git source only)")
            }
        }
    }

    /// Parses a positive duration option (`500ms`, `2s`, `5m`, `1h`); nil stays nil.
    static func duration(_ text: String?, option: String) throws -> Duration? {
        guard let text else { return nil }
        guard let duration = DurationText.parse(text), duration > .zero else {
            throw ValidationError("\(option) must be a positive duration like 500ms, 2s, 5m or 1h")
        }
        return duration
    }
}
