/// A small, fast, deterministic JSON writer and a reader for flat string maps.
///
/// Used where Foundation's JSON is too slow at platform scale: rendering every metadata document on each
/// observation, and decoding every state row.
public enum JSONText {
    /// A JSON value to render.
    public indirect enum Value: Sendable, Equatable {
        case string(String)
        case int(Int)
        case object([String: Value])
    }

    /// Renders a value pretty-printed with two-space indentation and sorted keys, ending in a newline.
    public static func render(_ value: Value) -> String {
        var out = ""
        out.reserveCapacity(2048)
        write(value, indent: 0, into: &out)
        out += "\n"
        return out
    }

    static func write(_ value: Value, indent: Int, into out: inout String) {
        switch value {
        case .string(let text): quote(text, into: &out)
        case .int(let number): out += String(number)
        case .object(let members):
            guard !members.isEmpty else {
                out += "{}"
                return
            }
            out += "{\n"
            let pad = String(repeating: " ", count: indent + 2)
            var first = true
            for key in members.keys.sorted() {
                guard let member = members[key] else { continue }
                if !first { out += ",\n" }
                first = false
                out += pad
                quote(key, into: &out)
                out += ": "
                write(member, indent: indent + 2, into: &out)
            }
            out += "\n" + String(repeating: " ", count: indent) + "}"
        }
    }

    /// Appends `text` as a JSON string literal.
    static func quote(_ text: String, into out: inout String) {
        out += "\""
        if !text.utf8.contains(where: { $0 < 0x20 || $0 == 0x22 || $0 == 0x5c }) {
            out += text
            out += "\""
            return
        }
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case _ where scalar.value < 0x20:
                let hex = String(scalar.value, radix: 16)
                out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            default: out.unicodeScalars.append(scalar)
            }
        }
        out += "\""
    }

    /// Encodes a flat string map as compact JSON with sorted keys.
    public static func encode(_ map: [String: String]) -> String {
        var out = "{"
        var first = true
        for key in map.keys.sorted() {
            if !first { out += "," }
            first = false
            quote(key, into: &out)
            out += ":"
            quote(map[key] ?? "", into: &out)
        }
        return out + "}"
    }

    /// Decodes a flat JSON object of strings; nil when the text is anything else.
    public static func decodeStringMap(_ text: String) -> [String: String]? {
        var text = text
        return text.withUTF8 { bytes -> [String: String]? in
            var reader = FlatReader(bytes: bytes)
            return reader.object()
        }
    }

    /// A cursor over UTF-8 bytes reading `{"k":"v",...}`.
    struct FlatReader {
        let bytes: UnsafeBufferPointer<UInt8>
        var index = 0

        init(bytes: UnsafeBufferPointer<UInt8>) { self.bytes = bytes }

        mutating func skipSpace() {
            while index < bytes.count,
                bytes[index] == 0x20 || bytes[index] == 0x0a || bytes[index] == 0x0d || bytes[index] == 0x09
            {
                index += 1
            }
        }

        mutating func take(_ byte: UInt8) -> Bool {
            skipSpace()
            guard index < bytes.count, bytes[index] == byte else { return false }
            index += 1
            return true
        }

        mutating func object() -> [String: String]? {
            guard take(0x7b) else { return nil }
            var result: [String: String] = [:]
            if take(0x7d) { return result }
            while true {
                guard let key = string(), take(0x3a), let value = string() else { return nil }
                result[key] = value
                if take(0x7d) { return result }
                guard take(0x2c) else { return nil }
            }
        }

        mutating func string() -> String? {
            guard take(0x22) else { return nil }
            let start = index
            // Fast path: no escapes.
            while index < bytes.count, bytes[index] != 0x22, bytes[index] != 0x5c { index += 1 }
            guard index < bytes.count else { return nil }
            if bytes[index] == 0x22 {
                let text = String(decoding: UnsafeBufferPointer(rebasing: bytes[start..<index]), as: UTF8.self)
                index += 1
                return text
            }
            var raw = Array(bytes[start..<index])
            while index < bytes.count {
                let byte = bytes[index]
                index += 1
                if byte == 0x22 { return String(decoding: raw, as: UTF8.self) }
                guard byte == 0x5c else {
                    raw.append(byte)
                    continue
                }
                guard index < bytes.count else { return nil }
                let escaped = bytes[index]
                index += 1
                switch escaped {
                case 0x22, 0x5c, 0x2f: raw.append(escaped)
                case 0x6e: raw.append(0x0a)
                case 0x72: raw.append(0x0d)
                case 0x74: raw.append(0x09)
                case 0x62: raw.append(0x08)
                case 0x66: raw.append(0x0c)
                case 0x75:
                    guard index + 4 <= bytes.count,
                        let code = UInt32(
                            String(decoding: UnsafeBufferPointer(rebasing: bytes[index..<index + 4]), as: UTF8.self),
                            radix: 16)
                    else { return nil }
                    index += 4
                    raw.append(contentsOf: Array(String(Unicode.Scalar(code) ?? "\u{FFFD}").utf8))
                default: return nil
                }
            }
            return nil
        }
    }
}
