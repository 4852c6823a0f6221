/// The three portable resource types every instance is made of, in creation order.
public enum ResourceKind: String, Sendable, CaseIterable, Codable, Comparable {
    case storage
    case database
    case instance

    /// Order in which resources are created (deleted in reverse).
    public var creationOrder: Int {
        switch self {
        case .storage: 0
        case .database: 1
        case .instance: 2
        }
    }

    public static func < (lhs: ResourceKind, rhs: ResourceKind) -> Bool {
        lhs.creationOrder < rhs.creationOrder
    }
}

/// The platform state an operator asks an instance to be in.
public enum PlatformState: String, Sendable, CaseIterable, Codable {
    case active
    case locked
    case maintenance
    case deactivated
}

/// What happens to a resource's data when its instance is pruned.
public enum DeletionPolicy: String, Sendable, CaseIterable, Codable {
    /// Forget the resource but keep its data; a later manifest of the same name adopts it.
    case retain = "Retain"
    /// Remove the data.
    case delete = "Delete"
}

/// What a run does with drift (a resource changed by hand): repair it, or only report it.
public enum DriftPolicy: String, Sendable, CaseIterable, Codable {
    /// Re-apply the manifest (the default).
    case repair = "Repair"
    /// Leave the resource as it is and report the drift (phase `drifted`).
    case report = "Report"
}

/// A position in a source file, for error messages (`PATH:LINE:COLUMN`).
public struct SourceLocation: Sendable, Hashable, Codable, CustomStringConvertible {
    /// Path relative to the workspace root.
    public var path: String
    public var line: Int
    public var column: Int

    public init(path: String, line: Int = 1, column: Int = 1) {
        self.path = path
        self.line = line
        self.column = column
    }

    /// A problem with a whole file (missing, too large, unreadable): no line or column, which would mean nothing.
    public static func wholeFile(_ path: String) -> SourceLocation { SourceLocation(path: path, line: 0, column: 0) }

    /// Whether this names a whole file rather than a position in it.
    public var isWholeFile: Bool { line == 0 }

    /// `PATH:LINE:COLUMN`, or `PATH` alone for a whole file.
    public var description: String { isWholeFile ? path : "\(path):\(line):\(column)" }
}

/// The desired state of one instance, as written in its manifest with defaults resolved.
public struct InstanceSpec: Sendable, Hashable, Codable {
    public var name: String
    public var labels: [String: String]
    public var owner: String
    /// The host (provisioner) name, resolved to config's `default` when absent.
    public var provisioner: String
    /// Chosen offerings with every offering's `suggested` value filled in.
    public var offerings: [String: String]
    public var state: PlatformState
    /// Storage quota in bytes, if any.
    public var storageQuota: Int64?
    public var storageDeletionPolicy: DeletionPolicy
    public var databaseDeletionPolicy: DeletionPolicy
    public var protect: Bool
    public var suspend: Bool
    /// Repair (default) or only report drift.
    public var driftPolicy: DriftPolicy
    /// Where the manifest document starts.
    public var source: SourceLocation

    public init(
        name: String, labels: [String: String] = [:], owner: String, provisioner: String,
        offerings: [String: String] = [:], state: PlatformState = .active, storageQuota: Int64? = nil,
        storageDeletionPolicy: DeletionPolicy = .retain, databaseDeletionPolicy: DeletionPolicy = .retain,
        protect: Bool = false, suspend: Bool = false, driftPolicy: DriftPolicy = .repair, source: SourceLocation
    ) {
        self.name = name
        self.labels = labels
        self.owner = owner
        self.provisioner = provisioner
        self.offerings = offerings
        self.state = state
        self.storageQuota = storageQuota
        self.storageDeletionPolicy = storageDeletionPolicy
        self.databaseDeletionPolicy = databaseDeletionPolicy
        self.protect = protect
        self.suspend = suspend
        self.driftPolicy = driftPolicy
        self.source = source
    }

    /// The deletion policy of one resource (the instance resource itself is always deleted).
    public func deletionPolicy(of kind: ResourceKind) -> DeletionPolicy {
        switch kind {
        case .storage: storageDeletionPolicy
        case .database: databaseDeletionPolicy
        case .instance: .delete
        }
    }
}

/// Names of values that must never be printed: they show as `(sensitive)`.
public enum Sensitive {
    /// The placeholder printed instead of a secret.
    public static let placeholder = "(sensitive)"

    /// Whether a field or output key holds a secret.
    public static func isSensitive(_ key: String) -> Bool {
        let lower = key.lowercased()
        return lower.hasSuffix("password") || lower.hasSuffix("secret") || lower.hasSuffix("token")
    }

    /// The value as it may be shown.
    public static func display(_ key: String, _ value: String) -> String {
        isSensitive(key) ? placeholder : value
    }
}

/// DNS-label rule for instance names: `^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`.
public enum InstanceName {
    /// Whether `name` is a valid DNS label.
    public static func isValid(_ name: String) -> Bool {
        let bytes = Array(name.utf8)
        guard !bytes.isEmpty, bytes.count <= 63 else { return false }
        func alnum(_ b: UInt8) -> Bool { (b >= 97 && b <= 122) || (b >= 48 && b <= 57) }
        guard alnum(bytes[0]), alnum(bytes[bytes.count - 1]) else { return false }
        return bytes.allSatisfy { alnum($0) || $0 == 45 }
    }
}

/// Byte quantities written with `Ki`, `Mi`, `Gi`, `Ti` suffixes.
public enum Quantity {
    /// Parses `5Gi` into bytes; nil when malformed or overflowing.
    public static func parse(_ text: String) -> Int64? {
        let units: [(String, Int64)] = [("Ki", 1 << 10), ("Mi", 1 << 20), ("Gi", 1 << 30), ("Ti", 1 << 40)]
        var digits = Substring(text)
        var factor: Int64 = 1
        for (suffix, value) in units where text.hasSuffix(suffix) {
            digits = text.dropLast(2)
            factor = value
        }
        guard !digits.isEmpty, digits.allSatisfy(\.isASCII), let number = Int64(digits), number >= 0 else {
            return nil
        }
        let (result, overflow) = number.multipliedReportingOverflow(by: factor)
        return overflow ? nil : result
    }

    /// Formats bytes back with the largest exact suffix.
    public static func format(_ bytes: Int64) -> String {
        let units: [(String, Int64)] = [("Ti", 1 << 40), ("Gi", 1 << 30), ("Mi", 1 << 20), ("Ki", 1 << 10)]
        for (suffix, value) in units where bytes >= value && bytes % value == 0 {
            return "\(bytes / value)\(suffix)"
        }
        return "\(bytes)"
    }
}
