public import Foundation

/// Independent dotenv parsers run as child processes: python-dotenv and Debian's vlucas/phpdotenv (the loader
/// DreamFactory uses), to check that a `.env` reads back the same everywhere.
public enum DotEnvReaders {
    /// Whether we run in CI, where a missing parser is a failure rather than a skip.
    public static var inCI: Bool { ProcessInfo.processInfo.environment["CI"] == "true" }

    /// A reader that could not run.
    public struct Failure: Error, CustomStringConvertible {
        public var description: String
    }

    /// Every key of `path` as python-dotenv's `dotenv_values` reads it (`interpolate` as given).
    public static func python(_ path: String, interpolate: Bool = true) throws -> [String: String] {
        let script = """
            import json, sys
            from dotenv import dotenv_values
            print(json.dumps(dotenv_values(sys.argv[1], interpolate=sys.argv[2] == "1")))
            """
        return try json(run(["python3", "-c", script, path, interpolate ? "1" : "0"]))
    }

    /// Whether Debian's php-vlucas-phpdotenv and php are installed.
    public static var phpAvailable: Bool {
        FileManager.default.fileExists(atPath: phpAutoload) && (try? run(["php", "-v"])) != nil
    }

    static let phpAutoload = "/usr/share/php/Dotenv/autoload.php"

    /// Every key of `path` as phpdotenv's `Dotenv::parse` reads it.
    public static func php(_ path: String) throws -> [String: String] {
        let script = """
            require '\(phpAutoload)';
            echo json_encode(Dotenv\\Dotenv::parse(file_get_contents($argv[1])));
            """
        return try json(run(["php", "-r", script, path]))
    }

    static func json(_ data: Data) throws -> [String: String] {
        guard let object = try JSONSerialization.jsonObject(with: data) as? [String: Any] else {
            throw Failure(description: "parser printed no JSON object: \(String(decoding: data, as: UTF8.self))")
        }
        var values: [String: String] = [:]
        for (key, value) in object { values[key] = value as? String ?? "\(value)" }
        return values
    }

    /// Runs a command found on PATH and returns its stdout; throws on a non-zero exit.
    public static func run(_ arguments: [String], environment: [String: String]? = nil) throws -> Data {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = arguments
        if let environment { process.environment = environment }
        let out = Pipe()
        let err = Pipe()
        process.standardOutput = out
        process.standardError = err
        process.standardInput = FileHandle.nullDevice
        try process.run()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        let errors = err.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            throw Failure(
                description:
                    "\(arguments.first ?? "") exited \(process.terminationStatus): \(String(decoding: errors, as: UTF8.self))"
            )
        }
        return data
    }
}
