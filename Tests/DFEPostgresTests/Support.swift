import DFECore
import DFEProvision
import DFETestSupport
import Foundation

@testable import DFEPostgres

let configLocation = SourceLocation(path: "config/provisioners.yaml", line: 4, column: 5)

/// Options at distinct, recognisable locations (line = 10 + index of the key in `keys`).
func driverOptions(_ values: [String: String]) -> DriverOptions {
    var options: [String: OptionValue] = [:]
    for (key, value) in values {
        options[key] = OptionValue(value, at: location(of: key))
    }
    return DriverOptions(
        reference: DriverReference(driver: "postgres", options: options, location: configLocation),
        kind: .database, host: "pg")
}

/// Where a test puts option `key`.
func location(of key: String) -> SourceLocation {
    let keys = ["url", "passwordEnv", "passwordFile", "prefix", "sslmode", "connectTimeout"]
    return SourceLocation(path: "config/provisioners.yaml", line: 10 + (keys.firstIndex(of: key) ?? 20), column: 7)
}

/// Builds the driver through the registry, as the provision manager does.
func makeDriver(
    _ values: [String: String], environment: [String: String] = [:], root: URL = URL(fileURLWithPath: "/tmp")
) throws -> any SubProvisioner {
    var registry = DriverRegistry()
    PostgresDriver.register(into: &registry)
    guard let factory = registry.factory(.database, "postgres") else { throw HarnessError("postgres not registered") }
    return try factory(driverOptions(values), DriverEnvironment(root: root, environment: environment))
}

/// A driver pointed at the shared test cluster as superuser.
func clusterDriver(_ cluster: RunningCluster, prefix: String? = nil) throws -> any SubProvisioner {
    var values = [
        "url": "postgres://postgres@127.0.0.1:\(cluster.port)/postgres",
        "passwordEnv": TestCluster.passwordVariable,
        "sslmode": "disable",
    ]
    if let prefix { values["prefix"] = prefix }
    return try makeDriver(values, environment: [TestCluster.passwordVariable: TestCluster.adminPassword])
}

let testHost = HostConfig(
    name: "pg", provides: [:], offerings: [:], resourceURI: "https://example.test", location: configLocation)

/// The context of instance `name`'s database, optionally with what a previous apply returned.
func context(_ driver: any SubProvisioner, _ name: String, recorded outputs: [String: String]? = nil) -> ResourceContext
{
    let spec = InstanceSpec(
        name: name, owner: "tester", provisioner: "pg", source: SourceLocation(path: "instances/\(name).yaml"))
    let fields = driver.fields(for: spec, host: testHost, dependencies: [:])
    let recorded = outputs.map {
        RecordedResource(
            kind: .database, host: "pg", driver: "postgres", specHash: fields.hash, fields: fields, outputs: $0)
    }
    return ResourceContext(name: name, owner: "tester", spec: spec, host: testHost, fields: fields, recorded: recorded)
}

/// The context of a pruned instance: no spec, no desired fields, only what was recorded.
func pruneContext(_ name: String, recorded outputs: [String: String]) -> ResourceContext {
    let recorded = RecordedResource(
        kind: .database, host: "pg", driver: "postgres", specHash: "", fields: FieldSet(), outputs: outputs)
    return ResourceContext(
        name: name, owner: "tester", spec: nil, host: testHost, fields: FieldSet(), recorded: recorded)
}

/// A direct libpq connection to the cluster.
func connect(
    _ cluster: RunningCluster, user: String = "postgres", password: String = TestCluster.adminPassword,
    database: String = "postgres"
) throws -> PGConnection {
    try PGConnection.connect(
        PGConnectParameters(
            host: "127.0.0.1", port: cluster.port, database: database, user: user, password: Secret(password),
            sslmode: "disable", connectTimeoutSeconds: 5))
}

/// Runs one admin query on the cluster and returns the first column of each row.
@discardableResult
func admin(_ cluster: RunningCluster, _ sql: String, _ parameters: [String] = []) throws -> [String?] {
    let connection = try connect(cluster)
    return try connection.query(sql, parameters).map { $0.first ?? nil }
}

/// Whether a database and a role of that name exist.
func exists(_ cluster: RunningCluster, _ name: String) throws -> (database: Bool, role: Bool) {
    let database = try admin(cluster, "SELECT 1 FROM pg_database WHERE datname = $1", [name])
    let role = try admin(cluster, "SELECT 1 FROM pg_roles WHERE rolname = $1", [name])
    return (!database.isEmpty, !role.isEmpty)
}
