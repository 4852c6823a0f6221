import ArgumentParser
import Foundation

/// The `dfe` root command.
struct DFECommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dfe",
        abstract: "Declarative reconciler for DreamFactory instances.",
        discussion: """
            Keeps one YAML manifest per instance in manifests/, the hosts in config/, and the observed \
            state in var/state.sqlite. `dfe init` writes an example workspace; `dfe plan` shows what \
            `dfe reconcile` would do.
            """,
        version: "0.1.0",
        subcommands: [
            InitCommand.self, ValidateCommand.self, ReconcileCommand.self, PlanCommand.self, StatusCommand.self,
            HistoryCommand.self, ProvisionersCommand.self, UnlockCommand.self, ControllerCommand.self,
            SchemaCommand.self, StateCommand.self,
        ])
}

/// Entry point used by the `dfe` executable.
public enum DFE {
    /// Parses the command line, runs the command and exits with its code.
    public static func main(_ arguments: [String]? = nil) async -> Never {
        do {
            var command = try DFECommand.parseAsRoot(arguments)
            if var asyncCommand = command as? any AsyncParsableCommand {
                try await asyncCommand.run()
            } else {
                try command.run()
            }
            exit(0)
        } catch let failure as CommandFailure {
            Terminal.shared.err("dfe: \(failure.description)")
            exit(1)
        } catch let code as ExitCode {
            exit(code.rawValue)
        } catch {
            // --help and --version exit 0; every other usage error exits 1, as all errors do.
            if DFECommand.exitCode(for: error) == .success { DFECommand.exit(withError: error) }
            // Usage errors quote what was typed: escaped like every other output, line by line.
            for line in DFECommand.fullMessage(for: error).split(separator: "\n", omittingEmptySubsequences: false) {
                Terminal.shared.err("\(String(line))")
            }
            exit(1)
        }
    }
}
