import ArgumentParser
import DFECore
import DFEDrivers
import DFEPostgres
public import DFEProvision
import DFEReconciler
import Foundation
import Synchronization

/// `--output text|json`.
enum OutputFormat: String, ExpressibleByArgument, CaseIterable, Sendable {
    case text, json
}

/// Where the workspace is: `--root`, `--manifests`, `--config`, `--state` (and `DFE_*` env).
struct WorkspaceOptions: ParsableArguments {
    @Option(name: .long, help: "Workspace root (env DFE_ROOT; default: the current directory).")
    var root: String?

    @Option(name: .long, help: "Manifests directory (env DFE_MANIFESTS; default: ROOT/manifests).")
    var manifests: String?

    @Option(name: .long, help: "Config directory (env DFE_CONFIG; default: ROOT/config).")
    var config: String?

    @Option(name: .long, help: "State database file (env DFE_STATE; default: ROOT/var/state.sqlite).")
    var state: String?

    /// The workspace these options and the environment name.
    func workspace(environment: [String: String] = ProcessInfo.processInfo.environment) -> Workspace {
        let cwd = URL(fileURLWithPath: FileManager.default.currentDirectoryPath)
        func resolve(_ path: String?, against base: URL) -> URL? {
            guard let path, !path.isEmpty else { return nil }
            return path.hasPrefix("/") ? URL(fileURLWithPath: path) : base.appendingPathComponent(path)
        }
        let root = resolve(root ?? environment["DFE_ROOT"], against: cwd) ?? cwd
        return Workspace(
            root: root,
            manifests: resolve(manifests ?? environment["DFE_MANIFESTS"], against: cwd),
            config: resolve(config ?? environment["DFE_CONFIG"], against: cwd),
            state: resolve(state ?? environment["DFE_STATE"], against: cwd))
    }
}

/// Every driver this build knows: the built-in ones and `database/postgres`.
public enum AllDrivers {
    /// The registry used by the `dfe` commands.
    public static func registry() -> DriverRegistry {
        var registry = BuiltinDrivers.registry()
        PostgresDriver.register(into: &registry)
        return registry
    }
}

/// Writing to the terminal: colour only on a TTY without `NO_COLOR`, lines written whole.
final class Terminal: Sendable {
    static let shared = Terminal()
    let colour: Bool
    private let lock = Mutex(())

    init() {
        let environment = ProcessInfo.processInfo.environment
        colour = isatty(STDOUT_FILENO) == 1 && environment["NO_COLOR"] == nil && environment["TERM"] != "dumb"
    }

    enum Style: String {
        case green = "32"
        case yellow = "33"
        case red = "31"
        case magenta = "35"
        case bold = "1"
        case dim = "2"
        case cyan = "36"
    }

    func paint(_ text: String, _ style: Style) -> String {
        colour ? "\u{1B}[\(style.rawValue)m\(text)\u{1B}[0m" : text
    }

    func out(_ line: String) {
        lock.withLock { _ in FileHandle.standardOutput.write(Data((line + "\n").utf8)) }
    }

    func err(_ line: String) {
        lock.withLock { _ in FileHandle.standardError.write(Data((line + "\n").utf8)) }
    }

    func write(_ data: Data) {
        lock.withLock { _ in FileHandle.standardOutput.write(data) }
    }
}

/// Prints validation diagnostics the compiler way and fails with exit 1.
func reportInvalid(_ failure: ValidationFailure, format: OutputFormat, dryRun: Bool? = nil) -> ExitCode {
    if format == .json {
        var object: [String: Any] = [
            "errors": failure.diagnostics.map {
                [
                    "path": $0.location.path, "line": $0.location.line, "column": $0.location.column,
                    "message": $0.message,
                ] as [String: Any]
            },
            "valid": false,
        ]
        if let dryRun {
            object["dryRun"] = dryRun
            object["summary"] = summaryObject(PlanSummary())
            object["changes"] = [Any]()
            object.removeValue(forKey: "valid")
        }
        Terminal.shared.write(jsonData(object))
    } else {
        for diagnostic in failure.diagnostics { Terminal.shared.err(diagnostic.description) }
        let count = failure.diagnostics.count
        Terminal.shared.err("dfe: \(count) error\(count == 1 ? "" : "s"); nothing was changed")
    }
    return ExitCode.failure
}

func summaryObject(_ summary: PlanSummary) -> [String: Int] {
    [
        "create": summary.create, "update": summary.update, "delete": summary.delete, "retain": summary.retain,
        "unchanged": summary.unchanged, "orphaned": summary.orphaned, "failed": summary.failed,
        "drifted": summary.drifted,
    ]
}

/// Pretty, key-sorted JSON with a trailing newline.
func jsonData(_ object: Any) -> Data {
    let data =
        (try? JSONSerialization.data(
            withJSONObject: object, options: [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]))
        ?? Data("{}".utf8)
    return data + Data("\n".utf8)
}

/// Fails the command with a message on stderr and exit 1.
struct CommandFailure: Error, CustomStringConvertible {
    var description: String
    init(_ message: String) { description = message }
}
