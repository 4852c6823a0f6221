import ArgumentParser
import DFECore
import Foundation
import Logging
import Synchronization

/// Installs the process-wide log handler once: logfmt (default) or JSON lines on stderr.
enum LogSetup {
    enum Format: String, Sendable, CaseIterable, ExpressibleByArgument {
        case logfmt, json
    }

    private static let done = Mutex(false)

    static func bootstrap(level: Logger.Level, format: Format) {
        let first = done.withLock { done -> Bool in
            defer { done = true }
            return !done
        }
        guard first else { return }
        LoggingSystem.bootstrap { label in
            var handler = LineLogHandler(label: label, format: format)
            handler.logLevel = level
            return handler
        }
    }
}

/// One line per event on stderr, as logfmt or JSON. Values that look secret are masked.
struct LineLogHandler: LogHandler {
    let label: String
    let format: LogSetup.Format
    var logLevel: Logger.Level = .info
    var metadata: Logger.Metadata = [:]

    init(label: String, format: LogSetup.Format) {
        self.label = label
        self.format = format
    }

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        var fields: [(String, String)] = [
            ("ts", Self.timestamp()), ("level", event.level.rawValue), ("msg", "\(event.message)"),
        ]
        let merged = metadata.merging(event.metadata ?? [:]) { _, new in new }
        for (key, value) in merged.sorted(by: { $0.key < $1.key }) {
            let lower = key.lowercased()
            let secret = lower.hasSuffix("password") || lower.hasSuffix("secret") || lower.hasSuffix("token")
            fields.append((key, secret ? "(sensitive)" : "\(value)"))
        }
        let line: String
        switch format {
        case .logfmt:
            line = fields.map { "\($0.0)=\(Self.logfmtValue($0.1))" }.joined(separator: " ")
        case .json:
            var object: [String: String] = [:]
            for (key, value) in fields { object[key] = value }
            let data =
                (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes]))
                ?? Data()
            line = String(decoding: data, as: UTF8.self)
        }
        FileHandle.standardError.write(Data((line + "\n").utf8))
    }

    /// A logfmt value: quoted when needed; control characters escaped by ``TextEscape`` (one event, one line).
    static func logfmtValue(_ value: String) -> String {
        let needsQuotes =
            value.isEmpty
            || value.unicodeScalars.contains(where: {
                $0 == " " || $0 == "=" || $0 == "\"" || $0 == "\\" || TextEscape.needsEscape($0)
            })
        guard needsQuotes else { return value }
        let escaped = TextEscape.escape(
            value.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\""))
        return "\"\(escaped)\""
    }

    static func timestamp() -> String {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        return formatter.string(from: Date())
    }
}
