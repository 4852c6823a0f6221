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
            guard case .invalid(let failure) = error else { throw CommandFailure("\(error)") }
            throw reportInvalid(failure, format: output)
        }
    }
}

/// `dfe status [NAME]`: observed state per instance.
struct StatusCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status", abstract: "Show the observed state of every instance (or one).",
        discussion: "Exit codes: 0, or 1 for an unknown NAME.")

    @OptionGroup var workspace: WorkspaceOptions

    @Argument(help: "Show only this instance.")
    var name: String?

    @Option(
        name: [.customShort("l"), .long],
        help: ArgumentHelp("Only instances with this label (repeatable; all must match).", valueName: "KEY=VALUE"))
    var selector: [String] = []

    @Option(name: .long, help: "Output format: text or json.")
    var output: OutputFormat = .text

    func run() async throws {
        let workspace = workspace.workspace()
        let labelSelector: LabelSelector
        do {
            labelSelector = try LabelSelector.parse(selector)
        } catch {
            throw CommandFailure(error.description)
        }
        let recorded: [String: RecordedInstance]
        do {
            recorded = try workspace.stateBackend().snapshot(withFields: false)
        } catch {
            throw CommandFailure("\(error)")
        }
        let reconciler = Reconciler(workspace: workspace, registry: AllDrivers.registry())
        let desired = try? reconciler.loadInputs().desired
        if desired == nil, output == .text {
            Terminal.shared.err(
                "warning: the manifests are invalid (see `dfe validate`); phases are shown as last recorded")
        }
        var instances = StatusView.instances(recorded: recorded, desired: desired)
        if !labelSelector.isEmpty {
            instances = instances.filter { labelSelector.matches($0.labels) }
            if instances.isEmpty {
                throw CommandFailure(SelectionError.selectorMatchesNothing(labelSelector).description)
            }
        }
        if let name {
            instances = instances.filter { $0.name == name }
            if instances.isEmpty {
                throw CommandFailure(
                    "unknown instance '\(name)': not in the state or the manifests; `dfe status` lists them")
            }
        }
        if output == .json {
            if name != nil, let one = instances.first {
                Terminal.shared.write(StatusView.encode(one))
            } else {
                Terminal.shared.write(StatusView.json(instances))
            }
            return
        }
        let terminal = Terminal.shared
        if instances.isEmpty {
            terminal.out("No instances yet. Add manifests and run `dfe reconcile`.")
            return
        }
        let nameWidth = max(4, instances.map(\.name.count).max() ?? 4)
        terminal.out(
            terminal.paint(
                "NAME".padding(toLength: nameWidth, withPad: " ", startingAt: 0) + "  PHASE           ATTEMPTS  OWNER",
                .bold))
        for instance in instances {
            let phase = instance.phase.padding(toLength: 14, withPad: " ", startingAt: 0)
            let painted: String
            switch instance.phase {
            case "ready": painted = terminal.paint(phase, .green)
            case "failed": painted = terminal.paint(phase, .red)
            case "orphaned", "suspended", "drifted": painted = terminal.paint(phase, .yellow)
            default: painted = phase
            }
            terminal.out(
                "\(instance.name.padding(toLength: nameWidth, withPad: " ", startingAt: 0))  \(painted)  \(String(instance.attempts).padding(toLength: 8, withPad: " ", startingAt: 0))  \(instance.owner)"
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
        commandName: "history", abstract: "Show the journal of applied steps.")

    @OptionGroup var workspace: WorkspaceOptions

    @Argument(help: "Show only this instance.")
    var name: String?

    @Option(name: .long, help: "Show at most this many entries (newest).")
    var limit = 200

    @Option(name: .long, help: "Output format: text or json.")
    var output: OutputFormat = .text

    func run() async throws {
        let workspace = workspace.workspace()
        var entries: [JournalEntry] = []
        do {
            entries = try workspace.stateBackend().history(instance: name, limit: limit)
        } catch {
            throw CommandFailure("\(error)")
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
            Terminal.shared.write(jsonData(["entries": objects]))
            return
        }
        if entries.isEmpty {
            Terminal.shared.out("No steps recorded yet.")
            return
        }
        for entry in entries {
            var line =
                "\(formatter.string(from: entry.startedAt))  run \(entry.runID)  \(entry.instance)  \(entry.resource.rawValue) \(entry.action.rawValue) (\(entry.reason))  \(entry.status.rawValue)"
            if let error = entry.error { line += ": \(error)" }
            Terminal.shared.out(line)
        }
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
        let config: WorkspaceConfig
        do {
            // Only the config matters here: a broken manifest must not hide the hosts.
            config = try InputLoader.loadConfig(workspace)
            _ = try ProvisionManager(
                config: config.provisioners, registry: AllDrivers.registry(),
                environment: DriverEnvironment(root: workspace.root))
        } catch {
            throw reportInvalid(error, format: output)
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
            terminal.out(terminal.paint(host.name, .bold) + marker)
            terminal.out("  resource-uri: \(host.resourceURI)")
            for kind in ResourceKind.allCases {
                guard let reference = host.provides[kind] else { continue }
                let options = reference.options.sorted { $0.key < $1.key }.map {
                    "\($0.key)=\(Sensitive.display($0.key, $0.value.text))"
                }
                terminal.out(
                    "  \(kind.rawValue.padding(toLength: 9, withPad: " ", startingAt: 0)) \(reference.driver)  \(options.joined(separator: " "))"
                )
            }
            for (key, offering) in host.offerings.sorted(by: { $0.key < $1.key }) {
                terminal.out("  offering \(key) (\(offering.name)): suggested \(offering.suggested)")
                for (value, description) in offering.items.sorted(by: { $0.key < $1.key }) {
                    terminal.out("    \(value)\(description.isEmpty ? "" : "  \(description)")")
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

    @Flag(name: .long, help: "Really clear the lease, even if its holder may still run.")
    var force = false

    func run() async throws {
        let workspace = workspace.workspace()
        do {
            let backend = try workspace.stateBackend()
            guard try backend.exists() else {
                Terminal.shared.out("No state at \(workspace.display(workspace.state)); nothing to unlock.")
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
            if let holder = try await store.forceUnlock() {
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
