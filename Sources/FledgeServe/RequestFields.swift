// RequestFields: the fields of a JSON request body, read with their types and ranges checked; every mistake
// is an APIError naming the field, what it got and what is allowed.

import FledgeFiles
import Foundation

struct RequestFields {
    let object: [String: Any]

    /// Parses a request body: a JSON object, or an error that says what is wrong.
    init(_ data: Data) throws(APIError) {
        guard !data.isEmpty else { throw APIError(.badRequest, "the request has no body; send a JSON object") }
        let parsed: Any
        do { parsed = try JSONSerialization.jsonObject(with: data) } catch {
            throw APIError(
                .badRequest, "the request body is not valid JSON: \(error.localizedDescription)", code: "invalid_json")
        }
        guard let object = parsed as? [String: Any] else {
            throw APIError(.badRequest, "the request body must be a JSON object", code: "invalid_json")
        }
        self.object = object
    }

    init(object: [String: Any]) { self.object = object }

    func has(_ key: String) -> Bool { object[key] != nil && !(object[key] is NSNull) }

    func int(_ key: String, _ range: ClosedRange<Int>, default value: Int? = nil) throws(APIError) -> Int? {
        guard has(key) else { return value }
        guard let n = JSONNumber.exactInteger(object[key]) else {
            throw .invalid(
                key,
                "'\(key)' must be an integer between \(range.lowerBound) and \(range.upperBound); got \(describe(object[key]))",
                code: "invalid_type")
        }
        guard range.contains(n) else {
            throw .invalid(key, "'\(key)' must be between \(range.lowerBound) and \(range.upperBound); got \(n)")
        }
        return n
    }

    func number(_ key: String, _ range: ClosedRange<Double>, default value: Double? = nil) throws(APIError) -> Double? {
        guard has(key) else { return value }
        guard !JSONNumber.isBoolean(object[key]), let n = (object[key] as? NSNumber)?.doubleValue, n.isFinite else {
            throw .invalid(
                key,
                "'\(key)' must be a number between \(range.lowerBound) and \(range.upperBound); got \(describe(object[key]))",
                code: "invalid_type")
        }
        guard range.contains(n) else {
            throw .invalid(key, "'\(key)' must be between \(range.lowerBound) and \(range.upperBound); got \(n)")
        }
        return n
    }

    func bool(_ key: String, default value: Bool = false) throws(APIError) -> Bool {
        guard has(key) else { return value }
        guard JSONNumber.isBoolean(object[key]), let b = object[key] as? Bool else {
            throw .invalid(key, "'\(key)' must be true or false; got \(describe(object[key]))", code: "invalid_type")
        }
        return b
    }

    func string(_ key: String) throws(APIError) -> String? {
        guard has(key) else { return nil }
        guard let s = object[key] as? String else {
            throw .invalid(key, "'\(key)' must be a string; got \(describe(object[key]))", code: "invalid_type")
        }
        return s
    }

    /// A string or a list of strings (at most `limit`).
    func strings(_ key: String, limit: Int) throws(APIError) -> [String] {
        guard has(key) else { return [] }
        if let s = object[key] as? String { return [s] }
        guard let list = object[key] as? [Any], let strings = list as? [String] else {
            throw .invalid(
                key, "'\(key)' must be a string or a list of strings; got \(describe(object[key]))",
                code: "invalid_type")
        }
        guard strings.count <= limit else {
            throw .invalid(key, "'\(key)' may hold at most \(limit) strings; got \(strings.count)")
        }
        return strings
    }

    func dictionary(_ key: String) throws(APIError) -> [String: Any]? {
        guard has(key) else { return nil }
        guard let d = object[key] as? [String: Any] else {
            throw .invalid(key, "'\(key)' must be an object; got \(describe(object[key]))", code: "invalid_type")
        }
        return d
    }

    /// A short description of a JSON value for messages.
    func describe(_ value: Any?) -> String {
        switch value {
        case nil, is NSNull: return "null"
        case let s as String:
            return "the string \(s.count > 40 ? String(s.prefix(40)).debugDescription + "…" : s.debugDescription)"
        case _ where JSONNumber.isBoolean(value): return "a boolean"
        case let n as NSNumber: return "\(n)"
        case is [Any]: return "a list"
        case is [String: Any]: return "an object"
        default: return "an unsupported value"
        }
    }
}
