public import Foundation

/// Result of running the `dfe` executable.
public struct ProcessResult: Sendable {
    public var status: Int32
    public var stdout: String
    public var stderr: String
}

/// Runs the built `dfe` binary as a child process, as an operator would.
public enum DFEBinary {
    /// The package root, found from this file's path.
    public static let packageRoot: URL = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent()

    /// The `dfe` executable next to the test bundle (same build directory), or `DFE_BIN`.
    public static var url: URL {
        if let explicit = ProcessInfo.processInfo.environment["DFE_BIN"] { return URL(fileURLWithPath: explicit) }
        let bundle = Bundle.main.bundleURL
        for directory in [
            bundle, bundle.deletingLastPathComponent(), bundle.deletingLastPathComponent().deletingLastPathComponent(),
        ] {
            let candidate = directory.appendingPathComponent("dfe")
            var isDirectory: ObjCBool = false
            if FileManager.default.fileExists(atPath: candidate.path, isDirectory: &isDirectory), !isDirectory.boolValue
            {
                return candidate
            }
        }
        return packageRoot.appendingPathComponent(".build/debug/dfe")
    }

    /// A `dfe ARGS` process in `directory` with `NO_COLOR`, extra environment and stdin from /dev/null.
    static func makeProcess(
        _ arguments: [String], in directory: URL, environment: [String: String], prefix: [String] = []
    ) -> Process {
        let process = Process()
        if let first = prefix.first {
            process.executableURL = URL(fileURLWithPath: first)
            process.arguments = prefix.dropFirst() + [url.path] + arguments
        } else {
            process.executableURL = url
            process.arguments = arguments
        }
        process.currentDirectoryURL = directory
        var env = ProcessInfo.processInfo.environment
        env["NO_COLOR"] = "1"
        for (key, value) in environment { env[key] = value }
        process.environment = env
        process.standardInput = FileHandle(forReadingAtPath: "/dev/null")
        return process
    }

    /// Starts `dfe ARGS` in `directory` with its output going to files; returns the process (not yet finished).
    public static func start(
        _ arguments: [String], in directory: URL, environment: [String: String] = [:], output: URL? = nil
    ) throws -> Process {
        let process = makeProcess(arguments, in: directory, environment: environment)
        if let output {
            FileManager.default.createFile(atPath: output.path, contents: nil)
            let handle = try FileHandle(forWritingTo: output)
            process.standardOutput = handle
            process.standardError = handle
        } else {
            process.standardOutput = FileHandle(forWritingAtPath: "/dev/null")
            process.standardError = FileHandle(forWritingAtPath: "/dev/null")
        }
        try process.run()
        return process
    }

    /// Runs `dfe ARGS` in `directory` to completion and captures its output.
    public static func run(
        _ arguments: [String], in directory: URL, environment: [String: String] = [:], prefix: [String] = []
    ) async throws -> ProcessResult {
        let outURL = FileManager.default.temporaryDirectory.appendingPathComponent("dfe-out-\(UUID().uuidString)")
        let errURL = FileManager.default.temporaryDirectory.appendingPathComponent("dfe-err-\(UUID().uuidString)")
        defer {
            try? FileManager.default.removeItem(at: outURL)
            try? FileManager.default.removeItem(at: errURL)
        }
        FileManager.default.createFile(atPath: outURL.path, contents: nil)
        FileManager.default.createFile(atPath: errURL.path, contents: nil)
        let process = makeProcess(arguments, in: directory, environment: environment, prefix: prefix)
        let outHandle = try FileHandle(forWritingTo: outURL)
        let errHandle = try FileHandle(forWritingTo: errURL)
        process.standardOutput = outHandle
        process.standardError = errHandle
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
            process.terminationHandler = { _ in continuation.resume() }
            do {
                try process.run()
            } catch {
                process.terminationHandler = nil
                continuation.resume(throwing: error)
            }
        }
        try outHandle.close()
        try errHandle.close()
        return ProcessResult(
            status: process.terminationStatus,
            stdout: (try? String(contentsOf: outURL, encoding: .utf8)) ?? "",
            stderr: (try? String(contentsOf: errURL, encoding: .utf8)) ?? "")
    }

    /// Parses stdout as a JSON object.
    public static func json(_ result: ProcessResult) -> [String: Any]? {
        guard let data = result.stdout.data(using: .utf8) else { return nil }
        return (try? JSONSerialization.jsonObject(with: data)) as? [String: Any]
    }
}
