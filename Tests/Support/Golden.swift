public import Foundation

/// Golden files: expected outputs kept under `Tests/Golden/`, compared byte for byte.
///
/// Run the tests with `DFE_UPDATE_GOLDEN=1` to (re)write the files after an intended change, then review the
/// diff like any code change.
public enum Golden {
    /// The directory holding the golden files.
    public static let directory = DFEBinary.packageRoot.appendingPathComponent("Tests/Golden")

    /// Nil when `actual` equals the golden file `name`; otherwise what differs (the first differing line).
    public static func mismatch(_ actual: String, named name: String) -> String? {
        let url = directory.appendingPathComponent(name)
        if ProcessInfo.processInfo.environment["DFE_UPDATE_GOLDEN"] == "1" {
            try? FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
            try? Data(actual.utf8).write(to: url)
            return nil
        }
        guard let expected = try? String(contentsOf: url, encoding: .utf8) else {
            return "golden file \(url.path) is missing; run with DFE_UPDATE_GOLDEN=1 to write it"
        }
        guard expected != actual else { return nil }
        let want = expected.components(separatedBy: "\n")
        let have = actual.components(separatedBy: "\n")
        for index in 0..<max(want.count, have.count) {
            let a = index < want.count ? want[index] : "<end>"
            let b = index < have.count ? have[index] : "<end>"
            if a != b { return "\(name) line \(index + 1):\n  expected: \(a)\n  actual:   \(b)" }
        }
        return "\(name) differs"
    }
}
