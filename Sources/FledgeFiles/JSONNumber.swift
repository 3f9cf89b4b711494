// JSONNumber: whole numbers from JSONSerialization's output, refusing what would be silently truncated or
// misread: fractions (64.5), booleans (which Foundation hands back as NSNumber too), and values beyond ±9e15.

import Foundation

/// Exact reading of numbers parsed by JSONSerialization.
public enum JSONNumber {
    /// True for a JSON `true`/`false` (Foundation's boolean NSNumber has the Objective-C type "c").
    public static func isBoolean(_ value: Any?) -> Bool {
        guard let number = value as? NSNumber else { return false }
        return String(cString: number.objCType) == "c"
    }

    /// The value as an Int when it is a JSON number with no fractional part, nil otherwise.
    public static func exactInteger(_ value: Any?) -> Int? {
        guard let number = value as? NSNumber, !isBoolean(value) else { return nil }
        let double = number.doubleValue
        guard double.isFinite, double.rounded() == double, abs(double) < 9e15 else { return nil }
        return number.intValue
    }

    /// `value` as a JSON string literal (RFC 8259 escapes), for JSON written by hand where speed matters.
    public static func string(_ value: String) -> String {
        var result = "\""
        for scalar in value.unicodeScalars {
            switch scalar {
            case "\"": result += "\\\""
            case "\\": result += "\\\\"
            case "\n": result += "\\n"
            case "\t": result += "\\t"
            case "\r": result += "\\r"
            case _ where scalar.value < 0x20: result += String(format: "\\u%04x", scalar.value)
            default: result.unicodeScalars.append(scalar)
            }
        }
        return result + "\""
    }
}
