/// Durations as operators write them: `500ms`, `2s`, `5m`, `1h`.
public enum DurationText {
    /// Parses `500ms`, `2s`, `5m`, `1h` (or a combination like `1m30s`); nil when malformed.
    public static func parse(_ text: String) -> Duration? {
        var total = Duration.zero
        var number = ""
        var index = text.startIndex
        var sawUnit = false
        while index < text.endIndex {
            let char = text[index]
            if char.isASCII, char.isNumber {
                number.append(char)
                index = text.index(after: index)
                continue
            }
            guard let value = Int64(number) else { return nil }
            let rest = text[index...]
            let unitMilliseconds: Int64
            if rest.hasPrefix("ms") {
                unitMilliseconds = 1
                index = text.index(index, offsetBy: 2)
            } else if char == "s" {
                unitMilliseconds = 1000
                index = text.index(after: index)
            } else if char == "m" {
                unitMilliseconds = 60_000
                index = text.index(after: index)
            } else if char == "h" {
                unitMilliseconds = 3_600_000
                index = text.index(after: index)
            } else {
                return nil
            }
            // Reject anything beyond about 290 million years instead of trapping on overflow.
            let (milliseconds, overflow) = value.multipliedReportingOverflow(by: unitMilliseconds)
            guard !overflow, milliseconds < Int64.max / 2 - total.milliseconds else { return nil }
            total += .milliseconds(milliseconds)
            number = ""
            sawUnit = true
        }
        guard number.isEmpty, sawUnit else { return nil }
        return total
    }

    /// Formats a duration the same way, choosing the largest exact unit (`1.5s` prints as `1500ms`).
    public static func format(_ duration: Duration) -> String {
        let ms = duration.milliseconds
        if ms % 3_600_000 == 0, ms > 0 { return "\(ms / 3_600_000)h" }
        if ms % 60_000 == 0, ms > 0 { return "\(ms / 60_000)m" }
        if ms % 1000 == 0 { return "\(ms / 1000)s" }
        return "\(ms)ms"
    }
}

extension Duration {
    /// Whole milliseconds, rounded down.
    public var milliseconds: Int64 {
        let (seconds, attoseconds) = components
        return seconds * 1000 + attoseconds / 1_000_000_000_000_000
    }

    /// Seconds as a floating-point number.
    public var seconds: Double {
        let (seconds, attoseconds) = components
        return Double(seconds) + Double(attoseconds) / 1e18
    }
}

/// Capped exponential backoff: `initial` doubling per attempt up to `maximum`.
public struct Backoff: Sendable, Hashable {
    public var initial: Duration
    public var maximum: Duration

    public init(initial: Duration = .seconds(5), maximum: Duration = .seconds(300)) {
        self.initial = initial
        self.maximum = maximum
    }

    /// The delay after the given number of consecutive failed attempts (1 = first failure).
    public func delay(afterAttempts attempts: Int) -> Duration {
        guard attempts > 0 else { return .zero }
        var delay = initial
        for _ in 1..<min(attempts, 63) {
            delay *= 2
            if delay >= maximum { return maximum }
        }
        return min(delay, maximum)
    }
}
