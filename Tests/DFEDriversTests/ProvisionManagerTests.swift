import DFECore
import DFEDrivers
import DFEProvision
import Foundation
import Testing

private let file = "config/provisioners.yaml"

private func option(_ text: String, line: Int, column: Int = 30) -> OptionValue {
    OptionValue(text, at: SourceLocation(path: file, line: line, column: column))
}

private func reference(_ driver: String, line: Int, options: [String: OptionValue] = [:]) -> DriverReference {
    DriverReference(driver: driver, options: options, location: SourceLocation(path: file, line: line, column: 20))
}

/// The embedded default host as ConfigLoader reads it, with drivers and options that can be replaced.
private func config(
    instance: DriverReference? = reference(
        "dreamfactory", line: 5,
        options: ["root": option("var/instances", line: 5), "domain": option("dfe.localhost", line: 5, column: 50)]),
    storage: DriverReference? = reference(
        "local", line: 6,
        options: ["root": option("var/storage", line: 6), "zone": option("local", line: 6, column: 50)]),
    database: DriverReference? = reference("sqlite", line: 7, options: ["root": option("var/databases", line: 7)])
) -> ProvisionersConfig {
    var provides: [ResourceKind: DriverReference] = [:]
    provides[.instance] = instance
    provides[.storage] = storage
    provides[.database] = database
    let host = HostConfig(
        name: "dreamfactory", provides: provides, offerings: testHost.offerings, resourceURI: "/api/v2/system/",
        location: SourceLocation(path: file, line: 3, column: 3))
    return ProvisionersConfig(defaultHost: "dreamfactory", hosts: ["dreamfactory": host])
}

private func failure(_ config: ProvisionersConfig, root: URL = URL(fileURLWithPath: "/srv/dfe")) -> ValidationFailure? {
    do {
        _ = try ProvisionManager(
            config: config, registry: BuiltinDrivers.registry(), environment: DriverEnvironment(root: root))
        return nil
    } catch {
        return error
    }
}

@Suite struct ProvisionManagerTests {
    @Test func builtinRegistryKnowsTheThreeDrivers() {
        let registry = BuiltinDrivers.registry()
        #expect(registry.known(.storage) == ["local"])
        #expect(registry.known(.database) == ["sqlite"])
        #expect(registry.known(.instance) == ["dreamfactory"])
        #expect(registry.factory(.storage, "sqlite") == nil)
    }

    @Test func resolvesEachHostFromConfigWithPathsRelativeToTheWorkspace() throws {
        let root = URL(fileURLWithPath: "/srv/dfe")
        let manager = try ProvisionManager(
            config: config(), registry: BuiltinDrivers.registry(), environment: DriverEnvironment(root: root))
        #expect(manager.defaultHost == "dreamfactory")
        let host = try #require(manager.hosts["dreamfactory"])
        #expect(host.storage.driverName == "local")
        #expect(host.database.driverName == "sqlite")
        #expect(host.instance.driverName == "dreamfactory")
        #expect((host.storage as? LocalStorageProvisioner)?.root == "/srv/dfe/var/storage")
        #expect((host.database as? SQLiteDatabaseProvisioner)?.root == "/srv/dfe/var/databases")
        #expect((host.instance as? DreamFactoryInstanceProvisioner)?.root == "/srv/dfe/var/instances")
        #expect(manager.provisioner(host: "dreamfactory", kind: .database, driver: "sqlite") != nil)
        #expect(manager.provisioner(host: "dreamfactory", kind: .database, driver: "postgres") == nil)
        #expect(manager.provisioner(host: "gone", kind: .database, driver: "sqlite") == nil)
    }

    @Test func desiredResourcesAreDescribedByTheHostsDrivers() throws {
        let manager = try ProvisionManager(
            config: config(), registry: BuiltinDrivers.registry(),
            environment: DriverEnvironment(root: URL(fileURLWithPath: "/srv/dfe")))
        let desired = try #require(manager.desired(testSpec("acme")))
        #expect(desired.resources.keys.sorted() == [.storage, .database, .instance])
        #expect(desired.resources.values.allSatisfy { $0.host == "dreamfactory" })
        #expect(desired.resources[.database]?.fields["path"] == "/srv/dfe/var/databases/acme.sqlite")
        let instance = try #require(desired.resources[.instance]?.fields)
        #expect(instance["storage.path"] == desired.resources[.storage]?.fields["path"])
        #expect(instance["database.path"] == "/srv/dfe/var/databases/acme.sqlite")
        var other = testSpec("acme")
        other.provisioner = "nope"
        #expect(manager.desired(other) == nil)
    }

    @Test func unknownDriverIsAnErrorListingTheKnownOnes() throws {
        let result = try #require(failure(config(storage: reference("s3", line: 6))))
        #expect(result.diagnostics.count == 1)
        let diagnostic = try #require(result.diagnostics.first)
        #expect(diagnostic.location == SourceLocation(path: file, line: 6, column: 20))
        #expect(
            diagnostic.message == "unknown storage driver 's3' in host 'dreamfactory'; known storage drivers: local")
    }

    @Test func everyUnknownDriverIsReported() throws {
        let result = try #require(
            failure(config(instance: reference("wordpress", line: 5), database: reference("mysql", line: 7))))
        #expect(result.diagnostics.map(\.location.line) == [5, 7])
        #expect(result.diagnostics[0].message.contains("known instance drivers: dreamfactory"))
        #expect(result.diagnostics[1].message.contains("known database drivers: sqlite"))
    }

    @Test func unknownDriverOptionsAreRejectedAtTheOption() throws {
        let storage = reference(
            "local", line: 6,
            options: ["root": option("var/storage", line: 6), "colour": option("red", line: 6, column: 70)])
        let result = try #require(failure(config(storage: storage)))
        #expect(
            result.diagnostics.map(\.description) == [
                "\(file):6:70: error: unknown option 'colour' for storage driver 'local'; known: root, zone"
            ])
    }

    @Test(arguments: [
        (ResourceKind.instance, "secret"), (.database, "url"), (.storage, "domain"),
    ])
    func eachDriverRejectsOptionsItDoesNotKnow(kind: ResourceKind, key: String) throws {
        var provisioners = config()
        provisioners.hosts["dreamfactory"]?.provides[kind]?.options[key] = option("x", line: 9, column: 9)
        let result = try #require(failure(provisioners))
        #expect(result.diagnostics.map { "\($0.location)" } == ["\(file):9:9"])
        #expect(result.diagnostics.first?.message.contains("unknown option '\(key)'") == true)
    }

    @Test func invalidZoneAndDomainAreRejected() throws {
        let storage = reference("local", line: 6, options: ["zone": option("Bad Zone", line: 6, column: 44)])
        let instance = reference(
            "dreamfactory", line: 5, options: ["domain": option("bad..domain", line: 5, column: 40)])
        let result = try #require(failure(config(instance: instance, storage: storage)))
        #expect(result.diagnostics.map { "\($0.location)" } == ["\(file):5:40", "\(file):6:44"])
        #expect(result.diagnostics[0].message.contains("'bad..domain' is not a valid DNS name"))
        #expect(result.diagnostics[1].message.contains("zone 'Bad Zone'"))
    }

    @Test func hostWithoutADatabaseDriverIsAnError() throws {
        let result = try #require(failure(config(database: nil)))
        #expect(result.diagnostics.map(\.message) == ["host 'dreamfactory' provides no database driver"])
    }
}
