import DFECore
import DFEManifest
import DFETestSupport
import Foundation
import Testing

/// A valid host block, indented to sit under `hosts:`.
private func host(_ name: String, suggested: String = "\"7.4\"") -> String {
    """
      \(name):
        provides:
          instance: {driver: dreamfactory, root: var/instances, domain: dfe.localhost}
          storage: {driver: local, root: var/storage, zone: local}
          database: sqlite
        offerings:
          instance-version:
            name: DreamFactory version
            suggested: \(suggested)
            items:
              "6.2": {description: old}
              "7.4": {description: current}
        resource-uri: /api/v2/system/

    """
}

@Suite struct ConfigLoaderTests {
    @Test func embeddedDefaultConfigLoadsCompletely() throws {
        let workspace = try ManifestWorkspace()
        let config = try workspace.config()
        #expect(config.provisioners.defaultHost == "dreamfactory")
        let host = try #require(config.provisioners.hosts["dreamfactory"])
        #expect(host.resourceURI == "/api/v2/system/")
        #expect(host.provides[.instance]?.driver == "dreamfactory")
        #expect(
            host.provides[.instance]?.options.mapValues(\.text) == ["root": "var/instances", "domain": "dfe.localhost"])
        #expect(host.provides[.storage]?.driver == "local")
        #expect(host.provides[.storage]?.options["zone"]?.text == "local")
        #expect(host.provides[.database]?.driver == "sqlite")
        let offering = try #require(host.offerings["instance-version"])
        #expect(offering.name == "DreamFactory version")
        #expect(offering.suggested == "7.4")
        #expect(offering.items == ["6.2": "old", "7.4": "current"])
        #expect(config.settings.forbiddenNames == ["admin", "www"])
        #expect(config.settings.parallelism == 4)
        #expect(config.settings.backoff == Backoff(initial: .seconds(5), maximum: .seconds(300)))
    }

    @Test func driverOptionsKeepTheirLocations() throws {
        let workspace = try ManifestWorkspace()
        let host = try #require(try workspace.config().provisioners.hosts["dreamfactory"])
        let root = try #require(host.provides[.storage]?.options["root"])
        // `      storage: {driver: local, root: var/storage, zone: local}` is line 6.
        #expect(root.location == SourceLocation(path: "config/provisioners.yaml", line: 6, column: 38))
    }

    @Test func unknownTopLevelKeysAreRejectedInBothFiles() throws {
        let workspace = try ManifestWorkspace(
            provisioners: "default: dreamfactory\nhosts:\n" + host("dreamfactory") + "colour: blue\n",
            settings: "paralelism: 8\n")
        let failure = try #require(workspace.configFailure())
        #expect(
            failure.diagnostics.map { "\($0.location)" } == [
                "config/dfe.yaml:1:1", "config/provisioners.yaml:16:1",
            ])
        #expect(failure.diagnostics[0].message.contains("unknown field 'paralelism'"))
        #expect(failure.diagnostics[0].message.contains("parallelism"))
        #expect(failure.diagnostics[1].message.contains("unknown field 'colour' in provisioners config"))
    }

    @Test func unknownFieldsInsideAHostAreRejected() throws {
        let text = "default: dreamfactory\nhosts:\n" + host("dreamfactory") + "    resource_uri: /x/\n"
        let workspace = try ManifestWorkspace(provisioners: text)
        let failure = try #require(workspace.configFailure())
        #expect(failure.diagnostics.map { "\($0.location)" } == ["config/provisioners.yaml:16:5"])
        #expect(
            failure.diagnostics.first?.message.contains("unknown field 'resource_uri' in host 'dreamfactory'") == true)
    }

    @Test func missingDefaultWithSeveralHostsIsAnError() throws {
        let workspace = try ManifestWorkspace(provisioners: "hosts:\n" + host("one") + host("two"))
        let failure = try #require(workspace.configFailure())
        #expect(failure.diagnostics.count == 1)
        #expect(failure.diagnostics.first?.message.contains("missing 'default'") == true)
        #expect(failure.diagnostics.first?.location.path == "config/provisioners.yaml")
    }

    @Test func singleHostIsTheDefaultWhenNoneIsNamed() throws {
        let workspace = try ManifestWorkspace(provisioners: "hosts:\n" + host("only"))
        #expect(try workspace.config().provisioners.defaultHost == "only")
    }

    @Test func defaultMustNameADefinedHost() throws {
        let workspace = try ManifestWorkspace(provisioners: "default: nope\nhosts:\n" + host("one"))
        let failure = try #require(workspace.configFailure())
        #expect(failure.diagnostics.map { "\($0.location)" } == ["config/provisioners.yaml:1:10"])
        #expect(failure.diagnostics.first?.message.contains("default host 'nope' is not defined") == true)
    }

    @Test func suggestedMustBeAmongTheItems() throws {
        let workspace = try ManifestWorkspace(
            provisioners: "default: one\nhosts:\n" + host("one", suggested: "\"8.0\""))
        let failure = try #require(workspace.configFailure())
        #expect(failure.diagnostics.map { "\($0.location)" } == ["config/provisioners.yaml:11:20"])
        #expect(
            failure.diagnostics.first?.message.contains("suggested '8.0' is not one of the items: 6.2, 7.4") == true)
    }

    @Test func hostMustProvideEveryPortableType() throws {
        let text = """
            default: one
            hosts:
              one:
                provides: {instance: dreamfactory, storage: local}

            """
        let workspace = try ManifestWorkspace(provisioners: text)
        let failure = try #require(workspace.configFailure())
        #expect(failure.diagnostics.count == 1)
        #expect(failure.diagnostics.first?.message.contains("provides no database driver") == true)
    }

    @Test func badDurationsInSettingsAreAllReported() throws {
        let settings = """
            controller:
              interval: 5 minutes
            backoff:
              initial: 0s
              max: 1x

            """
        let workspace = try ManifestWorkspace(settings: settings)
        let failure = try #require(workspace.configFailure())
        #expect(
            failure.diagnostics.map { "\($0.location)" } == [
                "config/dfe.yaml:2:13", "config/dfe.yaml:4:12", "config/dfe.yaml:5:8",
            ])
        #expect(failure.diagnostics[0].message.contains("controller.interval must be a duration"))
        #expect(failure.diagnostics[0].message.contains("'5 minutes'"))
        #expect(failure.diagnostics[1].message.contains("backoff.initial"))
        #expect(failure.diagnostics[2].message.contains("backoff.max"))
    }

    @Test func settingsAreRead() throws {
        let settings = """
            naming:
              forbidden: [reserved, billing]
            parallelism: 12
            prune: true
            controller: {interval: 1m30s, listen: "0.0.0.0:9999"}
            backoff: {initial: 500ms, max: 1h}

            """
        let workspace = try ManifestWorkspace(settings: settings)
        let config = try workspace.config()
        #expect(config.settings.forbiddenNames == ["reserved", "billing"])
        #expect(config.settings.parallelism == 12)
        #expect(config.settings.prune)
        #expect(config.settings.controllerInterval == .seconds(90))
        #expect(config.settings.listen == "0.0.0.0:9999")
        #expect(config.settings.backoff == Backoff(initial: .milliseconds(500), maximum: .seconds(3600)))
    }

    @Test func forbiddenMustBeAList() throws {
        let workspace = try ManifestWorkspace(settings: "naming:\n  forbidden: admin\n")
        let failure = try #require(workspace.configFailure())
        #expect(failure.diagnostics.map { "\($0.location)" } == ["config/dfe.yaml:2:14"])
        #expect(failure.diagnostics.first?.message.contains("naming.forbidden must be a list") == true)
    }

    @Test func wrongTypesInSettingsAreReported() throws {
        let workspace = try ManifestWorkspace(settings: "parallelism: 0\nprune: sometimes\n")
        let failure = try #require(workspace.configFailure())
        #expect(failure.diagnostics.map { "\($0.location)" } == ["config/dfe.yaml:1:14", "config/dfe.yaml:2:8"])
        #expect(failure.diagnostics[0].message.contains("parallelism must be between 1 and 256"))
        #expect(failure.diagnostics[1].message.contains("prune must be true or false"))
    }

    @Test func missingSettingsFileMeansDefaults() throws {
        let workspace = try ManifestWorkspace()
        try FileManager.default.removeItem(at: workspace.root.appendingPathComponent("config/dfe.yaml"))
        let settings = try workspace.config().settings
        #expect(settings == Settings())
    }

    @Test func missingProvisionersFileIsAnError() throws {
        let workspace = try ManifestWorkspace()
        try FileManager.default.removeItem(at: workspace.root.appendingPathComponent("config/provisioners.yaml"))
        let failure = try #require(workspace.configFailure())
        #expect(failure.diagnostics.map { "\($0.location)" } == ["config/provisioners.yaml"])
        #expect(failure.diagnostics.first?.message.contains("missing") == true)
    }

    @Test func configFilesOverOneMebibyteAreRejected() throws {
        let big = "hosts: {}\n" + String(repeating: "#", count: WorkspaceFiles.maxFileSize) + "\n"
        let workspace = try ManifestWorkspace(provisioners: big)
        let failure = try #require(workspace.configFailure())
        #expect(failure.diagnostics.map { "\($0.location)" } == ["config/provisioners.yaml"])
        #expect(failure.diagnostics.first?.message.contains("1 MiB") == true)
    }

    @Test func relativePathIsBelowRootOrAbsolute() {
        let root = URL(fileURLWithPath: "/srv/work")
        #expect(
            WorkspaceFiles.relativePath(URL(fileURLWithPath: "/srv/work/manifests/a.yaml"), to: root)
                == "manifests/a.yaml")
        #expect(
            WorkspaceFiles.relativePath(URL(fileURLWithPath: "/srv/workshop/a.yaml"), to: root)
                == "/srv/workshop/a.yaml")
        #expect(WorkspaceFiles.relativePath(URL(fileURLWithPath: "/srv/work/x/../m/a.yaml"), to: root) == "m/a.yaml")
    }
}

@Suite struct ConfigCompletenessTests {
    @Test func undefinedDefaultIsReportedAlongsideOtherErrors() throws {
        let text = "default: nope\nhosts:\n" + host("one") + "colour: blue\n"
        let workspace = try ManifestWorkspace(provisioners: text)
        let failure = try #require(workspace.configFailure())
        #expect(
            failure.diagnostics.map { "\($0.location)" } == [
                "config/provisioners.yaml:1:10", "config/provisioners.yaml:16:1",
            ])
    }
}

@Suite struct OfferingEnvConfigTests {
    /// A host whose `7.4` item carries `env` (YAML flow mapping text).
    func provisioners(env: String) -> String {
        """
        default: dreamfactory
        hosts:
          dreamfactory:
            provides:
              instance: {driver: dreamfactory}
              storage: {driver: local}
              database: sqlite
            offerings:
              instance-version:
                suggested: "7.4"
                items:
                  "6.2": {description: old}
                  "7.4": {description: current, env: \(env)}

        """
    }

    @Test func offeringItemEnvMapsAreLoaded() throws {
        let workspace = try ManifestWorkspace(
            provisioners: provisioners(env: #"{DF_VERSION: "7.4", GREETING: "a \"b\" # $c"}"#))
        let offering = try #require(try workspace.config().provisioners.hosts["dreamfactory"]?.offerings.first?.value)
        #expect(offering.env == ["7.4": ["DF_VERSION": "7.4", "GREETING": #"a "b" # $c"#]])
        #expect(offering.items["7.4"] == "current")
    }

    @Test func badEnvKeysAndValuesAreLocatedErrors() throws {
        let workspace = try ManifestWorkspace(
            provisioners: provisioners(env: #"{df-version: x, APP_KEY: y, ODD: "${A}'", LIST: [1], OK: z}"#))
        let failure = try #require(workspace.configFailure())
        let messages = failure.diagnostics.map(\.message)
        #expect(failure.diagnostics.count == 4, "\(messages)")
        #expect(messages.contains { $0.contains("'df-version' is not a valid variable name") })
        #expect(messages.contains { $0.contains("'APP_KEY' is written by dfe itself") })
        #expect(messages.contains { $0.contains("ODD: cannot be written to .env") })
        #expect(messages.contains { $0.contains("LIST must be a string") })
        #expect(
            failure.diagnostics.allSatisfy { $0.location.path == "config/provisioners.yaml" && $0.location.line == 13 })
    }

    @Test func envMustBeAMapping() throws {
        let workspace = try ManifestWorkspace(provisioners: provisioners(env: "[DF_VERSION]"))
        let failure = try #require(workspace.configFailure())
        #expect(failure.diagnostics.map(\.message) == ["item '7.4' env must be a mapping, found sequence"])
    }
}
