import DFECore
import DFEProvision
import Testing

@Suite struct OwnershipRecordTests {
    @Test func theRecordRoundTripsThroughItsOneLineTextAndLowercasesTheOwner() {
        let record = OwnershipRecord(instance: "acme", owner: "Ops@Acme.Example", stateID: "s-1")
        #expect(record.owner == "ops@acme.example")
        #expect(record.encoded == #"dfe-owner/v1 {"instance":"acme","owner":"ops@acme.example","stateID":"s-1"}"#)
        #expect(!record.encoded.contains("\n"))
        #expect(OwnershipRecord.decode(record.encoded) == record)
        #expect(OwnershipRecord.decode(record.encoded + "\n") == record)
        let hostile = OwnershipRecord(instance: "a", owner: "o'\"\n\u{1b}x", stateID: "s")
        #expect(OwnershipRecord.decode(hostile.encoded) == hostile)
        #expect(!hostile.encoded.contains("\n"))
    }

    @Test(arguments: [
        "", "dfe-owner/v1", "dfe-owner/v1 {}", "dfe-owner/v1 {\"instance\":\"a\",\"owner\":\"o\"}", "hello",
        "dfe-owner/v2 {\"instance\":\"a\",\"owner\":\"o\",\"stateID\":\"s\"}",
    ])
    func anythingElseIsNoRecord(text: String) {
        #expect(OwnershipRecord.decode(text) == nil)
    }

    func context(_ name: String, owner: String, stateID: String?, recorded: Bool) -> ResourceContext {
        ResourceContext(
            name: name, owner: owner, spec: nil,
            host: HostConfig(
                name: "h", provides: [:], offerings: [:], resourceURI: "/", location: SourceLocation(path: "c")),
            fields: FieldSet(),
            recorded: recorded
                ? RecordedResource(
                    kind: .database, host: "h", driver: "d", specHash: "", fields: FieldSet(), outputs: [:])
                : nil,
            stateID: stateID)
    }

    @Test func onlyTheSameInstanceOwnerAndStateAreOurs() {
        let found = OwnershipRecord(instance: "acme", owner: "ops@x", stateID: "s-1")
        func verdict(_ context: ResourceContext) -> OwnershipVerdict {
            OwnershipRecord.verdict(found: found, for: context, object: "database d")
        }
        #expect(verdict(context("acme", owner: "OPS@x", stateID: "s-1", recorded: false)) == .ours)
        #expect(verdict(context("acme", owner: "ops@x", stateID: "s-2", recorded: true)) != .ours)
        #expect(verdict(context("beta", owner: "ops@x", stateID: "s-1", recorded: true)) != .ours)
        #expect(verdict(context("acme", owner: "ops@x", stateID: nil, recorded: false)) != .ours)
        // A retained resource (forgotten by the state) is never handed to another owner...
        guard case .conflict(let message) = verdict(context("acme", owner: "eve@y", stateID: "s-1", recorded: false))
        else {
            Issue.record("another owner must be a conflict")
            return
        }
        #expect(message.contains("never handed to another owner"))
        // ...but the owner of an instance this state still manages may change (its record is rewritten).
        #expect(verdict(context("acme", owner: "eve@y", stateID: "s-1", recorded: true)) == .restamp)
        #expect(
            OwnershipRecord.verdict(
                found: nil, for: context("acme", owner: "ops@x", stateID: "s-1", recorded: true), object: "x")
                != .ours)
    }
}
