import DFECore
import DFEDrivers
import DFEProvision
import Foundation
import Testing

/// The three drivers of one instance, wired as the reconciler wires them.
struct InstanceFixture {
    let directory: DriverDirectory
    let storage: LocalStorageProvisioner
    let database: SQLiteDatabaseProvisioner
    let instance: DreamFactoryInstanceProvisioner

    init() throws {
        directory = try DriverDirectory()
        storage = LocalStorageProvisioner(root: directory.path("storage"), zone: "local")
        database = SQLiteDatabaseProvisioner(root: directory.path("databases"))
        instance = DreamFactoryInstanceProvisioner(root: directory.path("instances"), domain: "dfe.localhost")
    }

    /// The instance resource's context for `spec`, with storage and database outputs as dependencies.
    func context(_ spec: InstanceSpec, recorded: RecordedResource? = nil, host: HostConfig = testHost)
        -> ResourceContext
    {
        let storageFields = storage.fields(for: spec, host: host, dependencies: [:])
        let databaseFields = database.fields(for: spec, host: host, dependencies: [.storage: storageFields])
        let storageOutputs = storageFields.values.filter {
            ["driver", "path", "privatePath", "ownerPrivatePath", "snapshotPath"].contains($0.key)
        }
        var ctx = DFEDriversTests.context(
            instance, spec, recorded: recorded,
            dependencies: [.storage: storageOutputs, .database: databaseFields.values],
            dependencyFields: [.storage: storageFields, .database: databaseFields])
        ctx.host = host
        ctx.fields = instance.fields(
            for: spec, host: host, dependencies: [.storage: storageFields, .database: databaseFields])
        return ctx
    }

    func envPath(_ name: String) -> String { directory.path("instances/\(name)/.env") }

    func metadataPath(_ name: String) -> String { directory.path("instances/\(name)/instance.json") }

    func document(_ name: String) throws -> [String: Any] {
        let data = try #require(Files.bytes(metadataPath(name)))
        return try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
    }

    func recordedOutputs(_ ctx: ResourceContext, _ outputs: [String: String]) -> RecordedResource {
        recorded(.instance, ctx, driver: "dreamfactory", outputs: outputs)
    }
}

@Suite struct DreamFactoryInstanceTests {
    @Test func metadataDocumentHasTheDesignKeysAndMode0600() async throws {
        let fixture = try InstanceFixture()
        let spec = testSpec("acme-prod", owner: "Ops@Acme.Example")
        let ctx = fixture.context(spec)
        #expect(try await fixture.instance.observe(ctx) == .missing)
        let outputs = try await fixture.instance.apply(ctx)
        let path = fixture.metadataPath("acme-prod")
        #expect(Files.mode(path) == 0o600)
        #expect(Files.mode(fixture.directory.path("instances/acme-prod")) == 0o750)

        let document = try fixture.document("acme-prod")
        #expect(Set(document.keys).isSuperset(of: ["instance", "storage", "database", "appKey"]))
        let instance = try #require(document["instance"] as? [String: Any])
        #expect(instance["name"] as? String == "acme-prod")
        let id = try #require(instance["id"] as? String)
        #expect(id.hasPrefix("dfe-") && id.count == 20)
        #expect(instance["owner"] as? String == "Ops@Acme.Example")
        #expect(instance["endpoint"] as? String == "https://acme-prod.dfe.localhost")
        #expect(instance["resourceUri"] as? String == "/api/v2/system/")
        #expect(instance["platformState"] as? String == "active")
        #expect(instance["offerings"] as? [String: String] == ["instance-version": "7.4"])

        let storage = try #require(document["storage"] as? [String: String])
        let owner = fixture.directory.path("storage/local/36/\(LocalStorageTests.acmeHash)")
        #expect(storage["path"] == "\(owner)/acme-prod")
        #expect(storage["privatePath"] == "\(owner)/acme-prod/.private")
        #expect(storage["ownerPrivatePath"] == "\(owner)/.private")
        #expect(storage["snapshotPath"] == "\(owner)/.private/snapshots")

        let database = try #require(document["database"] as? [String: String])
        #expect(database["driver"] == "sqlite")
        #expect(database["path"] == fixture.directory.path("databases/acme-prod.sqlite"))

        let appKey = try #require(document["appKey"] as? [String: String])
        let clientID = try #require(appKey["clientId"])
        let secret = try #require(appKey["clientSecret"])
        #expect(clientID.count > 8)
        #expect(secret.count >= 32)
        #expect(outputs["clientId"] == clientID)
        #expect(outputs["clientSecret"] == secret)
        #expect(outputs["metadataPath"] == path)
        #expect(outputs["endpoint"] == "https://acme-prod.dfe.localhost")
        #expect(try await fixture.instance.observe(ctx) == .ok)
        // Written atomically: no temporary file is left.
        #expect(fixture.directory.listing("instances") == ["acme-prod", "acme-prod/.env", "acme-prod/instance.json"])
    }

    @Test func appKeysDifferBetweenInstances() async throws {
        let fixture = try InstanceFixture()
        let a = try await fixture.instance.apply(fixture.context(testSpec("a")))
        let b = try await fixture.instance.apply(fixture.context(testSpec("b")))
        #expect(a["clientId"] != b["clientId"])
        #expect(a["clientSecret"] != b["clientSecret"])
    }

    @Test func appKeyIsStableAcrossApplies() async throws {
        let fixture = try InstanceFixture()
        let spec = testSpec("acme")
        let first = try await fixture.instance.apply(fixture.context(spec))
        let bytes = Files.bytes(fixture.metadataPath("acme"))
        let ctx = fixture.context(spec, recorded: fixture.recordedOutputs(fixture.context(spec), first))
        let second = try await fixture.instance.apply(ctx)
        #expect(second["clientId"] == first["clientId"])
        #expect(second["clientSecret"] == first["clientSecret"])
        #expect(Files.bytes(fixture.metadataPath("acme")) == bytes)
    }

    @Test func appKeyIsReadBackFromTheDocumentWhenStateHasNone() async throws {
        let fixture = try InstanceFixture()
        let spec = testSpec("acme")
        let first = try await fixture.instance.apply(fixture.context(spec))
        // State lost (or the instance adopted): no recorded outputs.
        let ctx = fixture.context(spec)
        #expect(try await fixture.instance.observe(ctx) == .ok)
        let again = try await fixture.instance.apply(ctx)
        #expect(again["clientId"] == first["clientId"])
        #expect(again["clientSecret"] == first["clientSecret"])
    }

    @Test func handEditedDocumentIsDriftAndRewritten() async throws {
        let fixture = try InstanceFixture()
        let spec = testSpec("acme")
        let outputs = try await fixture.instance.apply(fixture.context(spec))
        let path = fixture.metadataPath("acme")
        let original = try #require(Files.bytes(path))
        let edited = String(decoding: original, as: UTF8.self)
            .replacingOccurrences(of: "https://acme.dfe.localhost", with: "https://evil.example")
        try Files.write(path, edited)
        chmod(path, 0o600)
        let ctx = fixture.context(spec, recorded: fixture.recordedOutputs(fixture.context(spec), outputs))
        guard case .drifted = try await fixture.instance.observe(ctx) else {
            Issue.record("a hand-edited document must be observed as drift")
            return
        }
        _ = try await fixture.instance.apply(ctx)
        #expect(Files.bytes(path) == original)
        #expect(try await fixture.instance.observe(ctx) == .ok)
        #expect(fixture.directory.listing("instances/acme") == [".env", "instance.json"])
    }

    @Test func handEditedAppKeyIsRestoredFromState() async throws {
        let fixture = try InstanceFixture()
        let spec = testSpec("acme")
        let outputs = try await fixture.instance.apply(fixture.context(spec))
        let path = fixture.metadataPath("acme")
        let secret = try #require(outputs["clientSecret"])
        let text = String(decoding: try #require(Files.bytes(path)), as: UTF8.self)
        try Files.write(path, text.replacingOccurrences(of: secret, with: String(repeating: "0", count: 64)))
        chmod(path, 0o600)
        let ctx = fixture.context(spec, recorded: fixture.recordedOutputs(fixture.context(spec), outputs))
        #expect(try await fixture.instance.observe(ctx) != .ok)
        let again = try await fixture.instance.apply(ctx)
        #expect(again["clientSecret"] == secret)
        #expect((try fixture.document("acme")["appKey"] as? [String: String])?["clientSecret"] == secret)
    }

    @Test func wrongModeIsDriftAndRepaired() async throws {
        let fixture = try InstanceFixture()
        let ctx = fixture.context(testSpec("acme"))
        _ = try await fixture.instance.apply(ctx)
        let path = fixture.metadataPath("acme")
        chmod(path, 0o644)
        guard case .drifted(let detail) = try await fixture.instance.observe(ctx) else {
            Issue.record("a world-readable document must be observed as drift")
            return
        }
        #expect(detail.contains("0600"))
        _ = try await fixture.instance.apply(ctx)
        #expect(Files.mode(path) == 0o600)
        #expect(try await fixture.instance.observe(ctx) == .ok)
    }

    @Test func changedInputsRewriteTheDocumentKeepingTheKey() async throws {
        let fixture = try InstanceFixture()
        let first = try await fixture.instance.apply(fixture.context(testSpec("acme")))
        let locked = fixture.context(testSpec("acme", state: .locked, offerings: ["instance-version": "6.2"]))
        #expect(try await fixture.instance.observe(locked) != .ok)
        let second = try await fixture.instance.apply(locked)
        let instance = try #require(try fixture.document("acme")["instance"] as? [String: Any])
        #expect(instance["platformState"] as? String == "locked")
        #expect(instance["offerings"] as? [String: String] == ["instance-version": "6.2"])
        #expect(second["clientSecret"] == first["clientSecret"])
    }

    @Test func staleTemporaryFileFromACrashIsRemoved() async throws {
        let fixture = try InstanceFixture()
        try Files.write(fixture.directory.path("instances/acme/.instance.json.dfe-tmp"), "{half")
        _ = try await fixture.instance.apply(fixture.context(testSpec("acme")))
        #expect(fixture.directory.listing("instances/acme") == [".env", "instance.json"])
    }

    @Test func fieldsCarryNoSecretsAndDescribeTheDocumentInputs() throws {
        let fixture = try InstanceFixture()
        let fields = fixture.context(testSpec("acme")).fields
        #expect(fields["endpoint"] == "https://acme.dfe.localhost")
        #expect(fields["resourceUri"] == "/api/v2/system/")
        #expect(fields["platformState"] == "active")
        #expect(fields["offerings.instance-version"] == "7.4")
        #expect(fields["metadataPath"] == fixture.metadataPath("acme"))
        #expect(fields["database.path"] == fixture.directory.path("databases/acme.sqlite"))
        #expect(fields.values.keys.allSatisfy { !Sensitive.isSensitive($0) })
    }

    @Test func deleteRemovesTheInstanceDirectoryOnly() async throws {
        let fixture = try InstanceFixture()
        let acme = fixture.context(testSpec("acme"))
        let outputs = try await fixture.instance.apply(acme)
        _ = try await fixture.instance.apply(fixture.context(testSpec("beta")))
        try await fixture.instance.delete(pruneContext("acme", recorded: fixture.recordedOutputs(acme, outputs)))
        #expect(fixture.directory.listing("instances") == ["beta", "beta/.env", "beta/instance.json"])
    }
}
