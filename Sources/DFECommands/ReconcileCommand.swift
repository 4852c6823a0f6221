import ArgumentParser
import DFECore
import DFEReconciler
import Foundation
import Logging

/// `dfe reconcile`: plan and apply (or only plan with `--dry-run`).
struct ReconcileCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "reconcile",
        abstract: "Make the instances match the manifests.",
        discussion: """
            Exit codes: 0 converged (dry run: no changes), 2 dry run with changes pending, 1 any error.
            """)

    @OptionGroup var workspace: WorkspaceOptions

    @Flag(name: .long, help: "Print the plan; change nothing at all.")
    var dryRun = false

    @Flag(name: .long, help: "Delete instances whose manifest is gone (default: config's prune).")
    var prune = false

    @Option(name: .long, help: "Only this instance (repeatable).")
    var only: [String] = []

    @Option(name: .long, help: "Instances reconciled at once (default: config's parallelism, 4).")
    var parallelism: Int?

    @Flag(name: .long, help: "Wait for the state lease instead of failing when another run holds it.")
    var wait = false

    @Flag(name: .long, help: "Apply even when this user does not own the state.")
    var allowOtherUser = false

    @Option(name: .long, help: "Output format: text or json.")
    var output: OutputFormat = .text

    @Option(name: .long, help: "Log level for stderr logs: trace, debug, info, notice, warning, error.")
    var logLevel: LogLevel = .warning

    func validate() throws {
        if let parallelism, !(1...256).contains(parallelism) {
            throw ValidationError("--parallelism must be between 1 and 256")
        }
    }

    func run() async throws {
        LogSetup.bootstrap(level: logLevel.level, format: .logfmt)
        let code = await Self.execute(
            workspace: workspace.workspace(), dryRun: dryRun, prune: prune ? true : nil, only: only,
            parallelism: parallelism, wait: wait, allowOtherUser: allowOtherUser, output: output)
        if code != .success { throw code }
    }

    /// Runs a reconcile and prints it; returns the exit code.
    static func execute(
        workspace: Workspace, dryRun: Bool, prune: Bool?, only: [String], parallelism: Int?, wait: Bool,
        allowOtherUser: Bool = false, output: OutputFormat
    ) async -> ExitCode {
        let terminal = Terminal.shared
        let renderer = PlanOutput(terminal: terminal)
        let reconciler = Reconciler(workspace: workspace, registry: AllDrivers.registry(), logger: Logger(label: "dfe"))
        var options = ReconcileOptions(
            dryRun: dryRun, prune: prune, only: only.isEmpty ? nil : Set(only), parallelism: parallelism, wait: wait)
        options.revision = GitRevision.of(workspace.manifests)
        options.allowOtherUser = allowOtherUser
        var observer: ReconcileObserver?
        if output == .text && !dryRun {
            observer = { event in
                if let line = renderer.progress(event) { terminal.out(line) }
            }
        }
        let report: ReconcileReport
        do {
            report = try await reconciler.run(options, observer: observer)
        } catch {
            switch error {
            case .invalid(let failure):
                return reportInvalid(failure, format: output, dryRun: dryRun)
            case .state(let cause):
                if output == .json {
                    terminal.write(
                        jsonData([
                            "dryRun": dryRun, "summary": summaryObject(PlanSummary()), "changes": [Any](),
                            "errors": [["message": "\(cause)"]],
                        ]))
                } else {
                    terminal.err("dfe: \(cause)")
                }
                return .failure
            }
        }
        if output == .json {
            terminal.write(jsonData(PlanOutput.json(report)))
        } else {
            if dryRun {
                for warning in report.warnings { terminal.out(terminal.paint("warning: ", .yellow) + warning) }
                let lines = renderer.render(report)
                if !lines.isEmpty {
                    terminal.out("dfe will perform the following actions:\n")
                    for line in lines { terminal.out(line) }
                }
            } else {
                for instance in report.plan.instances where instance.disposition == .orphaned {
                    terminal.out("  # \(instance.name) orphaned: its manifest is gone; --prune deletes it")
                }
            }
            for error in report.errors where !dryRun {
                terminal.err(
                    "error: \(error.instance)\(error.resource.map { "/\($0.rawValue)" } ?? ""): \(error.message)")
            }
            terminal.out(renderer.summaryLine(report))
        }
        if !report.errors.isEmpty { return .failure }
        if dryRun && report.summary.hasPendingChanges { return ExitCode(2) }
        return .success
    }
}

/// `dfe plan`: an alias of `dfe reconcile --dry-run`.
struct PlanCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "plan", abstract: "Print the plan (alias of reconcile --dry-run).",
        discussion: "Exit codes: 0 no changes, 2 changes pending, 1 error.")

    @OptionGroup var workspace: WorkspaceOptions

    @Flag(name: .long, help: "Plan deletion of instances whose manifest is gone.")
    var prune = false

    @Option(name: .long, help: "Only this instance (repeatable).")
    var only: [String] = []

    @Option(name: .long, help: "Output format: text or json.")
    var output: OutputFormat = .text

    @Option(name: .long, help: "Log level for stderr logs: trace, debug, info, notice, warning, error.")
    var logLevel: LogLevel = .warning

    func run() async throws {
        LogSetup.bootstrap(level: logLevel.level, format: .logfmt)
        let code = await ReconcileCommand.execute(
            workspace: workspace.workspace(), dryRun: true, prune: prune ? true : nil, only: only, parallelism: nil,
            wait: false, output: output)
        if code != .success { throw code }
    }
}

/// `--log-level`.
enum LogLevel: String, ExpressibleByArgument, CaseIterable, Sendable {
    case trace, debug, info, notice, warning, error, critical

    var level: Logger.Level { Logger.Level(rawValue: rawValue) ?? .info }
}
