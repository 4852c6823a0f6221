import ArgumentParser
import DFECore
import DFEReconciler
import Foundation

/// The first-run message: what a workspace is, where dfe looked, and how to make one.
enum FirstRun {
    static let whatIsAWorkspace =
        "A dfe workspace is a directory holding manifests/ (one YAML manifest per instance), config/ (provisioners.yaml: the hosts; dfe.yaml: settings) and var/ (the observed state, made by dfe)"

    /// A message when the workspace root does not exist or holds neither its config nor its manifests directory;
    /// nil for anything else (whose problems the located diagnostics name).
    static func problem(_ workspace: Workspace) -> String? {
        let root = workspace.root.path
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: root, isDirectory: &isDirectory) else {
            return
                "workspace root \(root) does not exist. \(whatIsAWorkspace). Create one with `dfe init \(root)`, or pass --root DIR (env DFE_ROOT)."
        }
        guard isDirectory.boolValue else {
            return "workspace root \(root) is not a directory. \(whatIsAWorkspace). Pass --root DIR (env DFE_ROOT)."
        }
        let fm = FileManager.default
        guard !fm.fileExists(atPath: workspace.config.path), !fm.fileExists(atPath: workspace.manifests.path) else {
            return nil
        }
        return
            "\(root) is not a dfe workspace: it has no \(workspace.display(workspace.config))/ and no \(workspace.display(workspace.manifests))/. \(whatIsAWorkspace). Create one here with `dfe init`, or pass --root DIR (env DFE_ROOT)."
    }
}

/// `dfe init [DIR]`: write a working example workspace.
struct InitCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "init", abstract: "Write a working example workspace (manifests/, config/, .gitignore).",
        discussion: """
            Creates DIR if needed and writes an example manifest, config/provisioners.yaml, config/dfe.yaml and a \
            .gitignore for var/. Refuses a directory that already holds manifests/ or config/. Then run \
            `dfe plan` and `dfe reconcile` there.
            """)

    @Argument(help: "The workspace directory to create.", completion: .directory)
    var directory: String = "."

    func run() async throws {
        let cwd = URL(fileURLWithPath: FileManager.default.currentDirectoryPath)
        let root =
            (directory.hasPrefix("/") ? URL(fileURLWithPath: directory) : cwd.appendingPathComponent(directory))
            .standardizedFileURL
        let fm = FileManager.default
        for existing in ["manifests", "config"] {
            let url = root.appendingPathComponent(existing)
            if fm.fileExists(atPath: url.path) {
                throw CommandFailure(
                    "\(url.path) already exists: \(root.path) is already a workspace; `dfe init` writes only into a directory without manifests/ and config/"
                )
            }
        }
        do {
            try fm.createDirectory(at: root.appendingPathComponent("manifests"), withIntermediateDirectories: true)
            try fm.createDirectory(at: root.appendingPathComponent("config"), withIntermediateDirectories: true)
            for (path, text) in Self.files {
                let url = root.appendingPathComponent(path)
                if path == ".gitignore", fm.fileExists(atPath: url.path) {
                    let current = (try? String(contentsOf: url, encoding: .utf8)) ?? ""
                    if !current.split(separator: "\n").contains("var/") {
                        try Data(((current.hasSuffix("\n") || current.isEmpty ? "" : "\n") + "var/\n").utf8)
                            .append(to: url)
                    }
                    continue
                }
                try Data(text.utf8).write(to: url, options: .withoutOverwriting)
            }
        } catch {
            throw CommandFailure("cannot write the workspace in \(root.path): \(error.localizedDescription)")
        }
        let terminal = Terminal.shared
        terminal.out("Wrote an example workspace in \(root.path):")
        for (path, _) in Self.files { terminal.out("  \(path)") }
        let cd = directory == "." ? "" : "cd \(directory) && "
        terminal.out("Next: \(cd)dfe plan   (then `dfe reconcile` to provision it)")
    }

    /// The files written, in order.
    static let files: [(String, String)] = [
        ("config/provisioners.yaml", provisioners),
        ("config/dfe.yaml", settings),
        ("manifests/example.yaml", manifest),
        ("manifest.schema.json", String(decoding: jsonData(SchemaCommand.manifestSchema), as: UTF8.self)),
        (".gitignore", "# The observed state and the provisioned data (made by dfe).\nvar/\n"),
    ]

    static let provisioners = """
        # Hosts (provisioners): one driver per portable type, the offerings instances may choose,
        # and the resource-uri through which the controller talks to a provisioned instance.
        default: dreamfactory
        hosts:
          dreamfactory:
            provides:
              instance: {driver: dreamfactory, root: var/instances, domain: dfe.localhost}
              storage: {driver: local, root: var/storage, zone: local}
              database: {driver: sqlite, root: var/databases}
            offerings:
              instance-version:
                name: DreamFactory version
                suggested: "7.4"
                items:
                  "6.2": {description: DreamFactory 6.2 (maintenance)}
                  "7.4": {description: DreamFactory 7.4 (current)}
            resource-uri: /api/v2/system/

        """

    static let settings = """
        # Settings for dfe itself.
        naming:
          # Instance names nobody may use (they collide with platform endpoints).
          forbidden: [admin, api, dfe, localhost, www]
        parallelism: 4          # instances reconciled at once (--parallelism overrides)
        prune: false            # true: delete instances whose manifest is gone without --prune
        backoff:
          initial: 5s           # first retry delay of a failed instance, doubling
          max: 5m               # cap
        controller:
          interval: 60s         # resync: observe everything and repair drift
          listen: 127.0.0.1:9420

        """

    static let manifest = """
        # yaml-language-server: $schema=../manifest.schema.json
        # One instance per document. The schema above (from `dfe schema manifest`) lets editors complete fields.
        apiVersion: dfe/v1
        kind: Instance
        metadata:
          name: example
          labels: {team: example}
        spec:
          owner: ops@example.com
          offerings:
            instance-version: "7.4"
          storage:
            quota: 1Gi

        """
}

extension Data {
    fileprivate func append(to url: URL) throws {
        let handle = try FileHandle(forWritingTo: url)
        defer { try? handle.close() }
        try handle.seekToEnd()
        try handle.write(contentsOf: self)
    }
}
