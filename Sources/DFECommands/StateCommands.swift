import ArgumentParser
import DFEReconciler
import DFEState
import DFEStatePostgres
import Foundation

/// `dfe state ...`: operations on a whole state.
struct StateCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "state", abstract: "Operate on a whole state (copy it between backends or files).",
        subcommands: [StateCopyCommand.self])
}

/// `dfe state copy FROM TO`.
struct StateCopyCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "copy", abstract: "Copy a whole state to a new SQLite file or PostgreSQL schema.",
        discussion: """
            FROM and TO are each a SQLite file path or postgres://USER@HOST:PORT/DB[?sslmode=...] (passwords
            through PGPASSWORD, PGPASSFILE or ~/.pgpass). The destination must not hold a state yet. Both
            leases are held while copying. Exit codes: 0 copied, 1 error (nothing copied).
            """)

    @Argument(help: "The state to copy.")
    var from: String

    @Argument(help: "Where to copy it (must not hold a state).")
    var to: String

    @Option(name: .long, help: "Schema of a PostgreSQL FROM (env DFE_STATE_SCHEMA; default: dfe).")
    var fromSchema: String?

    @Option(name: .long, help: "Schema of a PostgreSQL TO (env DFE_STATE_SCHEMA; default: dfe).")
    var toSchema: String?

    func run() async throws {
        let environment = ProcessInfo.processInfo.environment
        let cwd = URL(fileURLWithPath: FileManager.default.currentDirectoryPath)
        let defaultSchema = environment["DFE_STATE_SCHEMA"] ?? "dfe"
        do {
            guard let fromURL = WorkspaceOptions.stateLocation(from, against: cwd),
                let toURL = WorkspaceOptions.stateLocation(to, against: cwd)
            else { throw CommandFailure("FROM and TO must not be empty") }
            let source = try StateBackends.backend(for: fromURL, schema: fromSchema ?? defaultSchema)
            let destination = try StateBackends.backend(for: toURL, schema: toSchema ?? defaultSchema)
            let report = try await StateCopier.copy(from: source, to: destination)
            let count = { (table: String) in report.rows[table] ?? 0 }
            Terminal.shared.out(
                "Copied \(source.displayName) to \(destination.displayName): \(count("instances")) instances, "
                    + "\(count("resources")) resources, \(count("runs")) runs, \(count("journal")) journal entries.")
        } catch let failure as CommandFailure {
            throw failure
        } catch {
            throw CommandFailure("\(error)")
        }
    }
}
