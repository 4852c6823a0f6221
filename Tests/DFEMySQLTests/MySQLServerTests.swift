import DFECore
import DFEProvision
import Foundation
import Testing

@testable import DFEMySQL

/// The driver against a real MariaDB server started by the tests.
@Suite(.enabled(if: TestServer.enabled, "MariaDB is missing (install mariadb-server, mariadb-client)"))
struct MySQLServerTests {
    @Test func applyCreatesADatabaseAndAUserGrantedOnThatDatabaseOnly() async throws {
        let server = try await TestServer.shared()
        let driver = try serverDriver(server)
        let name = uniqueName("app")
        let other = uniqueName("other")
        let object = objectName(name)
        #expect(try await driver.observe(context(driver, name)) == .missing)
        let outputs = try await driver.apply(context(driver, name))
        _ = try await driver.apply(context(driver, other))
        #expect(outputs["driver"] == "mysql")
        #expect(outputs["name"] == object)
        #expect(outputs["username"] == object)
        #expect(outputs["port"] == String(server.port))
        let password = try #require(outputs["password"])
        #expect(password.count == 40)
        #expect(try await driver.observe(context(driver, name, recorded: outputs)) == .ok)
        #expect(try exists(server, object) == (true, true))

        let own = try connect(server, user: object, password: password, database: object)
        try own.execute("CREATE TABLE customers (id INT PRIMARY KEY)")
        try own.execute("INSERT INTO customers VALUES (1)")
        #expect(
            Set(try own.query("SHOW DATABASES").compactMap { $0.first ?? nil }) == ["information_schema", object])
        // Another instance's database is out of reach (1044), also through the underscore wildcard.
        #expect(throws: MySQLFailure.self) {
            _ = try connect(server, user: object, password: password, database: objectName(other))
        }
        #expect(throws: MySQLFailure.self) {
            try own.execute("CREATE TABLE \(MySQLSQL.identifier(objectName(other))).stolen (id INT)")
        }
        // The ownership record lives in the database.
        #expect(try admin(server, "SELECT instance FROM `\(object)`.dfe_owner") == [name])
    }

    @Test func applyIsIdempotentAndKeepsTheRecordedPassword() async throws {
        let server = try await TestServer.shared()
        let driver = try serverDriver(server)
        let name = uniqueName("again")
        let first = try await driver.apply(context(driver, name))
        let second = try await driver.apply(context(driver, name, recorded: first))
        #expect(second == first)
        #expect(try await driver.observe(context(driver, name, recorded: second)) == .ok)
    }

    @Test func droppedDatabaseDroppedUserAndChangedPasswordAreDriftAndRepaired() async throws {
        let server = try await TestServer.shared()
        let driver = try serverDriver(server)
        let name = uniqueName("drift")
        let object = objectName(name)
        let outputs = try await driver.apply(context(driver, name))
        let ctx = context(driver, name, recorded: outputs)
        let password = try #require(outputs["password"])

        try admin(server, "DROP DATABASE `\(object)`")
        #expect(try await driver.observe(ctx) == .drifted("database \(object) missing"))
        #expect(try await driver.apply(ctx) == outputs)
        #expect(try await driver.observe(ctx) == .ok)

        try admin(server, "DROP USER '\(object)'@'%'")
        #expect(try await driver.observe(ctx) == .drifted("user \(object) missing"))
        _ = try await driver.apply(ctx)
        #expect(try await driver.observe(ctx) == .ok)

        try admin(server, "ALTER USER '\(object)'@'%' IDENTIFIED BY 'changed-by-hand-1234'")
        #expect(try await driver.observe(ctx) == .drifted("password of user \(object) changed"))
        _ = try await driver.apply(ctx)
        #expect(try await driver.observe(ctx) == .ok)
        _ = try connect(server, user: object, password: password, database: object)
    }

    @Test func aDatabaseWithoutOurRecordIsAConflictNeverAdoptedOrDropped() async throws {
        let server = try await TestServer.shared()
        let driver = try serverDriver(server)
        let name = uniqueName("foreign")
        let object = objectName(name)
        try admin(server, "CREATE DATABASE `\(object)`")
        try admin(server, "CREATE TABLE `\(object)`.precious (id INT)")
        defer { _ = try? admin(server, "DROP DATABASE `\(object)`") }
        guard case .conflict(let message) = try await driver.observe(context(driver, name)) else {
            Issue.record("a foreign database must be a conflict")
            return
        }
        #expect(message.contains("no dfe ownership record"))
        await #expect {
            _ = try await driver.apply(context(driver, name))
        } throws: { ($0 as? DriverError)?.retryable == false }
        await #expect {
            try await driver.delete(pruneContext(name, recorded: ["name": object, "username": object]))
        } throws: { ($0 as? DriverError)?.retryable == false }
        #expect(try exists(server, object) == (true, false))
        #expect(try admin(server, "SHOW TABLES FROM `\(object)`") == ["precious"])
    }

    @Test func aUserThisStateNeverCreatedIsAConflict() async throws {
        let server = try await TestServer.shared()
        let driver = try serverDriver(server)
        let name = uniqueName("squat")
        let object = objectName(name)
        try admin(server, "CREATE USER '\(object)'@'%' IDENTIFIED BY 'someone-elses-password'")
        defer { _ = try? admin(server, "DROP USER '\(object)'@'%'") }
        guard case .conflict = try await driver.observe(context(driver, name)) else {
            Issue.record("a foreign user must be a conflict")
            return
        }
        await #expect(throws: DriverError.self) { _ = try await driver.apply(context(driver, name)) }
        // Not re-passworded: the other password still works.
        _ = try connect(server, user: object, password: "someone-elses-password")
    }

    @Test func deleteDropsTheDatabaseAndTheUserAndAbsentIsSuccess() async throws {
        let server = try await TestServer.shared()
        let driver = try serverDriver(server)
        let name = uniqueName("gone")
        let object = objectName(name)
        let outputs = try await driver.apply(context(driver, name))
        try await driver.delete(pruneContext(name, recorded: outputs))
        #expect(try exists(server, object) == (false, false))
        try await driver.delete(pruneContext(name, recorded: outputs))
    }

    @Test func theGeneratedPasswordNeverReachesTheGeneralQueryLog() async throws {
        let server = try await TestServer.shared()
        let driver = try serverDriver(server)
        let name = uniqueName("quiet")
        let outputs = try await driver.apply(context(driver, name))
        let password = try #require(outputs["password"])
        try admin(server, "ALTER USER '\(objectName(name))'@'%' IDENTIFIED BY 'hand-changed-pass-77'")
        _ = try await driver.apply(context(driver, name, recorded: outputs))
        try admin(server, "FLUSH LOGS")
        let log = try String(contentsOfFile: server.generalLog, encoding: .utf8)
        // The log is on (the admin's own statements are there), but not the driver's password.
        #expect(log.contains("hand-changed-pass-77"))
        #expect(!log.contains(password))
    }

    @Test func aDownServerIsARetryableErrorNamingTheAddressWithoutThePassword() async throws {
        let port = try TestServer.freePort()
        let driver = try makeDriver(
            ["url": "mysql://admin@127.0.0.1:\(port)", "passwordEnv": "PW", "connectTimeout": "1s"],
            environment: ["PW": "very-secret-admin-pw"])
        await #expect {
            _ = try await driver.observe(context(driver, "down"))
        } throws: { error in
            let driverError = error as? DriverError
            return driverError?.retryable == true && driverError?.message.contains("127.0.0.1:\(port)") == true
                && !(driverError?.message.contains("very-secret-admin-pw") ?? true)
        }
    }
}

@Suite struct MySQLOptionTests {
    func diagnostic(_ values: [String: String], environment: [String: String] = ["PW": "x"]) -> Diagnostic? {
        do {
            _ = try makeDriver(values, environment: environment)
            return nil
        } catch {
            return error as? Diagnostic
        }
    }

    @Test func badOptionsAreLocatedErrors() throws {
        let base = ["url": "mysql://admin@127.0.0.1:3306", "passwordEnv": "PW"]
        #expect(diagnostic(base) == nil)
        let withPassword = diagnostic(["url": "mysql://admin:hunter2@127.0.0.1", "passwordEnv": "PW"])
        #expect(withPassword?.message.contains("must not contain a password") == true)
        #expect(withPassword?.message.contains("hunter2") == false)
        #expect(withPassword?.location == location(of: "url"))
        #expect(diagnostic(base, environment: [:])?.location == location(of: "passwordEnv"))
        #expect(diagnostic(base.merging(["prefix": "Bad-"]) { $1 })?.location == location(of: "prefix"))
        #expect(diagnostic(base.merging(["userHost": "a'b"]) { $1 })?.location == location(of: "userHost"))
        #expect(diagnostic(base.merging(["colour": "x"]) { $1 })?.message.contains("unknown option 'colour'") == true)
        #expect(
            diagnostic(["url": "mysql://admin@127.0.0.1/db", "passwordEnv": "PW"])?.location == location(of: "url"))
    }

    @Test func aPasswordFileMustBeMode0600() throws {
        let path = NSTemporaryDirectory() + "dfe-my-pw-\(UUID().uuidString.prefix(6))"
        try "secret\n".write(toFile: path, atomically: true, encoding: .utf8)
        defer { unlink(path) }
        chmod(path, 0o644)
        let loose = diagnostic(["url": "mysql://admin@127.0.0.1", "passwordFile": path])
        #expect(loose?.message.contains("0600") == true)
        chmod(path, 0o600)
        #expect(diagnostic(["url": "mysql://admin@127.0.0.1", "passwordFile": path]) == nil)
    }

    @Test func namesOverThirtyTwoCharactersAreAProblemAtValidation() throws {
        let driver = try makeDriver(["url": "mysql://admin@127.0.0.1", "passwordEnv": "PW"], environment: ["PW": "x"])
        let fits = InstanceSpec(
            name: String(repeating: "a", count: 28), owner: "o", provisioner: "my", source: configLocation)
        var long = fits
        long.name = String(repeating: "a", count: 29)
        #expect(driver.problems(for: fits).isEmpty)
        #expect(driver.problems(for: long).first?.contains("at most 28 characters") == true)
    }

    @Test func identifiersAreBacktickQuotedAndGrantWildcardsEscaped() {
        #expect(MySQLSQL.identifier("a`b") == "`a``b`")
        #expect(MySQLSQL.grantPattern("dfe_a_b") == #"`dfe\_a\_b`"#)
        #expect(MySQLSQL.literal("it's") == "'it''s'")
        #expect(!MySQLSQL.isValidName("dfe-x") && !MySQLSQL.isValidName(String(repeating: "a", count: 33)))
    }
}
