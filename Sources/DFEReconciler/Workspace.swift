public import DFECore
import DFEManifest
public import DFEProvision
public import DFEState
public import Foundation
import Synchronization

/// Where a workspace keeps its manifests, config and state.
public struct Workspace: Sendable, Hashable {
    public var root: URL
    public var manifests: URL
    public var config: URL
    /// The state database file (`var/state.sqlite` by default), or a `postgres://` URL.
    public var state: URL
    /// The schema of a PostgreSQL state's tables (`--state-schema`, default `dfe`).
    public var stateSchema = "dfe"

    public init(
        root: URL, manifests: URL? = nil, config: URL? = nil, state: URL? = nil, stateSchema: String? = nil
    ) {
        let root = root.standardizedFileURL
        self.root = root
        self.manifests = (manifests ?? root.appendingPathComponent("manifests")).standardizedFileURL
        self.config = (config ?? root.appendingPathComponent("config")).standardizedFileURL
        self.state = (state ?? root.appendingPathComponent("var/state.sqlite")).standardizedFileURL
        self.stateSchema = stateSchema ?? "dfe"
    }

    /// The backend that holds the state.
    public func stateBackend() throws(StateError) -> any StateBackend {
        try StateBackends.backend(for: state, schema: stateSchema)
    }

    /// A path shown relative to the workspace root when it lies below it.
    public func display(_ url: URL) -> String { WorkspaceFiles.relativePath(url, to: root) }
}

/// Config, resolved hosts and validated manifests: everything read before anything is touched.
public struct LoadedInputs: Sendable {
    public var config: WorkspaceConfig
    public var manager: ProvisionManager
    public var specs: [InstanceSpec]
    public var desired: [DesiredInstance]
}

/// Loading the inputs of a run; every problem is reported, nothing is touched.
public enum InputLoader {
    /// Reads config, resolves drivers and validates every manifest.
    public static func load(
        _ workspace: Workspace, registry: DriverRegistry, environment: [String: String]
    ) throws(ValidationFailure) -> LoadedInputs {
        let config = try ConfigLoader.load(configDirectory: workspace.config, root: workspace.root)
        let manager = try ProvisionManager(
            config: config.provisioners, registry: registry,
            environment: DriverEnvironment(root: workspace.root, environment: environment))
        let specs = try ManifestLoader.load(
            manifestsDirectory: workspace.manifests, root: workspace.root, config: config)
        let problems = manager.problems(specs)
        guard problems.isEmpty else { throw ValidationFailure(problems) }
        let desired = Mutex([DesiredInstance?](repeating: nil, count: specs.count))
        DispatchQueue.concurrentPerform(iterations: specs.count) { index in
            let resolved = manager.desired(specs[index])
            desired.withLock { $0[index] = resolved }
        }
        return LoadedInputs(
            config: config, manager: manager, specs: specs, desired: desired.withLock { $0.compactMap { $0 } })
    }

    /// Reads and validates the config alone (the controller needs its settings even when manifests are invalid).
    public static func loadConfig(_ workspace: Workspace) throws(ValidationFailure) -> WorkspaceConfig {
        try ConfigLoader.load(configDirectory: workspace.config, root: workspace.root)
    }
}

/// The wall clock, injected so backoff and lease tests never sleep.
public protocol WallClock: Sendable {
    func now() -> Date
}

/// The real clock.
public struct SystemClock: WallClock {
    public init() {}
    public func now() -> Date { Date() }
}
