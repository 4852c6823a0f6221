import DFECore
import DFEDrivers
import DFEProvision
import DFETestSupport
import Foundation
import Testing

/// A host whose `instance-version` items add hostile-looking environment variables.
let envHost: HostConfig = {
    var host = testHost
    host.offerings["instance-version"]?.env = [
        "7.4": [
            "DF_VERSION": "7.4",
            "SPACES": "  two  spaces  ",
            "QUOTES": #"she said "hi" and 'bye'"#,
            "HASH": "not # a comment",
            "DOLLAR": "$HOME and $1 and a$b",
            "BRACE": "${HOME} stays literal",
            "BACKSLASH": #"C:\new\table \\ done \" and \' ok"#,
            "NEWLINES": "line one\nline two\r\n\tindented",
            "UNICODE": "größe ✓",
            "EMPTY": "",
        ],
        "6.2": ["DF_VERSION": "6.2"],
    ]
    return host
}()

@Suite struct EnvFileTests {
    /// What the `.env` of `name` must hold with the SQLite fixture.
    func expectedEnv(_ fixture: InstanceFixture, _ name: String, appKey: String) -> [String: String] {
        [
            "APP_NAME": name,
            "APP_ENV": "production",
            "APP_DEBUG": "false",
            "APP_KEY": appKey,
            "APP_URL": "https://\(name).dfe.localhost",
            "DB_CONNECTION": "sqlite",
            "DB_DATABASE": fixture.directory.path("databases/\(name).sqlite"),
            "CACHE_STORE": "file",
            "CACHE_DRIVER": "file",
            "DF_MANAGED": "true",
        ]
    }

    /// Reads the file with python-dotenv (required) and phpdotenv (required in CI), checks both agree.
    func parsedByEveryParser(_ path: String, skipInterpolation: Set<String> = []) throws -> [String: String] {
        let python = try DotEnvReaders.python(path)
        let raw = try DotEnvReaders.python(path, interpolate: false)
        let ours = DotEnv.parse(String(decoding: try #require(Files.bytes(path)), as: UTF8.self))
        // python-dotenv 1.x expands `${NAME}` even inside single quotes unless interpolation is off; phpdotenv
        // (DreamFactory's loader) reads single quotes literally: compare those keys with interpolation off.
        for (key, value) in raw {
            if skipInterpolation.contains(key) {
                #expect(ours[key] == value, "\(key)")
            } else {
                #expect(python[key] == value, "\(key)")
            }
        }
        #expect(Set(python.keys) == Set(ours.keys))
        #expect(raw == ours)
        if DotEnvReaders.phpAvailable {
            let php = try DotEnvReaders.php(path)
            #expect(php == ours, "phpdotenv reads the file differently")
        } else if DotEnvReaders.inCI {
            Issue.record("php-cli and php-vlucas-phpdotenv are required in CI (scripts/test installs them)")
        }
        return ours
    }

    @Test func envFileHasTheDesignKeysAndMode0600() async throws {
        let fixture = try InstanceFixture()
        let spec = testSpec("acme-prod")
        let ctx = fixture.context(spec)
        let outputs = try await fixture.instance.apply(ctx)
        let path = fixture.envPath("acme-prod")
        #expect(Files.mode(path) == 0o600)
        #expect(outputs["envPath"] == path)
        let values = try parsedByEveryParser(path)
        let appKey = try #require(values["APP_KEY"])
        #expect(appKey.hasPrefix("base64:"))
        #expect(Data(base64Encoded: String(appKey.dropFirst(7)))?.count == 32)
        #expect(outputs["appKeySecret"] == appKey)
        for (key, value) in expectedEnv(fixture, "acme-prod", appKey: appKey) {
            #expect(values[key] == value, "\(key)")
        }
        let storage = try #require(ctx.dependencies[.storage])
        #expect(values["DF_MANAGED_STORAGE_PATH"] == storage["path"])
        #expect(values["DF_MANAGED_LOG_PATH"] == (storage["privatePath"] ?? "?") + "/logs")
        #expect(values["DF_MANAGED_CACHE_PATH"] == (storage["privatePath"] ?? "?") + "/.cache")
        #expect(values["DB_HOST"] == nil && values["DB_PASSWORD"] == nil)
        #expect(try await fixture.instance.observe(fixture.context(spec)) == .ok)
    }

    @Test func appKeyIsGeneratedOnceAndStableAcrossRunsAndAdoption() async throws {
        let fixture = try InstanceFixture()
        let spec = testSpec("acme")
        let first = try await fixture.instance.apply(fixture.context(spec))
        let bytes = Files.bytes(fixture.envPath("acme"))
        let recorded = fixture.recordedOutputs(fixture.context(spec), first)
        let second = try await fixture.instance.apply(fixture.context(spec, recorded: recorded))
        #expect(second["appKeySecret"] == first["appKeySecret"])
        #expect(Files.bytes(fixture.envPath("acme")) == bytes)
        // State lost: the key is read back from the file.
        let adopted = try await fixture.instance.apply(fixture.context(spec))
        #expect(adopted["appKeySecret"] == first["appKeySecret"])
        let other = try await fixture.instance.apply(fixture.context(testSpec("other")))
        #expect(other["appKeySecret"] != first["appKeySecret"])
    }

    @Test func offeringEnvValuesReadBackIdenticallyInEveryParser() async throws {
        let fixture = try InstanceFixture()
        let spec = testSpec("acme")
        _ = try await fixture.instance.apply(fixture.context(spec, host: envHost))
        let values = try parsedByEveryParser(fixture.envPath("acme"), skipInterpolation: ["BRACE"])
        for (key, value) in envHost.offerings["instance-version"]?.env["7.4"] ?? [:] {
            #expect(values[key] == value, "\(key)")
        }
        #expect(values["DB_CONNECTION"] == "sqlite")
    }

    @Test func changedOfferingEnvRewritesTheFileKeepingTheKey() async throws {
        let fixture = try InstanceFixture()
        let current = fixture.context(testSpec("acme"), host: envHost)
        let first = try await fixture.instance.apply(current)
        let older = fixture.context(
            testSpec("acme", offerings: ["instance-version": "6.2"]), recorded: fixture.recordedOutputs(current, first),
            host: envHost)
        #expect(older.fields.hash != current.fields.hash)
        _ = try await fixture.instance.apply(older)
        let values = try parsedByEveryParser(fixture.envPath("acme"))
        #expect(values["DF_VERSION"] == "6.2")
        #expect(values["SPACES"] == nil)
        #expect(values["APP_KEY"] == first["appKeySecret"])
    }

    @Test func handEditedEnvIsDriftAndRepaired() async throws {
        let fixture = try InstanceFixture()
        let spec = testSpec("acme")
        let outputs = try await fixture.instance.apply(fixture.context(spec))
        let path = fixture.envPath("acme")
        let original = try #require(Files.bytes(path))
        try Files.write(path, String(decoding: original, as: UTF8.self) + "APP_DEBUG=true\n")
        chmod(path, 0o600)
        let ctx = fixture.context(spec, recorded: fixture.recordedOutputs(fixture.context(spec), outputs))
        guard case .drifted(let detail) = try await fixture.instance.observe(ctx) else {
            Issue.record("a hand-edited .env must be observed as drift")
            return
        }
        #expect(detail.contains(".env"))
        // Without a record the edit is found too (by rendering).
        #expect(try await fixture.instance.observe(fixture.context(spec)) != .ok)
        _ = try await fixture.instance.apply(ctx)
        #expect(Files.bytes(path) == original)
        #expect(try await fixture.instance.observe(ctx) == .ok)
    }

    @Test func missingOrWorldReadableEnvIsDriftAndRepaired() async throws {
        let fixture = try InstanceFixture()
        let spec = testSpec("acme")
        let outputs = try await fixture.instance.apply(fixture.context(spec))
        let ctx = fixture.context(spec, recorded: fixture.recordedOutputs(fixture.context(spec), outputs))
        let path = fixture.envPath("acme")
        chmod(path, 0o644)
        #expect(try await fixture.instance.observe(ctx) == .drifted(".env mode is not 0600"))
        unlink(path)
        #expect(try await fixture.instance.observe(ctx) == .drifted(".env missing"))
        let again = try await fixture.instance.apply(ctx)
        #expect(Files.mode(path) == 0o600)
        #expect(again["appKeySecret"] == outputs["appKeySecret"])
        #expect(try await fixture.instance.observe(ctx) == .ok)
    }

    @Test func serverDatabaseConnectionIsWrittenWithItsPassword() async throws {
        let fixture = try InstanceFixture()
        let spec = testSpec("acme")
        var ctx = fixture.context(spec)
        ctx.dependencies[.database] = [
            "driver": "mysql", "host": "127.0.0.1", "port": "3306", "name": "dfe_acme", "username": "dfe_acme",
            "password": "pa$$ \"w0rd\" #1",
        ]
        _ = try await fixture.instance.apply(ctx)
        let values = try parsedByEveryParser(fixture.envPath("acme"))
        #expect(values["DB_CONNECTION"] == "mysql")
        #expect(values["DB_HOST"] == "127.0.0.1")
        #expect(values["DB_PORT"] == "3306")
        #expect(values["DB_DATABASE"] == "dfe_acme")
        #expect(values["DB_USERNAME"] == "dfe_acme")
        #expect(values["DB_PASSWORD"] == "pa$$ \"w0rd\" #1")
        ctx.dependencies[.database]?["driver"] = "postgres"
        _ = try await fixture.instance.apply(ctx)
        #expect(try parsedByEveryParser(fixture.envPath("acme"))["DB_CONNECTION"] == "pgsql")
    }

    @Test func quotingRejectsWhatParsersWouldReadDifferently() {
        #expect(DotEnv.problem(with: "${A}'b") != nil)
        #expect(DotEnv.problem(with: "${A}\nb") != nil)
        #expect(DotEnv.problem(with: #"${A}\\b"#) != nil)
        #expect(DotEnv.problem(with: "a\u{1}b") != nil)
        #expect(DotEnv.problem(with: #"ends in \"#) != nil)
        #expect(DotEnv.problem(with: "a\u{7f}b") != nil)
        #expect(DotEnv.problem(with: "plain $x # y \"z\" \\ ok") == nil)
        #expect(DotEnv.isValidKey("DF_VERSION") && !DotEnv.isValidKey("df-version") && !DotEnv.isValidKey("1A"))
        guard case .failure(let error) = DotEnv.render([("BAD", "${A}'")]) else {
            Issue.record("an unrepresentable value must not render")
            return
        }
        #expect(error.key == "BAD")
    }
}
