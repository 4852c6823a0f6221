/// The one escaping function of every text output: no raw control character from an input reaches a terminal.
///
/// Manifest values, names, file names and errors from drivers or servers may hold escape sequences or newlines
/// that would recolour a reviewer's terminal or forge a `PATH:1:1: error:` or plan line. Text outputs pass every
/// such value through ``escape(_:)``: C0 controls, DEL, C1 controls, line and paragraph separators and the bidi
/// overrides become visible escapes (`\n`, `\r`, `\t`, `\u001b`, `\u2028` ...), so one value is always one line.
/// Backslashes are kept as they are (a path stays readable); JSON outputs are escaped by their encoder.
public enum TextEscape {
    /// Whether a scalar must not be printed raw.
    @inline(__always)
    public static func needsEscape(_ scalar: Unicode.Scalar) -> Bool {
        let value = scalar.value
        if value < 0x20 || (0x7F...0x9F).contains(value) { return true }
        if value < 0x2028 { return false }
        return value == 0x2028 || value == 0x2029 || (0x202A...0x202E).contains(value)
            || (0x2066...0x2069).contains(value) || value == 0xFEFF
    }

    /// `text` with every control character written as a visible escape.
    public static func escape(_ text: String) -> String {
        guard text.unicodeScalars.contains(where: needsEscape) else { return text }
        var result = String.UnicodeScalarView()
        for scalar in text.unicodeScalars {
            guard needsEscape(scalar) else {
                result.append(scalar)
                continue
            }
            let replacement: String
            switch scalar {
            case "\n": replacement = "\\n"
            case "\r": replacement = "\\r"
            case "\t": replacement = "\\t"
            default:
                let hex = String(scalar.value, radix: 16)
                replacement = "\\u" + String(repeating: "0", count: max(0, 4 - hex.count)) + hex
            }
            result.append(contentsOf: replacement.unicodeScalars)
        }
        return String(result)
    }
}
