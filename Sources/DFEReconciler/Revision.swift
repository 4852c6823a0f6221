public import Foundation

/// The git revision of the manifests, so runs in a checkout are traceable.
public enum GitRevision {
    /// HEAD of the work tree containing `directory` (suffixed `-dirty` with uncommitted changes below it), or nil.
    public static func of(_ directory: URL) -> String? {
        guard let head = run(["-C", directory.path, "rev-parse", "--verify", "-q", "HEAD"]), !head.isEmpty else {
            return nil
        }
        let status = run(["--no-optional-locks", "-C", directory.path, "status", "--porcelain", "--", "."]) ?? ""
        return status.isEmpty ? head : head + "-dirty"
    }

    /// Runs git and returns its trimmed standard output, or nil on failure.
    static func run(_ arguments: [String]) -> String? {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["git"] + arguments
        let output = Pipe()
        process.standardOutput = output
        process.standardError = FileHandle(forWritingAtPath: "/dev/null")
        process.standardInput = FileHandle(forReadingAtPath: "/dev/null")
        do {
            try process.run()
        } catch {
            return nil
        }
        let data = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else { return nil }
        return String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
    }
}
