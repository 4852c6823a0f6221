import ArgumentParser
import DFECore
import DFEProvision
import DFEReconciler
import DFEState
import Foundation

/// `dfe validate`: check manifests and config.
struct ValidateCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "validate", abstract: "Check manifests and config.", discussion: "Exit codes: 0 valid, 1 errors.")

    @OptionGroup var workspace: WorkspaceOptions

    @Option(name: .long, help: "Output format: text or json.")
    var output: OutputFormat = .text

    func run() async throws {
        let workspace = workspace.workspace()
        let empty: [String: Any] = ["valid": false, "instances": 0]
        if let message = FirstRun.problem(workspace) { throw fail(message, format: output, empty: empty) }
        let reconciler = Reconciler(workspace: workspace, registry: AllDrivers.registry())
        do {
            let inputs = try reconciler.loadInputs()
            if output == .json {
                Terminal.shared.write(jsonData(["valid": true, "errors": [Any](), "instances": inputs.specs.count]))
            } else {
                let hosts = inputs.manager.hosts.count
                Terminal.shared.out(
                    "\(inputs.specs.count) instance manifest\(inputs.specs.count == 1 ? "" : "s") and \(hosts) host\(hosts == 1 ? "" : "s") are valid."
                )
            }
        } catch {
            guard case .invalid(let failure) = error else { throw fail("\(error)", format: output, empty: empty) }
            throw reportInvalid(failure, format: output, empty: empty)
        }
    }
}

/// Instance names known to the workspace (manifests and state), for shell completion; never fails.
enum KnownInstances {
    static func names(_ arguments: [String]) -> [String] {
        // The workspace options typed so far on the command line.
        var options = WorkspaceOptions()
        var index = 0
        while index < arguments.count - 1 {
            switch arguments[index] {
            case "--root": options.root = arguments[index + 1]
            case "--manifests": options.manifests = arguments[index + 1]
            case "--config": options.config = arguments[index + 1]
            case "--state": options.state = arguments[index + 1]
            default: break
            }
            index += 1
        }
        let workspace = options.workspace()
        var names = Set<String>()
        if let recorded = try? workspace.stateBackend().snapshot(withFields: false) {
            names.formUnion(recorded.keys)
        }
        if let inputs = try? Reconciler(workspace: workspace, registry: AllDrivers.registry()).loadInputs() {
            names.formUnion(inputs.specs.map(\.name))
        }
        return names.sorted()
    }
}

/// `dfe status [NAME]`: observed state per instance.
struct StatusCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status", abstract: "Show the observed state of every instance (or one).",
        discussion: "Exit codes: 0, or 1 for an unknown NAME.")

    @OptionGroup var workspace: WorkspaceOptions

    @Argument(
        help: "Show only this instance.", completion: .custom { arguments, _, _ in KnownInstances.names(arguments) })
    var name: String?

    @Option(
        name: [.customShort("l"), .long],
        help: ArgumentHelp("Only instances with this label (repeatable; all must match).", valueName: "KEY=VALUE"))
    var selector: [String] = []

    @Option(name: .long, help: "Output format: text or json.")
    var output: OutputFormat = .text

    func run() async throws {
        let workspace = workspace.workspace()
        let empty: [String: Any] = ["instances": [Any]()]
        if let message = FirstRun.problem(workspace) { throw fail(message, format: output, empty: empty) }
        let labelSelector: LabelSelector
        do {
            labelSelector = try LabelSelector.parse(selector)
        } catch {
            throw fail(error.description, format: output, empty: empty)
        }
        let recorded: [String: RecordedInstance]
        do {
            recorded = try workspace.stateBackend().snapshot(withFields: false)
        } catch {
            throw fail("\(error)", format: output, empty: empty)
        }
        let reconciler = Reconciler(workspace: workspace, registry: AllDrivers.registry())
        let loaded = Result { () throws(ReconcileError) in try reconciler.loadInputs() }
        let desired = try? loaded.get().desired
        if desired == nil, output == .text {
            let missingManifests = !FileManager.default.fileExists(atPath: workspace.manifests.path)
            if missingManifests {
                Terminal.shared.err(
                    "note: \(workspace.display(workspace.manifests))/ does not exist (a `dfe controller --git` takes manifests from its repository; pass --manifests to a checkout to compare); phases are shown as last recorded"
                )
            } else {
                Terminal.shared.err(
                    "warning: the manifests or config are invalid (see `dfe validate`); phases are shown as last recorded"
                )
            }
        }
        var instances = StatusView.instances(recorded: recorded, desired: desired)
        if !labelSelector.isEmpty {
            instances = instances.filter { labelSelector.matches($0.labels) }
            if instances.isEmpty {
                throw fail(
                    SelectionError.selectorMatchesNothing(labelSelector).description, format: output, empty: empty)
            }
        }
        if let name {
            instances = instances.filter { $0.name == name }
            if instances.isEmpty {
                throw fail(
                    "unknown instance '\(name)': not in the state or the manifests; `dfe status` lists them",
                    format: output, empty: empty)
            }
        }
        if output == .json {
            // One instance or all: always {"instances": [...]}.
            Terminal.shared.write(StatusView.json(instances))
            return
        }
        let terminal = Terminal.shared
        if instances.isEmpty {
            terminal.out("No instances yet. Add manifests and run `dfe reconcile`.")
            return
        }
        let nameWidth = max(4, instances.map { TextEscape.escape($0.name).count }.max() ?? 4)
        let ownerWidth = max(5, instances.map { TextEscape.escape($0.owner).count }.max() ?? 5)
        terminal.out(
            terminal.paint(
                "\(TextLine.column("NAME", nameWidth))  \(TextLine.column("PHASE", 14))  \(TextLine.column("STATE", 11))  ATTEMPTS  \(TextLine.column("OWNER", ownerWidth))  OFFERINGS",
                .bold))
        for instance in instances {
            let phase = TextLine.column(instance.phase, 14)
            let painted: TextLine
            switch instance.phase {
            case "ready": painted = terminal.paint(phase, .green)
            case "failed": painted = terminal.paint(phase, .red)
            case "orphaned", "suspended", "drifted": painted = terminal.paint(phase, .yellow)
            default: painted = phase
            }
            let offerings = instance.offerings.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }
                .joined(separator: ",")
            terminal.out(
                "\(TextLine.column(instance.name, nameWidth))  \(painted)  \(TextLine.column(instance.platformState ?? "-", 11))  \(TextLine.column(String(instance.attempts), 8))  \(TextLine.column(instance.owner, ownerWidth))  \(offerings.isEmpty ? "-" : offerings)"
            )
            if name != nil || instance.lastError != nil {
                if let error = instance.lastError { terminal.out("    last error: \(error)") }
                if let next = instance.nextAttemptAt { terminal.out("    next attempt: \(next)") }
            }
            if name != nil {
                if let revision = instance.revision { terminal.out("    revision: \(revision)") }
                if let storage = instance.resources.storage {
                    terminal.out("    storage:  \(storage.driver ?? "-")  \(storage.path ?? "-")")
                }
                if let database = instance.resources.database {
                    terminal.out("    database: \(database.driver ?? "-")  \(database.path ?? database.name ?? "-")")
                }
                if let meta = instance.resources.instance {
                    terminal.out(
                        "    instance: \(meta.driver ?? "-")  \(meta.endpoint ?? "-")  \(meta.metadataPath ?? "")")
                }
            }
        }
    }
}

/// `dfe history [NAME]`: the journal of applied steps.
struct HistoryCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "history", abstract: "Show the journal of applied steps.",
        discussion: "Exit codes: 0, or 1 for an unknown NAME.")

    @OptionGroup var workspace: WorkspaceOptions

    @Argument(
        help: "Show only this instance.", completion: .custom { arguments, _, _ in KnownInstances.names(arguments) })
    var name: String?

    @Option(name: .long, help: "Show at most this many entries (the newest).")
    var limit = 200

    @Option(name: .long, help: "Output format: text or json.")
    var output: OutputFormat = .text

    func validate() throws {
        if limit < 1 { throw ValidationError("--limit must be at least 1") }
    }

    func run() async throws {
        let workspace = workspace.workspace()
        let empty: [String: Any] = ["entries": [Any](), "total": 0]
        if let message = FirstRun.problem(workspace) { throw fail(message, format: output, empty: empty) }
        var entries: [JournalEntry] = []
        var total = 0
        do {
            let backend = try workspace.stateBackend()
            total = try backend.historyCount(instance: name)
            if let name, total == 0, try backend.snapshot(withFields: false)[name] == nil,
                !Self.inManifests(name, workspace)
            {
                throw fail(
                    "unknown instance '\(name)': not in the state, its journal or the manifests; `dfe status` lists them",
                    format: output, empty: empty)
            }
            entries = try backend.history(instance: name, limit: limit)
        } catch let code as ExitCode {
            throw code
        } catch {
            throw fail("\(error)", format: output, empty: empty)
        }
        let formatter = ISO8601DateFormatter()
        if output == .json {
            let objects: [[String: Any]] = entries.map {
                [
                    "id": $0.id, "run": $0.runID, "instance": $0.instance, "resource": $0.resource.rawValue,
                    "action": $0.action.rawValue, "reason": $0.reason, "status": $0.status.rawValue,
                    "error": $0.error ?? NSNull(), "startedAt": formatter.string(from: $0.startedAt),
                    "finishedAt": $0.finishedAt.map { formatter.string(from: $0) } ?? NSNull(),
                ]
            }
            Terminal.shared.write(jsonData(["entries": objects, "total": total, "errors": [Any]()]))
            return
        }
        let terminal = Terminal.shared
        if entries.isEmpty {
            terminal.out(name == nil ? "No steps recorded yet." : "No steps recorded yet for \(name ?? "").")
            return
        }
        let runWidth = entries.map { String($0.runID).count }.max() ?? 1
        let instanceWidth = max(8, entries.map { TextEscape.escape($0.instance).count }.max() ?? 8)
        let stepWidth = max(
            4, entries.map { "\($0.resource.rawValue) \($0.action.rawValue) (\($0.reason))".count }.max() ?? 4)
        terminal.out(
            terminal.paint(
                "\(TextLine.column("STARTED", 20))  \(TextLine.column("RUN", runWidth + 4))  \(TextLine.column("INSTANCE", instanceWidth))  \(TextLine.column("STEP", stepWidth))  STATUS",
                .bold))
        for entry in entries {
            let step = "\(entry.resource.rawValue) \(entry.action.rawValue) (\(entry.reason))"
            var line: TextLine =
                "\(TextLine.column(formatter.string(from: entry.startedAt), 20))  \(TextLine.column("run \(entry.runID)", runWidth + 4))  \(TextLine.column(entry.instance, instanceWidth))  \(TextLine.column(step, stepWidth))  \(entry.status.rawValue)"
            if let error = entry.error { line += ": \(error)" }
            terminal.out(line)
        }
        if total > entries.count {
            terminal.err(
                "showing the newest \(entries.count) of \(total) entries; use --limit N to see more")
        }
    }

    static func inManifests(_ name: String, _ workspace: Workspace) -> Bool {
        let inputs = try? Reconciler(workspace: workspace, registry: AllDrivers.registry()).loadInputs()
        return inputs?.specs.contains { $0.name == name } ?? false
    }
}

/// `dfe provisioners`: hosts, drivers, offerings and resource-uri.
struct ProvisionersCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "provisioners", abstract: "List hosts with their drivers, offerings and resource-uri.")

    @OptionGroup var workspace: WorkspaceOptions

    @Option(name: .long, help: "Output format: text or json.")
    var output: OutputFormat = .text

    func run() async throws {
        let workspace = workspace.workspace()
        if let message = FirstRun.problem(workspace) { throw fail(message, format: output, empty: ["hosts": [Any]()]) }
        let config: WorkspaceConfig
        do {
            // Only the config matters here: a broken manifest must not hide the hosts.
            config = try InputLoader.loadConfig(workspace)
            _ = try ProvisionManager(
                config: config.provisioners, registry: AllDrivers.registry(),
                environment: DriverEnvironment(root: workspace.root))
        } catch {
            throw reportInvalid(error, format: output, empty: ["hosts": [Any]()])
        }
        let hosts = config.provisioners.hosts.values.sorted { $0.name < $1.name }
        if output == .json {
            let objects: [[String: Any]] = hosts.map { host in
                var provides: [String: Any] = [:]
                for (kind, reference) in host.provides {
                    var options: [String: Any] = [:]
                    for (key, value) in reference.options { options[key] = Sensitive.display(key, value.text) }
                    provides[kind.rawValue] = ["driver": reference.driver, "options": options]
                }
                var offerings: [String: Any] = [:]
                for (key, offering) in host.offerings {
                    offerings[key] = ["name": offering.name, "suggested": offering.suggested, "items": offering.items]
                }
                return [
                    "name": host.name, "default": host.name == config.provisioners.defaultHost, "provides": provides,
                    "offerings": offerings, "resourceUri": host.resourceURI,
                ]
            }
            Terminal.shared.write(jsonData(["default": config.provisioners.defaultHost, "hosts": objects]))
            return
        }
        let terminal = Terminal.shared
        for host in hosts {
            let marker = host.name == config.provisioners.defaultHost ? " (default)" : ""
            terminal.out(terminal.paint("\(host.name)", .bold) + "\(marker)")
            terminal.out("  resource-uri: \(host.resourceURI)")
            for kind in ResourceKind.allCases {
                guard let reference = host.provides[kind] else { continue }
                let options = reference.options.sorted { $0.key < $1.key }.map {
                    "\($0.key)=\(Sensitive.display($0.key, $0.value.text))"
                }
                terminal.out(
                    "  \(TextLine.column(kind.rawValue, 9)) \(reference.driver)  \(options.joined(separator: " "))")
            }
            for (key, offering) in host.offerings.sorted(by: { $0.key < $1.key }) {
                terminal.out("  offering \(key) (\(offering.name)): suggested \(offering.suggested)")
                for (value, description) in offering.items.sorted(by: { $0.key < $1.key }) {
                    terminal.out(description.isEmpty ? "    \(value)" : "    \(value)  \(description)")
                }
            }
        }
    }
}

/// `dfe unlock --force`: clear a stale state lease by hand.
struct UnlockCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "unlock", abstract: "Clear a stale state lease by hand (needs --force).")

    @OptionGroup var workspace: WorkspaceOptions

    @Flag(name: .long, help: "Really clear the lease (refused while it was renewed in the last 15 s).")
    var force = false

    @Flag(name: .long, help: "Run even when this user does not own the state.")
    var allowOtherUser = false

    func run() async throws {
        let workspace = workspace.workspace()
        do {
            if !allowOtherUser { try StateOwnership.check(workspace.state, root: workspace.root) }
            let backend = try workspace.stateBackend()
            guard try backend.exists() else {
                Terminal.shared.out("No state at \(backend.displayName); nothing to unlock.")
                return
            }
            let store = try backend.open()
            defer { store.close() }
            guard force else {
                let holder = try await store.leaseHolder()
                throw CommandFailure(
                    "refusing to unlock without --force"
                        + (holder.map { "; the lease is held by \($0)" } ?? "; no lease is held"))
            }
            if let holder = try await store.forceUnlock(LeaseIdentity.current(), at: Date()) {
                Terminal.shared.out("Cleared the lease held by \(holder).")
            } else {
                Terminal.shared.out("No lease was held.")
            }
        } catch let failure as CommandFailure {
            throw failure
        } catch {
            throw CommandFailure("\(error)")
        }
    }
}
