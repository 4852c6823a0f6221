import ArgumentParser
import DFECore
import DFEDrivers
import DFEMySQL
import DFEPostgres
public import DFEProvision
import DFEReconciler
import DFEStatePostgres
import Foundation
import Synchronization

/// `--output text|json`.
enum OutputFormat: String, ExpressibleByArgument, CaseIterable, Sendable {
    case text, json
}

/// Where the workspace is: `--root`, `--manifests`, `--config`, `--state` (and `DFE_*` env).
struct WorkspaceOptions: ParsableArguments {
    @Option(name: .long, help: "Workspace root (env DFE_ROOT; default: the current directory).", completion: .directory)
    var root: String?

    @Option(
        name: .long, help: "Manifests directory (env DFE_MANIFESTS; default: ROOT/manifests).", completion: .directory)
    var manifests: String?

    @Option(name: .long, help: "Config directory (env DFE_CONFIG; default: ROOT/config).", completion: .directory)
    var config: String?

    @Option(
        name: .long,
        help: "State: a SQLite file or postgres://USER@HOST:PORT/DB (env DFE_STATE; default: ROOT/var/state.sqlite).")
    var state: String?

    @Option(name: .long, help: "Schema of a PostgreSQL state's tables (env DFE_STATE_SCHEMA; default: dfe).")
    var stateSchema: String?

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
            state: Self.stateLocation(state ?? environment["DFE_STATE"], against: cwd),
            stateSchema: stateSchema ?? environment["DFE_STATE_SCHEMA"])
    }

    /// A `postgres://` (or `postgresql://`) URL as given, else a file path resolved against `base`.
    static func stateLocation(_ text: String?, against base: URL) -> URL? {
        PostgresStateBackend.register()
        guard let text, !text.isEmpty else { return nil }
        let lowered = text.lowercased()
        if lowered.hasPrefix("postgres://") || lowered.hasPrefix("postgresql://") {
            // Not a valid URL at all: keep it as a URL the backend refuses with its message.
            return URL(string: text) ?? URL(string: "postgres://")
        }
        return text.hasPrefix("/") ? URL(fileURLWithPath: text) : base.appendingPathComponent(text)
    }
}

/// Every driver this build knows: the built-in ones, `database/postgres` and `database/mysql`.
public enum AllDrivers {
    /// The registry used by the `dfe` commands.
    public static func registry() -> DriverRegistry {
        var registry = BuiltinDrivers.registry()
        PostgresDriver.register(into: &registry)
        MySQLDriver.register(into: &registry)
        return registry
    }
}

/// A line of text output: its literal parts are ours, every interpolated value is escaped.
///
/// `terminal.out("  # \(instance.name)")` prints a hostile name as `\u001b[31m...` or `a\nb`, never raw: the
/// interpolation runs every value through ``TextEscape/escape(_:)``, the one escaping function of every text
/// output. Only other `TextLine`s (painted text, padded columns) are interpolated as they are.
struct TextLine: ExpressibleByStringInterpolation, Sendable, Hashable, CustomStringConvertible {
    private(set) var text: String

    init(stringLiteral value: String) { text = value }
    init(stringInterpolation: StringInterpolation) { text = stringInterpolation.text }
    /// A value from an input, escaped.
    init(escaping value: String) { text = TextEscape.escape(value) }
    private init(trusted: String) { text = trusted }

    var description: String { text }
    var isEmpty: Bool { text.isEmpty }

    static func + (lhs: TextLine, rhs: TextLine) -> TextLine { TextLine(trusted: lhs.text + rhs.text) }
    static func += (lhs: inout TextLine, rhs: TextLine) { lhs.text += rhs.text }

    /// An escaped value padded with spaces to `width` characters (a table column).
    static func column(_ value: String, _ width: Int) -> TextLine {
        let escaped = TextEscape.escape(value)
        return TextLine(trusted: escaped + String(repeating: " ", count: max(0, width - escaped.count)))
    }

    /// Wraps already-styled text (only ``Terminal/paint(_:_:)`` uses it).
    static func styled(_ prefix: String, _ line: TextLine, _ suffix: String) -> TextLine {
        TextLine(trusted: prefix + line.text + suffix)
    }

    /// Several lines joined by `separator` (a literal of ours).
    static func joined(_ lines: [TextLine], separator: String) -> TextLine {
        TextLine(trusted: lines.map(\.text).joined(separator: separator))
    }

    struct StringInterpolation: StringInterpolationProtocol {
        var text = ""
        init(literalCapacity: Int, interpolationCount: Int) { text.reserveCapacity(literalCapacity * 2) }
        mutating func appendLiteral(_ literal: String) { text += literal }
        mutating func appendInterpolation(_ line: TextLine) { text += line.text }
        mutating func appendInterpolation<T>(_ value: T) { text += TextEscape.escape("\(value)") }
    }
}

/// Writing to the terminal: colour only on a TTY without a non-empty `NO_COLOR`, lines written whole.
final class Terminal: Sendable {
    static let shared = Terminal()
    let colour: Bool
    /// Whether stderr is an interactive terminal (live progress goes there).
    let interactiveStderr: Bool
    private let lock = Mutex(())

    init(environment: [String: String] = ProcessInfo.processInfo.environment) {
        colour = isatty(STDOUT_FILENO) == 1 && Self.colourAllowed(environment)
        interactiveStderr = isatty(STDERR_FILENO) == 1 && environment["TERM"] != "dumb"
    }

    /// no-color.org: only a `NO_COLOR` with a non-empty value disables colour; `TERM=dumb` too.
    static func colourAllowed(_ environment: [String: String]) -> Bool {
        (environment["NO_COLOR"] ?? "").isEmpty && environment["TERM"] != "dumb"
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

    func paint(_ text: TextLine, _ style: Style) -> TextLine {
        colour ? TextLine.styled("\u{1B}[\(style.rawValue)m", text, "\u{1B}[0m") : text
    }

    func out(_ line: TextLine) {
        lock.withLock { _ in FileHandle.standardOutput.write(Data((line.text + "\n").utf8)) }
    }

    func err(_ line: TextLine) {
        lock.withLock { _ in FileHandle.standardError.write(Data((line.text + "\n").utf8)) }
    }

    /// Raw bytes to stderr (the live progress line with its carriage return).
    func errRaw(_ text: String) {
        lock.withLock { _ in FileHandle.standardError.write(Data(text.utf8)) }
    }

    /// A multi-line document (markdown) on stdout: its line breaks are kept, every other control character is
    /// escaped line by line.
    func outDocument(_ text: String) {
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false).map { TextEscape.escape(String($0)) }
        lock.withLock { _ in FileHandle.standardOutput.write(Data((lines.joined(separator: "\n") + "\n").utf8)) }
    }

    func write(_ data: Data) {
        lock.withLock { _ in FileHandle.standardOutput.write(data) }
    }
}

/// The one shape of every error in every JSON output: `{"message", "path"?, "line"?, "column"?, "instance"?,
/// "resource"?}`; keys that do not apply are left out.
enum JSONError {
    static func object(
        message: String, path: String? = nil, line: Int? = nil, column: Int? = nil, instance: String? = nil,
        resource: String? = nil
    ) -> [String: Any] {
        var object: [String: Any] = ["message": message]
        if let path { object["path"] = path }
        if let line { object["line"] = line }
        if let column { object["column"] = column }
        if let instance { object["instance"] = instance }
        if let resource { object["resource"] = resource }
        return object
    }

    /// A located diagnostic (a whole-file one has no line or column).
    static func object(_ diagnostic: Diagnostic) -> [String: Any] {
        let location = diagnostic.location
        return object(
            message: diagnostic.message, path: location.path, line: location.isWholeFile ? nil : location.line,
            column: location.isWholeFile ? nil : location.column)
    }

    /// A problem with one instance or resource.
    static func object(_ error: InstanceError) -> [String: Any] {
        object(message: error.message, instance: error.instance, resource: error.resource?.rawValue)
    }
}

/// Prints validation diagnostics the compiler way (or as the JSON of `format`) and fails with exit 1.
///
/// `empty` is the JSON object of the command with no results (its other keys); `errors` is added to it.
func reportInvalid(_ failure: ValidationFailure, format: OutputFormat, empty: [String: Any]) -> ExitCode {
    if format == .json {
        var object = empty
        object["errors"] = failure.diagnostics.map(JSONError.object)
        Terminal.shared.write(jsonData(object))
    } else {
        for diagnostic in failure.diagnostics { Terminal.shared.err("\(diagnostic.description)") }
        let count = failure.diagnostics.count
        Terminal.shared.err("dfe: \(count) error\(count == 1 ? "" : "s"); nothing was changed")
    }
    return ExitCode.failure
}

/// Fails a command: the JSON of `format` (`empty` plus `errors`) on stdout, or `dfe: MESSAGE` on stderr; exit 1.
func fail(_ message: String, format: OutputFormat, empty: [String: Any]) -> ExitCode {
    if format == .json {
        var object = empty
        object["errors"] = [JSONError.object(message: message)]
        Terminal.shared.write(jsonData(object))
    } else {
        Terminal.shared.err("dfe: \(message)")
    }
    return ExitCode.failure
}

/// The `summary` object of plan and reconcile JSON.
func summaryObject(_ summary: PlanSummary) -> [String: Int] {
    [
        "create": summary.create, "update": summary.update, "delete": summary.delete, "retain": summary.retain,
        "unchanged": summary.unchanged, "orphaned": summary.orphaned, "failed": summary.failed,
        "held": summary.held,
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
