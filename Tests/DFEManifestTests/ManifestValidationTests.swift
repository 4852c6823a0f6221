import DFECore
import DFEManifest
import Foundation
import Testing

/// One hostile manifest and the located diagnostic it must produce.
struct HostileCase: CustomTestStringConvertible, Sendable {
    var label: String
    var text: String
    /// `LINE:COLUMN` in `manifests/hostile.yaml`.
    var position: String
    /// Fragments the message must contain.
    var fragments: [String]

    var testDescription: String { label }
}

private let longName = String(repeating: "a", count: 64)

private let hostileCases: [HostileCase] = [
    HostileCase(
        label: "path traversal name", text: manifest("../etc"), position: "4:9",
        fragments: ["invalid name '../etc'", "DNS label"]),
    HostileCase(
        label: "slash in name", text: manifest("a/b"), position: "4:9", fragments: ["invalid name 'a/b'"]),
    HostileCase(
        label: "upper case name", text: manifest("Acme"), position: "4:9", fragments: ["invalid name 'Acme'"]),
    HostileCase(
        label: "64 character name", text: manifest(longName), position: "4:9",
        fragments: ["invalid name '\(longName)'", "63"]),
    HostileCase(
        label: "forbidden name", text: manifest("admin"), position: "4:9",
        fragments: ["'admin' is forbidden", "naming.forbidden"]),
    HostileCase(
        label: "unknown kind", text: manifest("acme").replacingOccurrences(of: "kind: Instance", with: "kind: Widget"),
        position: "2:7", fragments: ["unknown kind 'Widget'", "Instance"]),
    HostileCase(
        label: "unsupported apiVersion",
        text: manifest("acme").replacingOccurrences(of: "dfe/v1", with: "dfe/v2"), position: "1:13",
        fragments: ["unsupported apiVersion 'dfe/v2'", "dfe/v1"]),
    HostileCase(
        label: "unknown top-level field", text: manifest("acme") + "spex: {}\n", position: "7:1",
        fragments: ["unknown field 'spex' in manifest", "known fields: apiVersion, kind, metadata, spec"]),
    HostileCase(
        label: "unknown metadata field",
        text: manifest("acme").replacingOccurrences(of: "  name: acme", with: "  name: acme\n  nmae: x"),
        position: "5:3", fragments: ["unknown field 'nmae' in metadata"]),
    HostileCase(
        label: "unknown nested field", text: manifest("acme", spec: ["  storage:", "    qouta: 5Gi"]),
        position: "8:5", fragments: ["unknown field 'qouta' in spec.storage", "known fields: deletionPolicy, quota"]),
    HostileCase(
        label: "unknown spec field", text: manifest("acme", spec: ["  protected: true"]), position: "7:3",
        fragments: ["unknown field 'protected' in spec"]),
    HostileCase(
        label: "protect is not a boolean", text: manifest("acme", spec: ["  protect: \"yes please\""]),
        position: "7:12", fragments: ["spec.protect must be true or false", "string"]),
    HostileCase(
        label: "suspend is a number", text: manifest("acme", spec: ["  suspend: 1"]), position: "7:12",
        fragments: ["spec.suspend must be true or false", "int"]),
    HostileCase(
        label: "labels as a list",
        text: manifest("acme").replacingOccurrences(of: "  name: acme", with: "  name: acme\n  labels: [a, b]"),
        position: "5:11", fragments: ["metadata.labels must be a mapping, found sequence"]),
    HostileCase(
        label: "spec as a list",
        text: lines("apiVersion: dfe/v1", "kind: Instance", "metadata: {name: a}", "spec: [x]"),
        position: "4:7", fragments: ["spec must be a mapping, found sequence"]),
    HostileCase(
        label: "unknown provisioner", text: manifest("acme", spec: ["  provisioner: nope"]), position: "7:16",
        fragments: ["unknown provisioner 'nope'", "configured hosts: dreamfactory"]),
    HostileCase(
        label: "offering value not offered",
        text: manifest("acme", spec: ["  offerings:", "    instance-version: \"9.9\""]), position: "8:23",
        fragments: ["'9.9' is not offered for instance-version", "6.2, 7.4"]),
    HostileCase(
        label: "offering key not offered", text: manifest("acme", spec: ["  offerings:", "    colour: red"]),
        position: "8:13", fragments: ["offers no 'colour'", "instance-version"]),
    HostileCase(
        label: "missing owner",
        text: lines("apiVersion: dfe/v1", "kind: Instance", "metadata:", "  name: acme", "spec:", "  state: active"),
        position: "6:3", fragments: ["missing spec.owner"]),
    HostileCase(
        label: "empty owner", text: manifest("acme", owner: "\"\""), position: "6:10",
        fragments: ["spec.owner must not be empty"]),
    HostileCase(
        label: "missing metadata name",
        text: lines("apiVersion: dfe/v1", "kind: Instance", "metadata:", "  labels: {a: b}", "spec: {owner: x}"),
        position: "4:3", fragments: ["missing metadata.name"]),
    HostileCase(
        label: "bad quota", text: manifest("acme", spec: ["  storage:", "    quota: 5GB"]), position: "8:12",
        fragments: ["invalid quota '5GB'", "Ki, Mi, Gi or Ti"]),
    HostileCase(
        label: "zero quota", text: manifest("acme", spec: ["  storage: {quota: 0Gi}"]), position: "7:20",
        fragments: ["invalid quota '0Gi'"]),
    HostileCase(
        label: "bad state", text: manifest("acme", spec: ["  state: paused"]), position: "7:10",
        fragments: ["spec.state must be one of active, locked, maintenance, deactivated", "'paused'"]),
    HostileCase(
        label: "bad database deletionPolicy",
        text: manifest("acme", spec: ["  database:", "    deletionPolicy: retain"]), position: "8:21",
        fragments: ["spec.database.deletionPolicy must be one of Retain, Delete", "'retain'"]),
    HostileCase(
        label: "bad storage deletionPolicy", text: manifest("acme", spec: ["  storage: {deletionPolicy: Purge}"]),
        position: "7:29", fragments: ["spec.storage.deletionPolicy must be one of Retain, Delete"]),
    HostileCase(
        label: "document is a scalar", text: "just words\n", position: "1:1",
        fragments: ["manifest must be a mapping"]),
    HostileCase(
        label: "YAML syntax error", text: lines("apiVersion: dfe/v1", "kind: [Instance"), position: "3:1",
        fragments: ["invalid YAML"]),
]

@Suite struct ManifestValidationTests {
    @Test(arguments: hostileCases)
    func hostileInputProducesLocatedHelpfulDiagnostic(_ hostile: HostileCase) throws {
        let workspace = try ManifestWorkspace()
        try workspace.write("manifests/hostile.yaml", hostile.text)
        let diagnostics = try workspace.diagnostics()
        try #require(diagnostics.count == 1, "\(diagnostics)")
        let diagnostic = diagnostics[0]
        #expect(diagnostic.location.path == "manifests/hostile.yaml")
        #expect("\(diagnostic.location.line):\(diagnostic.location.column)" == hostile.position)
        #expect(diagnostic.description.hasPrefix("manifests/hostile.yaml:\(hostile.position): error: "))
        for fragment in hostile.fragments {
            #expect(diagnostic.message.contains(fragment), "\(diagnostic.message)")
        }
    }

    @Test func aliasBombIsRejectedNamingTheAliases() throws {
        let workspace = try ManifestWorkspace()
        let bomb = lines(
            "apiVersion: dfe/v1",
            "kind: Instance",
            "metadata: {name: bomb}",
            "spec: {owner: ops@example.com}",
            "x:",
            "  a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]",
            "  b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]",
            "  c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]",
            "  d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]",
            "  e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d]",
            "  f: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e]",
            "  g: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f]",
            "  h: &h [*g, *g, *g, *g, *g, *g, *g, *g, *g]",
            "  i: &i [*h, *h, *h, *h, *h, *h, *h, *h, *h]")
        try workspace.write("manifests/bomb.yaml", bomb)
        let diagnostics = try workspace.diagnostics()
        try #require(diagnostics.count == 1, "\(diagnostics)")
        let diagnostic = diagnostics[0]
        #expect(diagnostic.description.hasPrefix("manifests/bomb.yaml:1:1: error: "))
        #expect(diagnostic.message.contains("aliases"))
        for alias in ["*a", "*b", "*c", "*d"] {
            #expect(diagnostic.message.contains(alias), "\(diagnostic.message)")
        }
    }

    @Test func smallAliasesAreExpandedAndAccepted() throws {
        let workspace = try ManifestWorkspace()
        try workspace.write(
            "manifests/alias.yaml",
            lines(
                "apiVersion: dfe/v1", "kind: Instance", "metadata:", "  name: one", "  labels: &labels {team: acme}",
                "spec:", "  owner: ops@example.com", "  offerings: {instance-version: &v \"6.2\"}"))
        let specs = try workspace.specs()
        #expect(specs.map(\.labels) == [["team": "acme"]])
        #expect(specs.first?.offerings == ["instance-version": "6.2"])
    }

    @Test func fileOverOneMebibyteIsRejectedBeforeParsing() throws {
        let workspace = try ManifestWorkspace()
        let body = manifest("big")
        let padding = String(repeating: "#", count: WorkspaceFiles.maxFileSize - body.utf8.count) + "\n"
        try workspace.write("manifests/big.yaml", body + padding)
        let diagnostics = try workspace.diagnostics()
        try #require(diagnostics.count == 1, "\(diagnostics)")
        #expect(diagnostics[0].description.hasPrefix("manifests/big.yaml: error: "))
        #expect(diagnostics[0].message.contains("\(WorkspaceFiles.maxFileSize + 1) bytes"))
        #expect(diagnostics[0].message.contains("1 MiB"))
    }

    @Test func fileOfExactlyOneMebibyteIsAccepted() throws {
        let workspace = try ManifestWorkspace()
        let body = manifest("big")
        let padding = String(repeating: "#", count: WorkspaceFiles.maxFileSize - body.utf8.count - 1) + "\n"
        #expect((body + padding).utf8.count == 1 << 20)
        try workspace.write("manifests/big.yaml", body + padding)
        #expect(try workspace.specs().map(\.name) == ["big"])
    }

    @Test func duplicateNamesAcrossFilesNameBothFiles() throws {
        let workspace = try ManifestWorkspace()
        try workspace.write("manifests/b.yaml", manifest("acme"))
        try workspace.write("manifests/a/team.yml", manifest("acme"))
        let diagnostics = try workspace.diagnostics()
        try #require(diagnostics.count == 1, "\(diagnostics)")
        // Files are walked in sorted path order: a/team.yml comes first, so b.yaml holds the duplicate.
        let text = diagnostics[0].description
        #expect(text.hasPrefix("manifests/b.yaml:4:9: error: duplicate instance name 'acme'"))
        #expect(text.contains("manifests/a/team.yml:4:9"))
    }

    @Test func duplicateNameWithinOneFileIsReported() throws {
        let workspace = try ManifestWorkspace()
        try workspace.write("manifests/both.yaml", manifest("acme") + "---\n" + manifest("acme"))
        let diagnostics = try workspace.diagnostics()
        try #require(diagnostics.count == 1, "\(diagnostics)")
        #expect(diagnostics[0].description.hasPrefix("manifests/both.yaml:11:9: error: duplicate instance name"))
        #expect(diagnostics[0].message.contains("manifests/both.yaml:4:9"))
    }

    @Test func everyErrorOfEveryFileIsReported() throws {
        let workspace = try ManifestWorkspace()
        let first = manifest(
            "Bad_Name",
            spec: ["  protect: maybe", "  state: paused", "  storage:", "    qouta: 5Gi", "    quota: lots"])
        let second = lines(
            "apiVersion: dfe/v1", "kind: Gadget", "metadata: {name: fine}", "spec: {owner: x, provisioner: nope}")
        try workspace.write("manifests/many.yaml", first + "---\n" + second)
        try workspace.write("manifests/other.yaml", manifest("other", spec: ["  suspend: often"]))
        try workspace.write("manifests/good.yaml", manifest("good"))
        let diagnostics = try workspace.diagnostics()
        let located = diagnostics.map { "\($0.location)" }
        #expect(
            located == [
                "manifests/many.yaml:4:9",  // Bad_Name
                "manifests/many.yaml:7:12",  // protect: maybe
                "manifests/many.yaml:8:10",  // state: paused
                "manifests/many.yaml:10:5",  // qouta
                "manifests/many.yaml:11:12",  // quota: lots
                "manifests/many.yaml:14:7",  // kind: Gadget
                "manifests/many.yaml:16:31",  // provisioner: nope
                "manifests/other.yaml:7:12",  // suspend: often
            ])
    }

    @Test func multiDocumentFilesSkipEmptyDocuments() throws {
        let workspace = try ManifestWorkspace()
        let text =
            "---\n---\n# only a comment\n---\n" + manifest("first") + "---\n---\n\n" + manifest("second") + "---\n"
        try workspace.write("manifests/multi.yaml", text)
        #expect(try workspace.specs().map(\.name) == ["first", "second"])
    }

    @Test func emptyManifestDirectoryAndEmptyFilesLoadNothing() throws {
        let workspace = try ManifestWorkspace()
        #expect(try workspace.specs().isEmpty)
        try workspace.write("manifests/empty.yaml", "")
        try workspace.write("manifests/comments.yml", "# nothing here\n")
        #expect(try workspace.specs().isEmpty)
    }

    @Test func walksRecursivelyOverYAMLFilesOnly() throws {
        let workspace = try ManifestWorkspace()
        try workspace.write("manifests/zed.yaml", manifest("zed"))
        try workspace.write("manifests/teams/acme/deep/alpha.yml", manifest("alpha"))
        try workspace.write("manifests/teams/mid.yaml", manifest("mid"))
        for ignored in ["manifests/README.md", "manifests/data.json", "manifests/teams/notes.txt", "manifests/x.yaml~"]
        {
            try workspace.write(ignored, "this: [is not: a manifest\n")
        }
        #expect(try workspace.specs().map(\.name) == ["alpha", "mid", "zed"])
    }

    @Test func walkOrderIsSortedByPath() throws {
        let workspace = try ManifestWorkspace()
        // "a.yaml" sorts before "a/x.yaml" ('.' < '/'), which sorts before "b.yaml".
        try workspace.write("manifests/b.yaml", manifest("same"))
        try workspace.write("manifests/a/x.yaml", manifest("same"))
        try workspace.write("manifests/a.yaml", manifest("same"))
        let diagnostics = try workspace.diagnostics()
        #expect(diagnostics.map(\.location.path) == ["manifests/a/x.yaml", "manifests/b.yaml"])
        #expect(diagnostics.allSatisfy { $0.message.contains("also defined at manifests/a.yaml:4:9") })
    }

    @Test func missingManifestsDirectoryIsAnError() throws {
        let workspace = try ManifestWorkspace()
        try FileManager.default.removeItem(at: workspace.root.appendingPathComponent("manifests"))
        let diagnostics = try workspace.diagnostics()
        #expect(diagnostics.map(\.location.path) == ["manifests"])
        #expect(diagnostics.first?.message.contains("does not exist") == true)
    }

    @Test func defaultsAreResolved() throws {
        let workspace = try ManifestWorkspace()
        try workspace.write("manifests/acme.yaml", manifest("acme"))
        let spec = try #require(try workspace.specs().first)
        #expect(spec.name == "acme")
        #expect(spec.owner == "ops@example.com")
        #expect(spec.provisioner == "dreamfactory")
        #expect(spec.offerings == ["instance-version": "7.4"])
        #expect(spec.state == .active)
        #expect(spec.storageQuota == nil)
        #expect(spec.storageDeletionPolicy == .retain)
        #expect(spec.databaseDeletionPolicy == .retain)
        #expect(spec.protect == false)
        #expect(spec.suspend == false)
        #expect(spec.labels.isEmpty)
        #expect(spec.source.path == "manifests/acme.yaml")
    }

    @Test func everyFieldIsRead() throws {
        let workspace = try ManifestWorkspace()
        let text = lines(
            "apiVersion: dfe/v1",
            "kind: Instance",
            "metadata:",
            "  name: acme-prod",
            "  labels: {team: acme, tier: \"1\"}",
            "spec:",
            "  owner: Ops@Acme.Example",
            "  provisioner: dreamfactory",
            "  offerings:",
            "    instance-version: 6.2",
            "  state: maintenance",
            "  storage:",
            "    quota: 5Gi",
            "    deletionPolicy: Delete",
            "  database:",
            "    deletionPolicy: Delete",
            "  protect: true",
            "  suspend: false")
        try workspace.write("manifests/acme.yaml", text)
        let spec = try #require(try workspace.specs().first)
        #expect(spec.labels == ["team": "acme", "tier": "1"])
        #expect(spec.owner == "Ops@Acme.Example")
        #expect(spec.offerings == ["instance-version": "6.2"])
        #expect(spec.state == .maintenance)
        #expect(spec.storageQuota == 5 << 30)
        #expect(spec.storageDeletionPolicy == .delete)
        #expect(spec.databaseDeletionPolicy == .delete)
        #expect(spec.protect)
        #expect(!spec.suspend)
    }

    @Test func suggestedOfferingFillsOnlyMissingKeys() throws {
        let provisioners = """
            default: df
            hosts:
              df:
                provides: {instance: dreamfactory, storage: local, database: sqlite}
                offerings:
                  instance-version: {suggested: "7.4", items: {"6.2": {description: old}, "7.4": {description: new}}}
                  php: {suggested: "8.3", items: {"8.2": {description: a}, "8.3": {description: b}}}

            """
        let workspace = try ManifestWorkspace(provisioners: provisioners)
        try workspace.write("manifests/a.yaml", manifest("a", spec: ["  offerings: {php: \"8.2\"}"]))
        let spec = try #require(try workspace.specs().first)
        #expect(spec.provisioner == "df")
        #expect(spec.offerings == ["instance-version": "7.4", "php": "8.2"])
    }

    @Test func forbiddenNamesComeFromConfig() throws {
        let workspace = try ManifestWorkspace(settings: "naming:\n  forbidden: [reserved, billing]\n")
        try workspace.write("manifests/a.yaml", manifest("billing"))
        try workspace.write("manifests/b.yaml", manifest("admin"))
        let diagnostics = try workspace.diagnostics()
        #expect(diagnostics.map { "\($0.location)" } == ["manifests/a.yaml:4:9"])
        #expect(diagnostics.first?.message.contains("'billing' is forbidden") == true)
    }
}

@Suite struct ManifestEdgeCaseTests {
    @Test func duplicateKeyInAMappingIsReportedOnce() throws {
        let workspace = try ManifestWorkspace()
        try workspace.write("manifests/dup.yaml", manifest("acme", spec: ["  owner: other@example.com"]))
        let diagnostics = try workspace.diagnostics()
        try #require(diagnostics.count == 1, "\(diagnostics)")
        #expect(diagnostics[0].location.path == "manifests/dup.yaml")
        #expect(diagnostics[0].location.line >= 5)
        #expect(diagnostics[0].message.contains("duplicate key 'owner'"), "\(diagnostics[0].message)")
    }

    @Test func nonUTF8FileIsReported() throws {
        let workspace = try ManifestWorkspace()
        let url = workspace.root.appendingPathComponent("manifests/latin1.yaml")
        try Data([0x6e, 0x61, 0x6d, 0x65, 0x3a, 0x20, 0xe9, 0xff, 0x0a]).write(to: url)
        let diagnostics = try workspace.diagnostics()
        #expect(diagnostics.map(\.description) == ["manifests/latin1.yaml: error: file is not UTF-8"])
    }

    @Test func symlinkedManifestIsNotSilentlyIgnored() throws {
        // An instance whose manifest is a symlink must be loaded (or reported), never dropped: a dropped
        // manifest is an orphan, and `--prune` would delete it.
        let workspace = try ManifestWorkspace()
        try workspace.write("shared/acme.yaml", manifest("acme"))
        try FileManager.default.createSymbolicLink(
            atPath: workspace.root.appendingPathComponent("manifests/acme.yaml").path,
            withDestinationPath: "../shared/acme.yaml")
        let result = try workspace.load()
        switch result {
        case .success(let specs): #expect(specs.map(\.name) == ["acme"])
        case .failure(let failure): #expect(failure.diagnostics.map(\.location.path) == ["manifests/acme.yaml"])
        }
    }
}
