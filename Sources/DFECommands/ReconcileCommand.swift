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

    @OptionGroup var gitops: GitOpsOptions

    @Option(
        name: .long,
        help: ArgumentHelp(
            "Apply this saved plan (from `dfe plan --out FILE`): each instance only if re-planning it gives exactly the saved changes.",
            valueName: "FILE"))
    var plan: String?

    @Option(name: .long, help: "Instances reconciled at once (default: config's parallelism, 4).")
    var parallelism: Int?

    @Flag(name: .long, help: "Wait for the state lease instead of failing when another run holds it.")
    var wait = false

    @Flag(name: .long, help: "Apply even when this user does not own the state.")
    var allowOtherUser = false

    @Option(name: .long, help: "Output format: text, json or markdown (for a pull-request comment).")
    var output: PlanFormat = .text

    @Option(
        name: .long,
        help:
            "Log level for stderr logs: trace, debug, info, notice, warning, error, critical (default: critical; the output already reports every step and failure)."
    )
    var logLevel: LogLevel = .critical

    func validate() throws {
        if let parallelism, !(1...256).contains(parallelism) {
            throw ValidationError("--parallelism must be between 1 and 256")
        }
        if plan != nil, dryRun { throw ValidationError("--plan applies a saved plan; it cannot be a --dry-run") }
        if plan != nil, !only.isEmpty || !gitops.selector.isEmpty || prune || gitops.pruneAll {
            throw ValidationError(
                "--plan applies exactly the saved plan's instances with its prune settings; drop --only, --selector, --prune and --prune-all"
            )
        }
        if gitops.out != nil, !dryRun {
            throw ValidationError("--out saves a plan: use it with `dfe plan` or --dry-run")
        }
    }

    func run() async throws {
        LogSetup.bootstrap(level: logLevel.level, format: .logfmt)
        var request = RunRequest(workspace: workspace.workspace(), dryRun: dryRun, output: output)
        request.prune = prune ? true : nil
        request.only = only
        request.parallelism = parallelism
        request.wait = wait
        request.gitops = gitops
        request.planFile = plan
        request.allowOtherUser = allowOtherUser
        let code = await Self.execute(request)
        if code != .success { throw code }
    }

    /// What one `dfe reconcile` or `dfe plan` asks for.
    struct RunRequest {
        var workspace: Workspace
        var dryRun: Bool
        var output: PlanFormat
        var prune: Bool?
        var only: [String] = []
        var parallelism: Int?
        var wait = false
        var gitops = GitOpsOptions()
        /// `reconcile --plan FILE`.
        var planFile: String?
        /// `--allow-other-user`.
        var allowOtherUser = false

        init(workspace: Workspace, dryRun: Bool, output: PlanFormat) {
            self.workspace = workspace
            self.dryRun = dryRun
            self.output = output
        }
    }

    /// Prints a run-level failure in the requested format and returns exit 1 (JSON: the usual keys, empty).
    static func fail(_ message: String, request: RunRequest) -> ExitCode {
        let terminal = Terminal.shared
        switch request.output {
        case .json:
            return DFECommands.fail(
                message, format: .json,
                empty: PlanOutput.emptyJSON(
                    dryRun: request.dryRun, revision: GitRevision.of(request.workspace.manifests)))
        case .markdown:
            terminal.err("dfe: \(message)")
            terminal.outDocument(MarkdownOutput.failure(message, dryRun: request.dryRun))
        case .text:
            terminal.err("dfe: \(message)")
        }
        return .failure
    }

    /// Runs a reconcile and prints it; returns the exit code.
    static func execute(_ request: RunRequest) async -> ExitCode {
        let workspace = request.workspace
        let dryRun = request.dryRun
        let output = request.output
        let terminal = Terminal.shared
        let renderer = PlanOutput(terminal: terminal)
        let revision = GitRevision.of(workspace.manifests)
        if let message = FirstRun.problem(workspace) { return fail(message, request: request) }
        let reconciler = Reconciler(workspace: workspace, registry: AllDrivers.registry(), logger: Logger(label: "dfe"))
        var options = ReconcileOptions(
            dryRun: dryRun, prune: request.prune, only: request.only.isEmpty ? nil : Set(request.only),
            parallelism: request.parallelism, wait: request.wait)
        options.revision = revision
        options.allowOtherUser = request.allowOtherUser
        options.noRefresh = request.gitops.noRefresh
        options.pruneAll = request.gitops.pruneAll
        do {
            options.selector = try LabelSelector.parse(request.gitops.selector)
        } catch {
            return fail(error.description, request: request)
        }
        if let path = request.planFile {
            let saved: SavedPlan
            do {
                saved = try SavedPlan.read(from: URL(fileURLWithPath: path))
            } catch {
                return fail(error.description, request: request)
            }
            let digest = InputDigest.of(workspace)
            guard digest == saved.inputs else {
                return fail(
                    "refusing to apply \(path): the manifests or config changed since it was made (inputs \(digest.prefix(19)), plan \(saved.inputs.prefix(19))); nothing was done. Make a new plan with `dfe plan --out FILE` and review it",
                    request: request)
            }
            options.binding = saved.bindings
            options.prune = saved.prune
            options.pruneAll = saved.pruneAll
        }
        // Progress: a live counter on an interactive stderr (every format); otherwise one line per step on
        // stdout for text (a CI log), nothing for JSON or markdown.
        let progress = ApplyProgress(
            terminal: terminal, live: terminal.interactiveStderr, stepLines: output == .text)
        let observer: ReconcileObserver? = { event in progress.handle(event) }
        let report: ReconcileReport
        do {
            report = try await reconciler.run(options, observer: observer)
        } catch {
            progress.clearLine()
            switch error {
            case .invalid(let failure):
                if output == .markdown {
                    terminal.outDocument(MarkdownOutput.failure(failure.description, dryRun: dryRun))
                }
                return reportInvalid(
                    failure, format: output == .json ? .json : .text,
                    empty: PlanOutput.emptyJSON(dryRun: dryRun, revision: revision))
            case .state(let cause):
                return fail("\(cause)", request: request)
            case .selection, .pruneRefused, .planRefused:
                return fail(error.description, request: request)
            }
        }
        progress.clearLine()
        if let out = request.gitops.out {
            let saved = SavedPlan(
                createdAt: Date(), revision: report.revision, inputs: InputDigest.of(workspace),
                refresh: !request.gitops.noRefresh,
                prune: options.prune ?? false, pruneAll: options.pruneAll, report: report)
            do {
                try saved.write(to: URL(fileURLWithPath: out))
            } catch {
                return fail(error.description, request: request)
            }
        }
        switch output {
        case .json:
            terminal.write(jsonData(PlanOutput.json(report)))
        case .markdown:
            terminal.outDocument(MarkdownOutput.render(report))
        case .text:
            if dryRun {
                for warning in report.warnings { terminal.out(terminal.paint("warning: ", .yellow) + "\(warning)") }
                let lines = renderer.render(report)
                if !lines.isEmpty {
                    terminal.out("dfe will perform the following actions:\n")
                    for line in lines { terminal.out(line) }
                }
            } else {
                for instance in report.plan.instances {
                    switch instance.disposition {
                    case .orphaned:
                        terminal.out("  # \(instance.name) orphaned: its manifest is gone; --prune deletes it")
                    case .suspended where instance.held > 0:
                        terminal.out(
                            "  = \(instance.name) held (suspended): \(instance.held) change\(instance.held == 1 ? "" : "s")"
                        )
                    default:
                        break
                    }
                }
                for line in renderer.driftLines(report) { terminal.out(line) }
            }
            for stale in report.stale { terminal.out("stale: \(stale.name) (\(stale.reason))") }
            // A failure already printed while it happened is not printed again.
            for error in report.errors where !dryRun && !progress.reported(error) {
                terminal.err(
                    "error: \(error.instance)\(error.resource.map { "/\($0.rawValue)" } ?? ""): \(error.message)")
            }
            terminal.out(renderer.summaryLine(report))
        }
        if !report.errors.isEmpty || !report.stale.isEmpty { return .failure }
        if dryRun && report.summary.hasPendingChanges { return ExitCode(2) }
        return .success
    }
}

/// `--output` of plan and reconcile: text, json, or markdown for a pull-request comment.
enum PlanFormat: String, ExpressibleByArgument, CaseIterable, Sendable {
    case text, json, markdown
}

/// The GitOps options of plan and reconcile: selectors, the prune guard's override, saving a plan.
struct GitOpsOptions: ParsableArguments {
    @Option(
        name: [.customShort("l"), .long],
        help: ArgumentHelp(
            "Only instances with this label (repeatable; all must match).", valueName: "KEY=VALUE"))
    var selector: [String] = []

    @Flag(
        name: .long,
        help: "Allow a prune that deletes every recorded instance (no manifest left) or more than config's maxPrune.")
    var pruneAll = false

    @Flag(
        name: .long,
        help: "Plan from the recorded state alone, without observing resources (drift goes undetected); for CI.")
    var noRefresh = false

    @Option(
        name: .long,
        help: ArgumentHelp(
            "Also save the plan to FILE (JSON, mode 0600) for `dfe reconcile --plan FILE`.", valueName: "FILE"))
    var out: String?
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

    @OptionGroup var gitops: GitOpsOptions

    @Option(name: .long, help: "Output format: text, json or markdown (for a pull-request comment).")
    var output: PlanFormat = .text

    @Option(
        name: .long,
        help:
            "Log level for stderr logs: trace, debug, info, notice, warning, error, critical (default: critical; the output already reports every step and failure)."
    )
    var logLevel: LogLevel = .critical

    func run() async throws {
        LogSetup.bootstrap(level: logLevel.level, format: .logfmt)
        var request = ReconcileCommand.RunRequest(workspace: workspace.workspace(), dryRun: true, output: output)
        request.prune = prune ? true : nil
        request.only = only
        request.gitops = gitops
        let code = await ReconcileCommand.execute(request)
        if code != .success { throw code }
    }
}

/// `--log-level`.
enum LogLevel: String, ExpressibleByArgument, CaseIterable, Sendable {
    case trace, debug, info, notice, warning, error, critical

    var level: Logger.Level { Logger.Level(rawValue: rawValue) ?? .info }
}
