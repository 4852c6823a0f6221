/// Dotenv files that vlucas/phpdotenv (DreamFactory's loader) and python-dotenv read back identically.
///
/// Values are double-quoted with `\\`, `\"`, `\n`, `\r` and `\t` escapes. A value containing `${` is
/// single-quoted instead (both parsers expand `${NAME}` inside double quotes, differently), which is only
/// possible when it holds no `'`, no line break and no `\\` (python-dotenv unescapes `\\` in single quotes,
/// phpdotenv does not). A value ending in a backslash cannot be read back by python-dotenv in either quoting.
/// Other control characters are never written.
public enum DotEnv {
    /// The variables the `dreamfactory` instance driver writes itself; an offering's `env:` may not set them.
    public static let managedKeys: Set<String> = [
        "APP_NAME", "APP_ENV", "APP_DEBUG", "APP_KEY", "APP_URL", "DB_CONNECTION", "DB_HOST", "DB_PORT",
        "DB_DATABASE", "DB_USERNAME", "DB_PASSWORD", "CACHE_STORE", "CACHE_DRIVER", "DF_MANAGED",
        "DF_MANAGED_STORAGE_PATH", "DF_MANAGED_LOG_PATH", "DF_MANAGED_CACHE_PATH",
    ]

    /// Whether `key` is a portable variable name: `^[A-Z_][A-Z0-9_]*$`.
    public static func isValidKey(_ key: String) -> Bool {
        let bytes = Array(key.utf8)
        guard let first = bytes.first else { return false }
        func upper(_ b: UInt8) -> Bool { b >= 65 && b <= 90 }
        func digit(_ b: UInt8) -> Bool { b >= 48 && b <= 57 }
        guard upper(first) || first == 95 else { return false }
        return bytes.allSatisfy { upper($0) || digit($0) || $0 == 95 }
    }

    /// Why `value` cannot be written so that every parser reads it back the same, or nil when it can.
    public static func problem(with value: String) -> String? {
        for scalar in value.unicodeScalars {
            let code = scalar.value
            if (code < 0x20 && code != 0x0A && code != 0x0D && code != 0x09) || code == 0x7F {
                return "it contains a control character"
            }
        }
        // python-dotenv's quoted-value pattern takes `\"` for an escaped quote even after an escaped backslash.
        if value.hasSuffix("\\") { return "it ends with a backslash" }
        guard value.contains("${") else { return nil }
        if value.contains("'") || value.contains("\n") || value.contains("\r") || value.contains("\\\\") {
            return "a value containing '${' may not also contain a quote ('), a line break or two backslashes"
        }
        return nil
    }

    /// The quoted form of `value`, or nil when `problem(with:)` reports one.
    public static func quote(_ value: String) -> String? {
        guard problem(with: value) == nil else { return nil }
        if value.contains("${") { return "'" + value + "'" }
        var out = "\""
        for character in value.unicodeScalars {
            switch character {
            case "\\": out += "\\\\"
            case "\"": out += "\\\""
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            default: out.unicodeScalars.append(character)
            }
        }
        return out + "\""
    }

    /// The file text for `entries` in the given order, one `KEY="VALUE"` line each, or the first entry that cannot be written.
    public static func render(_ entries: [(key: String, value: String)]) -> Result<String, RenderError> {
        var text = ""
        for (key, value) in entries {
            guard isValidKey(key) else { return .failure(RenderError(key: key, reason: "not a valid variable name")) }
            guard let quoted = quote(value) else {
                return .failure(RenderError(key: key, reason: problem(with: value) ?? "cannot be quoted"))
            }
            text += key + "=" + quoted + "\n"
        }
        return .success(text)
    }

    /// A variable that cannot be written.
    public struct RenderError: Error, Sendable, Equatable, CustomStringConvertible {
        public var key: String
        public var reason: String

        public var description: String { "environment variable \(key): \(reason)" }
    }

    /// Reads back a file written by `render` (only that subset of dotenv syntax), for observing an existing file.
    public static func parse(_ text: String) -> [String: String] {
        var values: [String: String] = [:]
        for line in text.split(separator: "\n", omittingEmptySubsequences: true) {
            guard let equals = line.firstIndex(of: "=") else { continue }
            let key = String(line[..<equals])
            var raw = Substring(line[line.index(after: equals)...])
            if raw.hasPrefix("'"), raw.hasSuffix("'"), raw.count >= 2 {
                values[key] = String(raw.dropFirst().dropLast())
                continue
            }
            guard raw.hasPrefix("\""), raw.hasSuffix("\""), raw.count >= 2 else {
                values[key] = String(raw)
                continue
            }
            raw = raw.dropFirst().dropLast()
            var out = ""
            var escaped = false
            for character in raw {
                if escaped {
                    switch character {
                    case "n": out.append("\n")
                    case "r": out.append("\r")
                    case "t": out.append("\t")
                    default: out.append(character)
                    }
                    escaped = false
                } else if character == "\\" {
                    escaped = true
                } else {
                    out.append(character)
                }
            }
            values[key] = out
        }
        return values
    }
}
