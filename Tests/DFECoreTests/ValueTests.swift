import DFECore
import Testing

@Suite struct QuantityTests {
    @Test(arguments: [
        ("5Gi", Int64(5) << 30), ("1Ki", 1024), ("3Mi", 3 << 20), ("2Ti", Int64(2) << 40), ("100", 100),
        ("0Ki", 0),
    ])
    func parsesBinarySuffixes(text: String, bytes: Int64) {
        #expect(Quantity.parse(text) == bytes)
    }

    @Test(arguments: [
        "", "Gi", "5GB", "5G", "5gi", "-1Gi", "5.5Gi", "abc", " 5Gi", "5Gi ", "5 Gi", "Gi5", "5KiB", "٣Gi",
    ])
    func rejectsGarbage(text: String) {
        #expect(Quantity.parse(text) == nil)
    }

    @Test func rejectsOverflowInsteadOfWrapping() {
        #expect(Quantity.parse("8388608Ti") == nil)  // 2^23 * 2^40 = 2^63
        #expect(Quantity.parse("8388607Ti") == Int64(8_388_607) << 40)
        #expect(Quantity.parse("99999999999999999999") == nil)
        #expect(Quantity.parse("9223372036854775807") == Int64.max)
    }

    @Test(arguments: [
        (Int64(5) << 30, "5Gi"), (1024, "1Ki"), (1536, "1536"), (Int64(3) << 40, "3Ti"), (0, "0"), (1, "1"),
        (Int64(1024) << 20, "1Gi"),
    ])
    func formatsWithTheLargestExactSuffix(bytes: Int64, text: String) {
        #expect(Quantity.format(bytes) == text)
    }

    @Test func formatAndParseRoundTrip() {
        for bytes: Int64 in [1, 1023, 1024, 5 << 30, 7 << 40, 1_048_577] {
            #expect(Quantity.parse(Quantity.format(bytes)) == bytes)
        }
    }
}

@Suite struct DurationTextTests {
    @Test(arguments: [
        ("500ms", Duration.milliseconds(500)), ("2s", .seconds(2)), ("5m", .seconds(300)), ("1h", .seconds(3600)),
        ("1m30s", .seconds(90)), ("1h1m1s1ms", .milliseconds(3_661_001)), ("0s", .zero),
    ])
    func parsesOperatorDurations(text: String, duration: Duration) {
        #expect(DurationText.parse(text) == duration)
    }

    @Test(arguments: ["", "5", "ms", "s", "5x", "1.5s", "-1s", "5 m", "s5", "5mm", "5sec", "1m30", "5M", "1d"])
    func rejectsMalformedDurations(text: String) {
        #expect(DurationText.parse(text) == nil)
    }

    @Test
    func hugeDurationIsRejectedNotACrash() {
        #expect(DurationText.parse("9999999999999999h") == nil)
        #expect(DurationText.parse("999999999999999999m") == nil)
    }

    @Test(arguments: [
        (Duration.milliseconds(500), "500ms"), (.seconds(2), "2s"), (.seconds(300), "5m"), (.seconds(3600), "1h"),
        (.seconds(90), "90s"), (.milliseconds(1500), "1500ms"), (.zero, "0s"), (.seconds(7200), "2h"),
    ])
    func formatsWithTheLargestExactUnit(duration: Duration, text: String) {
        #expect(DurationText.format(duration) == text)
        #expect(DurationText.parse(text) == duration)
    }

    @Test func durationComponentsConvert() {
        #expect(Duration.milliseconds(1500).milliseconds == 1500)
        #expect(Duration.milliseconds(1500).seconds == 1.5)
    }
}

@Suite struct BackoffTests {
    @Test func startsAtFiveSecondsAndDoublesUpToFiveMinutes() {
        let backoff = Backoff()
        let delays = (1...8).map { backoff.delay(afterAttempts: $0) }
        #expect(
            delays == [
                .seconds(5), .seconds(10), .seconds(20), .seconds(40), .seconds(80), .seconds(160), .seconds(300),
                .seconds(300),
            ])
    }

    @Test func noFailuresMeansNoDelay() {
        #expect(Backoff().delay(afterAttempts: 0) == .zero)
        #expect(Backoff().delay(afterAttempts: -3) == .zero)
    }

    @Test func manyAttemptsStayCappedWithoutOverflow() {
        let backoff = Backoff()
        for attempts in [50, 63, 64, 1000, Int.max] {
            #expect(backoff.delay(afterAttempts: attempts) == .seconds(300))
        }
    }

    @Test func customBoundsAreHonoured() {
        let backoff = Backoff(initial: .milliseconds(500), maximum: .seconds(3))
        #expect(
            (1...5).map { backoff.delay(afterAttempts: $0) } == [
                .milliseconds(500), .seconds(1), .seconds(2), .seconds(3), .seconds(3),
            ])
    }
}

@Suite struct InstanceNameTests {
    @Test(arguments: [
        "../etc", "a/b", "Acme", "acme_prod", "", "-acme", "acme-", "-", "acme.prod", "acme prod", "ácme",
        String(repeating: "a", count: 64), "a\0b",
    ])
    func rejectsNamesThatAreNotDNSLabels(name: String) {
        #expect(!InstanceName.isValid(name))
    }

    @Test(arguments: ["a", "0", "acme-prod", "a--b", "7up", String(repeating: "a", count: 63)])
    func acceptsDNSLabels(name: String) {
        #expect(InstanceName.isValid(name))
    }
}
