import DFECore
import Testing

@Suite struct SHA256Tests {
    @Test func matchesTheFIPSTwoBlockVector() {
        #expect(
            SHA256.hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq")
                == "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1")
    }

    @Test func hashesOwnersLikeSha256sum() {
        // printf 'ops@acme.example' | sha256sum
        #expect(SHA256.hex("ops@acme.example") == "368ba38420654f1136663c32a718d71228b97ed6ca6446f712c58fbba2ab1dfb")
    }

    @Test func handlesInputsAroundTheBlockBoundary() {
        // Lengths 55, 56 and 64 exercise the padding edge cases; a million 'a's is the long FIPS vector.
        #expect(
            SHA256.hex(String(repeating: "a", count: 55))
                == "9f4390f8d30c2dd92ec9f095b65e2b9ae9b0a925a5258e241c9f1e910f734318")
        #expect(
            SHA256.hex(String(repeating: "a", count: 56))
                == "b35439a4ac6f0948b6d6f9e3c6af0f5f590ce20f1bde7090ef7970686ec6738a")
        #expect(
            SHA256.hex(String(repeating: "a", count: 64))
                == "ffe054fe7ae0cb6dc65c3af9b61d5209f439851db43d0ba5997337df154668eb")
        #expect(
            SHA256.hex(String(repeating: "a", count: 1_000_000))
                == "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0")
    }

    @Test func hexStringIsLowercaseTwoDigitsPerByte() {
        #expect(SHA256.hexString([0x00, 0x0f, 0xab, 0xff]) == "000fabff")
        #expect(SHA256.digest(Array("abc".utf8)).count == 32)
    }
}

@Suite struct FieldSetTests {
    @Test func hashIsStableUnderKeyOrder() {
        var forward = FieldSet()
        for key in ["a", "b", "c", "d", "e"] { forward[key] = key.uppercased() }
        var backward = FieldSet()
        for key in ["e", "d", "c", "b", "a"] { backward[key] = key.uppercased() }
        #expect(forward.hash == backward.hash)
        #expect(forward.hash == FieldSet(["c": "C", "a": "A", "e": "E", "b": "B", "d": "D"]).hash)
    }

    @Test func hashIsSHA256OfSortedLengthPrefixedPairs() {
        let fields = FieldSet(["path": "/srv/a", "driver": "local"])
        #expect(fields.hash == SHA256.hex("6:driver5:local;4:path6:/srv/a;"))
    }

    @Test func hashChangesWithAnyKeyOrValue() {
        let base = FieldSet(["path": "/srv/a", "driver": "local"])
        #expect(FieldSet(["path": "/srv/b", "driver": "local"]).hash != base.hash)
        #expect(FieldSet(["path": "/srv/a", "driver": "local", "quota": "5Gi"]).hash != base.hash)
        #expect(FieldSet(["path": "/srv/a"]).hash != base.hash)
        #expect(FieldSet(["Path": "/srv/a", "driver": "local"]).hash != base.hash)
    }

    @Test func hashDistinguishesValuesContainingSeparators() {
        // A label value may hold any string, including a newline and '='.
        let two = FieldSet(["labels.a": "1", "labels.b": "2"])
        let one = FieldSet(["labels.a": "1\nlabels.b=2"])
        #expect(two.hash != one.hash)
    }

    @Test func changesListOnlyDifferingFieldsSortedByKey() {
        let old = FieldSet(["a": "1", "b": "2", "gone": "x", "same": "s"])
        let new = FieldSet(["a": "1", "b": "3", "added": "y", "same": "s"])
        #expect(
            new.changes(from: old) == [
                FieldChange(field: "added", old: nil, new: "y"), FieldChange(field: "b", old: "2", new: "3"),
                FieldChange(field: "gone", old: "x", new: nil),
            ])
        #expect(new.changes(from: new).isEmpty)
    }
}

@Suite struct SensitiveTests {
    @Test(arguments: ["password", "clientSecret", "dbPassword", "apiToken", "PASSWORD", "client_secret"])
    func secretsAreMasked(key: String) {
        #expect(Sensitive.isSensitive(key))
        #expect(Sensitive.display(key, "hunter2") == "(sensitive)")
    }

    @Test(arguments: ["path", "owner", "clientId", "endpoint", "driver", "passwordFile", "passwordEnv"])
    func ordinaryFieldsAreShown(key: String) {
        #expect(!Sensitive.isSensitive(key))
        #expect(Sensitive.display(key, "/srv/x") == "/srv/x")
    }

    @Test func placeholderIsFixed() {
        #expect(Sensitive.placeholder == "(sensitive)")
    }
}
