public import Foundation

/// Who a lease holder is, precisely enough to tell processes apart across PID namespaces on one host.
///
/// Messages show `PID@HOST`; the boot id, the PID namespace (inode of `/proc/self/ns/pid`) and the process
/// start time (field 22 of `/proc/self/stat`, clock ticks since boot) make the identity unique: two containers
/// whose processes are both PID 1 on one host name differ in their PID namespace.
public struct LeaseIdentity: Sendable, Hashable, CustomStringConvertible {
    public var pid: Int32
    public var host: String
    /// `/proc/sys/kernel/random/boot_id`, empty when unknown.
    public var bootID: String
    /// The inode of this process's PID namespace, empty when unknown.
    public var pidNamespace: String
    /// The process start time in clock ticks since boot, empty when unknown.
    public var startTime: String

    public init(pid: Int32, host: String, bootID: String, pidNamespace: String, startTime: String) {
        self.pid = pid
        self.host = host
        self.bootID = bootID
        self.pidNamespace = pidNamespace
        self.startTime = startTime
    }

    /// `PID@HOST`.
    public var description: String { "\(pid)@\(host)" }

    /// This process.
    public static func current() -> LeaseIdentity {
        let pid = getpid()
        let namespace = ProcessProbe.pidNamespace()
        // /proc must be this namespace's own (as with `--mount-proc`) for the start time to be ours.
        let procIsOurs = ProcessProbe.statFields("self")?.pid == pid
        return LeaseIdentity(
            pid: pid, host: hostName(), bootID: ProcessProbe.bootID() ?? "",
            pidNamespace: procIsOurs ? (namespace ?? "") : "",
            startTime: procIsOurs ? (ProcessProbe.startTime(pid) ?? "") : "")
    }

    /// This machine's host name.
    public static func hostName() -> String {
        var buffer = [CChar](repeating: 0, count: 256)
        guard gethostname(&buffer, buffer.count - 1) == 0 else { return "localhost" }
        return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// Whether `holder` is provably gone, seen from this process (`self`).
    ///
    /// Only a holder in this boot and this PID namespace can be proven gone: its PID no longer exists, or
    /// exists with another start time (the PID was reused). Anything unknown is not proof.
    public func provesGone(_ holder: LeaseIdentity, probe: ProcessProbe = .live) -> Bool {
        guard !bootID.isEmpty, !pidNamespace.isEmpty, !holder.startTime.isEmpty else { return false }
        guard holder.bootID == bootID, holder.pidNamespace == pidNamespace else { return false }
        guard let started = probe.startTime(holder.pid) else { return true }
        return started != holder.startTime
    }
}

/// Reads what `/proc` says about processes (injectable so a test can inject a failure).
public struct ProcessProbe: Sendable {
    /// The start time of a live PID, nil when no such process exists.
    public var startTime: @Sendable (Int32) -> String?

    public init(startTime: @escaping @Sendable (Int32) -> String?) { self.startTime = startTime }

    /// The real `/proc`.
    public static let live = ProcessProbe { pid in
        if let time = ProcessProbe.startTime(pid) { return time }
        // No stat file: gone, unless the process exists but /proc hides it (then it cannot be proven gone).
        if kill(pid, 0) == 0 || errno == EPERM { return "unknown" }
        return nil
    }

    /// `/proc/sys/kernel/random/boot_id`.
    static func bootID() -> String? {
        guard let text = try? String(contentsOfFile: "/proc/sys/kernel/random/boot_id", encoding: .utf8) else {
            return nil
        }
        let trimmed = text.trimmingCharacters(in: .whitespacesAndNewlines)
        return trimmed.isEmpty ? nil : trimmed
    }

    /// The inode of `/proc/self/ns/pid`.
    static func pidNamespace() -> String? {
        var info = stat()
        guard stat("/proc/self/ns/pid", &info) == 0 else { return nil }
        return String(info.st_ino)
    }

    /// Field 22 (starttime) of `/proc/PID/stat`.
    static func startTime(_ pid: Int32) -> String? { statFields(String(pid))?.startTime }

    /// The PID and start time in `/proc/NAME/stat` (the command name may hold spaces and parentheses).
    static func statFields(_ name: String) -> (pid: Int32, startTime: String)? {
        guard let text = try? String(contentsOfFile: "/proc/\(name)/stat", encoding: .utf8),
            let open = text.firstIndex(of: "("), let close = text.lastIndex(of: ")"),
            let pid = Int32(text[..<open].trimmingCharacters(in: .whitespaces))
        else { return nil }
        // After ")": field 3 (state) onwards; starttime is field 22, the 20th of these.
        let rest = text[text.index(after: close)...].split(separator: " ", omittingEmptySubsequences: true)
        guard rest.count >= 20 else { return nil }
        return (pid, String(rest[19]))
    }
}
