import DFECore
import DFEProvision
import DFETestSupport
import Foundation
import Testing

@testable import DFEPostgres

/// The factory's option validation and the pure parts of the driver.
struct PostgresOptionTests {
    let url = "postgres://admin@db.example.test:5433/maintenance"

    /// Builds the driver and returns the diagnostic it throws.
    func diagnostic(_ values: [String: String], environment: [String: String] = [:]) -> Diagnostic? {
        #expect(throws: Diagnostic.self) { try makeDriver(values, environment: environment) }
    }

    @Test func registersTheDatabaseDriverNamedPostgres() throws {
        var registry = DriverRegistry()
        PostgresDriver.register(into: &registry)
        #expect(registry.known(.database) == ["postgres"])
        let driver = try makeDriver(["url": url])
        #expect(driver.driverName == "postgres")
        #expect(driver is PostgresDatabaseProvisioner)
    }

    @Test func unsetPasswordEnvIsAConfigErrorAtThatOption() {
        let found = diagnostic(["url": url, "passwordEnv": "DFE_PG_PASSWORD"], environment: ["OTHER": "x"])
        #expect(found?.location == location(of: "passwordEnv"))
        #expect(found?.message.contains("config error") == true)
        #expect(found?.message.contains("DFE_PG_PASSWORD") == true)
        let empty = diagnostic(["url": url, "passwordEnv": "DFE_PG_PASSWORD"], environment: ["DFE_PG_PASSWORD": ""])
        #expect(empty?.location == location(of: "passwordEnv"))
    }

    @Test func passwordFileReadableByOthersIsRejected() throws {
        let dir = try TestCluster.makeTempDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let file = dir + "/admin-password"
        try "hunter2-admin\n".write(toFile: file, atomically: false, encoding: .utf8)
        try FileManager.default.setAttributes([.posixPermissions: 0o644], ofItemAtPath: file)
        let found = diagnostic(["url": url, "passwordFile": file])
        #expect(found?.location == location(of: "passwordFile"))
        #expect(found?.message.contains("0644") == true)
        #expect(found?.message.contains("0600") == true)
        #expect(found?.message.contains("hunter2") == false)

        for mode in [0o600, 0o400] {
            try FileManager.default.setAttributes([.posixPermissions: mode], ofItemAtPath: file)
            _ = try makeDriver(["url": url, "passwordFile": file])
        }
        // Relative paths resolve against the workspace root.
        _ = try makeDriver(["url": url, "passwordFile": "admin-password"], root: URL(fileURLWithPath: dir))
    }

    @Test func missingPasswordFileIsRejected() {
        let found = diagnostic(["url": url, "passwordFile": "/nonexistent/dfe/password"])
        #expect(found?.location == location(of: "passwordFile"))
        #expect(found?.message.contains("does not exist") == true)
    }

    @Test func bothPasswordEnvAndPasswordFileAreRejected() {
        let found = diagnostic(
            ["url": url, "passwordEnv": "PW", "passwordFile": "/x"], environment: ["PW": "secret"])
        #expect(found?.message.contains("not both") == true)
    }

    @Test func passwordInsideTheURLIsRejectedWithoutEchoingIt() {
        let found = diagnostic(["url": "postgres://admin:sup3rsecret@db:5432/postgres"])
        #expect(found?.location == location(of: "url"))
        #expect(found?.message.contains("passwordFile") == true)
        #expect(found?.message.contains("passwordEnv") == true)
        #expect(found?.message.contains("sup3rsecret") == false)
    }

    @Test(arguments: ["http://admin@db/x", "postgres://db:5432/x", "postgres://admin@db/x?sslmode=require", "nonsense"])
    func malformedURLIsRejected(_ text: String) {
        #expect(diagnostic(["url": text])?.location == location(of: "url"))
    }

    @Test func missingURLIsRejectedAtTheDriverReference() {
        #expect(diagnostic([:])?.location == configLocation)
    }

    @Test(arguments: ["Dfe_", "1abc", "dfe-", "", "dfé_"])
    func badPrefixIsRejected(_ prefix: String) {
        let found = diagnostic(["url": url, "prefix": prefix])
        #expect(found?.location == location(of: "prefix"))
        #expect(found?.message.contains("^[a-z_][a-z0-9_]*$") == true)
    }

    @Test func unknownOptionIsRejectedAtThatOption() {
        let found = diagnostic(["url": url, "pasword": "x"])
        #expect(found?.location == location(of: "pasword"))
        #expect(found?.message.contains("unknown option 'pasword'") == true)
    }

    @Test func badSslmodeAndConnectTimeoutAreRejected() {
        #expect(diagnostic(["url": url, "sslmode": "always"])?.location == location(of: "sslmode"))
        #expect(diagnostic(["url": url, "connectTimeout": "soon"])?.location == location(of: "connectTimeout"))
        #expect(diagnostic(["url": url, "connectTimeout": "0s"])?.location == location(of: "connectTimeout"))
    }

    @Test func optionsReachTheConnectionParameters() throws {
        let driver = try #require(
            try makeDriver(
                ["url": url, "passwordEnv": "PW", "sslmode": "require", "connectTimeout": "1500ms", "prefix": "t_"],
                environment: ["PW": "admin-secret"]) as? PostgresDatabaseProvisioner)
        let keywords = Dictionary(uniqueKeysWithValues: driver.server.keywords)
        #expect(keywords["host"] == "db.example.test")
        #expect(keywords["port"] == "5433")
        #expect(keywords["dbname"] == "maintenance")
        #expect(keywords["user"] == "admin")
        #expect(keywords["password"] == "admin-secret")
        #expect(keywords["sslmode"] == "require")
        #expect(keywords["connect_timeout"] == "2")
        #expect(keywords["application_name"] == "dfe")
        #expect(!String(describing: driver).contains("admin-secret"))
        #expect(!String(reflecting: driver).contains("admin-secret"))
        #expect(!"\(driver.server)".contains("admin-secret"))
    }

    @Test func defaultsArePreferSslFiveSecondsAndDfePrefix() throws {
        let driver = try #require(try makeDriver(["url": url]) as? PostgresDatabaseProvisioner)
        let keywords = Dictionary(uniqueKeysWithValues: driver.server.keywords)
        #expect(keywords["sslmode"] == "prefer")
        #expect(keywords["connect_timeout"] == "5")
        #expect(keywords["password"] == nil)
        #expect(driver.prefix == "dfe_")
    }

    @Test func fieldsNameRoleAndDatabaseFromPrefixAndInstanceAndHoldNoPassword() throws {
        let driver = try makeDriver(["url": url])
        let spec = InstanceSpec(name: "acme-shop-2", owner: "o", provisioner: "pg", source: configLocation)
        let fields = driver.fields(for: spec, host: testHost, dependencies: [:])
        #expect(
            fields.values == [
                "driver": "postgres", "host": "db.example.test", "port": "5433", "name": "dfe_acme_shop_2",
                "username": "dfe_acme_shop_2",
            ])
    }

    @Test func tooLongNameIsANonRetryableError() async throws {
        let driver = try makeDriver(["url": url])
        let name = String(repeating: "a", count: 60)
        let error = await #expect(throws: DriverError.self) { try await driver.apply(context(driver, name)) }
        #expect(error?.retryable == false)
    }
}

/// Quoting, validation and password generation.
struct PostgresSQLTests {
    @Test func identifiersAndLiteralsDoubleTheirQuotes() {
        #expect(SQL.identifier("dfe_x") == "\"dfe_x\"")
        #expect(SQL.identifier("a\"b") == "\"a\"\"b\"")
        #expect(SQL.literal("it's") == "'it''s'")
    }

    @Test func namesAreValidatedBeforeUse() {
        #expect(SQL.isValidName("dfe_shop_1"))
        #expect(SQL.isValidName("_x"))
        #expect(SQL.isValidName(String(repeating: "a", count: 63)))
        #expect(!SQL.isValidName(String(repeating: "a", count: 64)))
        for bad in ["", "1x", "Dfe", "dfe-x", "dfe x", "dfe\"x", "dfe;drop", "é"] {
            #expect(!SQL.isValidName(bad), "\(bad)")
        }
    }

    @Test func generatedPasswordsAreLongAlphanumericAndDistinct() {
        let passwords = (0..<20).map { _ in SQL.generatePassword() }
        #expect(Set(passwords).count == passwords.count)
        for password in passwords {
            #expect(password.count >= 32)
            #expect(password.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber) })
            #expect(SQL.isSafePassword(password))
        }
        #expect(!SQL.isSafePassword("short"))
        #expect(!SQL.isSafePassword("a\\" + String(repeating: "b", count: 30)))
    }
}
