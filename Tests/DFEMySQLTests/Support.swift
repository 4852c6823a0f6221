import DFECore
import DFEProvision
import Foundation

@testable import DFEMySQL

let configLocation = SourceLocation(path: "config/provisioners.yaml", line: 4, column: 5)

/// Options at distinct, recognisable locations (line = 10 + index of the key in `keys`).
func driverOptions(_ values: [String: String]) -> DriverOptions {
    var options: [String: OptionValue] = [:]
    for (key, value) in values { options[key] = OptionValue(value, at: location(of: key)) }
    return DriverOptions(
        reference: DriverReference(driver: "mysql", options: options, location: configLocation), kind: .database,
        host: "my")
}

/// Where a test puts option `key`.
func location(of key: String) -> SourceLocation {
    let keys = ["url", "passwordEnv", "passwordFile", "prefix", "userHost", "connectTimeout"]
    return SourceLocation(path: "config/provisioners.yaml", line: 10 + (keys.firstIndex(of: key) ?? 20), column: 7)
}

/// Builds the driver through the registry, as the provision manager does.
func makeDriver(
    _ values: [String: String], environment: [String: String] = [:], root: URL = URL(fileURLWithPath: "/tmp")
) throws -> any SubProvisioner {
    var registry = DriverRegistry()
    MySQLDriver.register(into: &registry)
    guard let factory = registry.factory(.database, "mysql") else { throw HarnessError("mysql not registered") }
    return try factory(driverOptions(values), DriverEnvironment(root: root, environment: environment))
}

/// A driver pointed at the shared test server as admin.
func serverDriver(_ server: RunningServer, port: Int? = nil, prefix: String? = nil) throws -> any SubProvisioner {
    var values = ["url": "mysql://admin@127.0.0.1:\(port ?? server.port)", "passwordEnv": TestServer.passwordVariable]
    if let prefix { values["prefix"] = prefix }
    return try makeDriver(values, environment: [TestServer.passwordVariable: TestServer.adminPassword])
}

let testHost = HostConfig(
    name: "my", provides: [:], offerings: [:], resourceURI: "/api/v2/system/", location: configLocation)

/// The context of instance `name`'s database, optionally with what a previous apply returned.
func context(
    _ driver: any SubProvisioner, _ name: String, owner: String = "tester", recorded outputs: [String: String]? = nil
)
    -> ResourceContext
{
    let spec = InstanceSpec(
        name: name, owner: owner, provisioner: "my", source: SourceLocation(path: "manifests/\(name).yaml"))
    let fields = driver.fields(for: spec, host: testHost, dependencies: [:])
    let recorded = outputs.map {
        RecordedResource(
            kind: .database, host: "my", driver: "mysql", specHash: fields.hash, fields: fields, outputs: $0)
    }
    return ResourceContext(name: name, owner: owner, spec: spec, host: testHost, fields: fields, recorded: recorded)
}

/// The context of a pruned instance: no spec, no desired fields, only what was recorded.
func pruneContext(_ name: String, recorded outputs: [String: String]) -> ResourceContext {
    let recorded = RecordedResource(
        kind: .database, host: "my", driver: "mysql", specHash: "", fields: FieldSet(), outputs: outputs)
    return ResourceContext(
        name: name, owner: "tester", spec: nil, host: testHost, fields: FieldSet(), recorded: recorded)
}

/// A client connection to the test server (the admin by default).
func connect(
    _ server: RunningServer, user: String = "admin", password: String = TestServer.adminPassword,
    database: String? = nil
) throws -> MySQLConnection {
    try MySQLConnection.connect(
        MySQLParameters(
            host: "127.0.0.1", port: server.port, user: user, password: Secret(password), database: database,
            connectTimeoutSeconds: 5))
}

/// Runs one admin statement and returns the first column of each row.
@discardableResult
func admin(_ server: RunningServer, _ sql: String) throws -> [String?] {
    try connect(server).query(sql).map { $0.first ?? nil }
}

/// Whether a database and a user of that name exist (the user at host `%`).
func exists(_ server: RunningServer, _ name: String) throws -> (database: Bool, user: Bool) {
    let database = try admin(
        server, "SELECT SCHEMA_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = '\(name)'")
    let user = try admin(server, "SELECT user FROM mysql.user WHERE user = '\(name)'")
    return (!database.isEmpty, !user.isEmpty)
}

/// A unique instance name so tests sharing the server never collide.
func uniqueName(_ base: String) -> String { "\(base)-\(UUID().uuidString.prefix(6).lowercased())" }

/// The object name of an instance with the default prefix.
func objectName(_ instance: String) -> String { "dfe_" + instance.replacingOccurrences(of: "-", with: "_") }
