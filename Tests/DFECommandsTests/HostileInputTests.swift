import DFETestSupport
import Foundation
import Testing

/// Hostile manifests end in exit 1 with a located error and leave the workspace byte-identical.
@Suite struct HostileInputTests {
    struct Case: Sendable, CustomTestStringConvertible {
        var label: String
        var file: String
        var content: String
        /// Text the error must contain, besides `FILE:LINE:COLUMN: error:`.
        var expected: String
        var testDescription: String { label }
    }

    static let billionLaughs = """
        apiVersion: dfe/v1
        kind: Instance
        metadata:
          name: bomb
          labels:
            a: &a ["x","x","x","x","x","x","x","x","x"]
            b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
            c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
            d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
            e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
            f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
            g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
        spec:
          owner: x@example.com
        """

    static let cases: [Case] = [
        Case(label: "alias bomb", file: "bomb.yaml", content: billionLaughs, expected: "aliases"),
        Case(
            label: "file over 1 MiB", file: "huge.yaml",
            content: TemporaryWorkspace.manifest("huge") + "#" + String(repeating: "x", count: 1 << 20),
            expected: "the limit is 1 MiB"),
        Case(
            label: "dot-dot name", file: "dots.yaml", content: TemporaryWorkspace.manifest("../etc"),
            expected: "invalid name '../etc'"),
        Case(
            label: "slash name", file: "slash.yaml", content: TemporaryWorkspace.manifest("a/b"),
            expected: "invalid name 'a/b'"),
        Case(
            label: "upper-case name", file: "upper.yaml", content: TemporaryWorkspace.manifest("Acme"),
            expected: "invalid name 'Acme'"),
        Case(
            label: "64-character name", file: "long.yaml",
            content: TemporaryWorkspace.manifest(String(repeating: "a", count: 64)),
            expected: "1 to 63 characters"),
        Case(
            label: "forbidden name", file: "admin.yaml", content: TemporaryWorkspace.manifest("admin"),
            expected: "forbidden"),
        Case(
            label: "duplicate name", file: "zz-dup.yaml", content: TemporaryWorkspace.manifest("alpha"),
            expected: "also defined at manifests/alpha.yaml"),
        Case(
            label: "unknown kind", file: "kind.yaml",
            content: TemporaryWorkspace.manifest("kindly").replacingOccurrences(
                of: "kind: Instance", with: "kind: Database"),
            expected: "unknown kind 'Database'"),
        Case(
            label: "unknown field", file: "field.yaml",
            content: TemporaryWorkspace.manifest("fieldy", extra: "  storage: {qouta: 5Gi}"),
            expected: "unknown field 'qouta'"),
        Case(
            label: "unknown provisioner", file: "prov.yaml",
            content: TemporaryWorkspace.manifest("provy", extra: "  provisioner: aws"),
            expected: "unknown provisioner 'aws'"),
        Case(
            label: "offering not offered", file: "offer.yaml",
            content: TemporaryWorkspace.manifest("offery", extra: "  offerings: {instance-version: \"9.9\"}"),
            expected: "'9.9' is not offered"),
        Case(
            label: "missing owner", file: "owner.yaml",
            content: "apiVersion: dfe/v1\nkind: Instance\nmetadata:\n  name: ownerless\nspec:\n  state: active\n",
            expected: "missing spec.owner"),
    ]

    @Test(arguments: cases)
    func hostileManifestExitsOneWithLocationAndTouchesNothing(_ hostile: Case) async throws {
        let ws = try TemporaryWorkspace()
        defer { ws.delete() }
        try ws.addInstance("alpha")
        try ws.addInstance("beta")
        let first = try await DFEBinary.run(["reconcile"], in: ws.root)
        #expect(first.status == 0)
        // beta's manifest is gone too: a bad commit must never prune it.
        try ws.remove("manifests/beta.yaml")
        try ws.write("manifests/\(hostile.file)", hostile.content)
        let before = try ws.treeDigest()
        for arguments in [["reconcile", "--prune"], ["reconcile", "--dry-run"], ["validate"]] {
            let result = try await DFEBinary.run(arguments, in: ws.root)
            #expect(result.status == 1, "\(arguments): \(result.stdout) \(result.stderr)")
            let located = result.stderr.split(separator: "\n").contains { line in
                line.hasPrefix("manifests/\(hostile.file):") && line.contains(": error: ")
                    && line.contains(hostile.expected)
            }
            #expect(located, "\(arguments): \(result.stderr)")
        }
        #expect(try ws.treeDigest() == before)
    }

    @Test func everyErrorOfAFileIsReportedNotJustTheFirst() async throws {
        let ws = try TemporaryWorkspace()
        defer { ws.delete() }
        try ws.write(
            "manifests/many.yaml",
            """
            apiVersion: dfe/v2
            kind: Instance
            metadata:
              name: Bad_Name
            spec:
              owner: x@example.com
              state: sleeping
              protect: maybe
              colour: blue
            ---
            apiVersion: dfe/v1
            kind: Instance
            metadata:
              name: second
            spec:
              provisioner: nowhere
            """)
        let result = try await DFEBinary.run(["validate"], in: ws.root)
        #expect(result.status == 1)
        let lines = result.stderr.split(separator: "\n").filter { $0.contains(": error: ") }
        #expect(lines.count == 7, "\(result.stderr)")
        #expect(lines.contains { $0.hasPrefix("manifests/many.yaml:1:13: error: unsupported apiVersion") })
        #expect(lines.contains { $0.hasPrefix("manifests/many.yaml:4:9: error: invalid name 'Bad_Name'") })
        #expect(lines.contains { $0.hasPrefix("manifests/many.yaml:16:16: error: unknown provisioner 'nowhere'") })
        #expect(result.stderr.contains("dfe: 7 errors; nothing was changed"))
    }
}
