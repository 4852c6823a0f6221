import DFECore
import DFEManifest
import DFETestSupport
import Foundation
import Testing

/// A temporary workspace with helpers to load its config and manifests as `dfe validate` does.
final class ManifestWorkspace {
    let workspace: TemporaryWorkspace

    init(provisioners: String? = nil, settings: String? = nil) throws {
        workspace = try TemporaryWorkspace(prefix: "dfe-manifest", provisioners: provisioners, settings: settings)
    }

    deinit { workspace.delete() }

    var root: URL { workspace.root }

    func write(_ path: String, _ text: String) throws { try workspace.write(path, text) }

    /// Loads the config; fails the test with the diagnostics when it is invalid.
    func config() throws -> WorkspaceConfig {
        do {
            return try ConfigLoader.load(configDirectory: root.appendingPathComponent("config"), root: root)
        } catch {
            Issue.record("config is invalid:\n\(error)")
            throw error
        }
    }

    /// The config's diagnostics, or nil when it loads.
    func configFailure() -> ValidationFailure? {
        do {
            _ = try ConfigLoader.load(configDirectory: root.appendingPathComponent("config"), root: root)
            return nil
        } catch {
            return error
        }
    }

    /// Loads every manifest against the (valid) config.
    func load() throws -> Result<[InstanceSpec], ValidationFailure> {
        let config = try config()
        do {
            return .success(
                try ManifestLoader.load(
                    manifestsDirectory: root.appendingPathComponent("manifests"), root: root, config: config))
        } catch {
            return .failure(error)
        }
    }

    /// The specs; records an issue with every diagnostic when loading fails.
    func specs() throws -> [InstanceSpec] {
        switch try load() {
        case .success(let specs): return specs
        case .failure(let failure):
            Issue.record("manifests are invalid:\n\(failure)")
            throw failure
        }
    }

    /// The diagnostics; records an issue when loading unexpectedly succeeds.
    func diagnostics() throws -> [Diagnostic] {
        switch try load() {
        case .success(let specs):
            Issue.record("expected diagnostics, but loaded \(specs.map(\.name))")
            return []
        case .failure(let failure):
            return failure.diagnostics
        }
    }
}

/// A manifest made of the given lines (joined with newlines).
func lines(_ lines: String...) -> String { lines.joined(separator: "\n") + "\n" }

/// A minimal valid manifest; its `name:` value sits at line 4, column 9 and `spec:` ends at line 6.
func manifest(_ name: String, owner: String = "ops@example.com", spec extra: [String] = []) -> String {
    ([
        "apiVersion: dfe/v1", "kind: Instance", "metadata:", "  name: \(name)", "spec:", "  owner: \(owner)",
    ] + extra).joined(separator: "\n") + "\n"
}
