// GGUFWriter: the GGUF container, version 3 (github.com/ggml-org/ggml, docs/gguf.md): "GGUF", the version,
// the tensor and key/value counts, the key/value pairs, the tensor infos (dimensions innermost first), padding
// to the alignment (32), then each tensor's data, itself padded to the alignment. Little-endian throughout.

import FledgeModel
import Foundation

/// A GGUF metadata value.
public enum GGUFValue {
    case uint32(UInt32)
    case int32(Int32)
    case float32(Float)
    case bool(Bool)
    case string(String)
    case strings([String])
    case int32s([Int32])

    var typeCode: UInt32 {
        switch self {
        case .uint32: 4
        case .int32: 5
        case .float32: 6
        case .bool: 7
        case .string: 8
        case .strings, .int32s: 9
        }
    }
}

/// How a tensor's values are stored.
public enum GGUFTensorType: UInt32, Sendable {
    case f32 = 0
    case f16 = 1

    var bytesPerValue: Int { self == .f32 ? 4 : 2 }
}

/// Writes one GGUF file.
struct GGUFWriter {
    static let alignment = 32
    var metadata: [(String, GGUFValue)] = []
    var tensors: [(tensor: ExportTensor, type: GGUFTensorType)] = []

    mutating func add(_ key: String, _ value: GGUFValue) { metadata.append((key, value)) }

    /// Writes the file to `handle`.
    func write(to handle: FileHandle) throws {
        var header = Data()
        header.append(contentsOf: Array("GGUF".utf8))
        header.appendLittle(UInt32(3))
        header.appendLittle(UInt64(tensors.count))
        header.appendLittle(UInt64(metadata.count))
        for (key, value) in metadata {
            header.appendString(key)
            header.appendLittle(value.typeCode)
            switch value {
            case .uint32(let v): header.appendLittle(v)
            case .int32(let v): header.appendLittle(UInt32(bitPattern: v))
            case .float32(let v): header.appendLittle(v.bitPattern)
            case .bool(let v): header.append(v ? 1 : 0)
            case .string(let v): header.appendString(v)
            case .strings(let values):
                header.appendLittle(UInt32(8))
                header.appendLittle(UInt64(values.count))
                for v in values { header.appendString(v) }
            case .int32s(let values):
                header.appendLittle(UInt32(5))
                header.appendLittle(UInt64(values.count))
                for v in values { header.appendLittle(UInt32(bitPattern: v)) }
            }
        }
        var offset = 0
        for (tensor, type) in tensors {
            header.appendString(tensor.name)
            header.appendLittle(UInt32(tensor.shape.count))
            for extent in tensor.shape.reversed() { header.appendLittle(UInt64(extent)) }  // innermost first
            header.appendLittle(type.rawValue)
            header.appendLittle(UInt64(offset))
            offset += Self.padded(tensor.values.count * type.bytesPerValue)
        }
        header.append(contentsOf: [UInt8](repeating: 0, count: Self.padded(header.count) - header.count))
        try handle.write(contentsOf: header)
        for (tensor, type) in tensors {
            var bytes: Data
            switch type {
            case .f32:
                bytes = tensor.values.withUnsafeBytes { Data($0) }
            case .f16:
                let halves = tensor.values.map(HalfFloat.half(from:))
                bytes = halves.withUnsafeBytes { Data($0) }
            }
            bytes.append(contentsOf: [UInt8](repeating: 0, count: Self.padded(bytes.count) - bytes.count))
            try handle.write(contentsOf: bytes)
        }
    }

    static func padded(_ n: Int) -> Int { (n + alignment - 1) / alignment * alignment }
}

extension Data {
    mutating func appendLittle<T: FixedWidthInteger>(_ value: T) {
        Swift.withUnsafeBytes(of: value.littleEndian) { append(contentsOf: $0) }
    }

    mutating func appendString(_ s: String) {
        let bytes = Array(s.utf8)
        appendLittle(UInt64(bytes.count))
        append(contentsOf: bytes)
    }
}
