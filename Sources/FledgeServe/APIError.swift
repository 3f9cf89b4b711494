// APIError: OpenAI's error object, {"error": {"message", "type", "param", "code"}}, with its HTTP status.
// Every refusal of the server is one of these; the message names the field and what is allowed.

import Foundation
import HTTPTypes

/// An error answered to a client in OpenAI's shape.
public struct APIError: Error, Sendable {
    public let status: HTTPResponse.Status
    public let message: String
    public let type: String
    public let param: String?
    public let code: String?
    /// Seconds a client should wait before retrying (a Retry-After header).
    public var retryAfter: Int?

    public init(
        _ status: HTTPResponse.Status, _ message: String, type: String = "invalid_request_error", param: String? = nil,
        code: String? = nil
    ) {
        self.status = status
        self.message = message
        self.type = type
        self.param = param
        self.code = code
    }

    /// A 400 about the request field `param`.
    static func invalid(_ param: String, _ message: String, code: String? = "invalid_value") -> APIError {
        APIError(.badRequest, message, param: param, code: code)
    }

    /// The JSON body.
    public var json: Data {
        let error: [String: Any] = [
            "message": message, "type": type, "param": param ?? NSNull(), "code": code ?? NSNull(),
        ]
        return
            (try? JSONSerialization.data(
                withJSONObject: ["error": error], options: [.sortedKeys, .withoutEscapingSlashes])) ?? Data()
    }
}
