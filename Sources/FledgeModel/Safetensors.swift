// Safetensors: read and write the safetensors format (github.com/huggingface/safetensors, "Format"):
// an 8-byte little-endian header length N, N bytes of JSON {name: {dtype, shape, data_offsets: [begin, end]},
// "__metadata__": {string: string}}, then the raw little-endian tensor bytes (offsets relative to them).
// Fledge writes F32 (and I32 for token fixtures); the reader checks every field and names what is wrong.

import FledgeFiles
import Foundation

/// One tensor's entry in a safetensors header.
public struct SafetensorsEntry: Sendable, Equatable {
    public let dtype: String
    public let shape: [Int]
    /// Byte range within the data section.
    public let byteRange: Range<Int>
    public var elementCount: Int { shape.reduce(1, *) }
}

/// A parsed safetensors file (memory-mapped).
public struct SafetensorsFile: Sendable {
    public let url: URL
    public let entries: [String: SafetensorsEntry]
    public let metadata: [String: String]
    private let data: Data
    private let dataStart: Int

    static let elementSizes = [
        "F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1, "BOOL": 1,
    ]

    /// Opens and validates `url`.
    public init(url: URL) throws {
        self.url = url
        let name = url.path
        let data: Data
        do {
            try UserFile.requireFile(name, "the weights")
            data = try Data(contentsOf: url, options: .alwaysMapped)
        } catch let error as FileError {
            throw ModelError(error.message, hint: "check the path of the checkpoint.")
        } catch {
            throw ModelError(
                "cannot read \(name): \(error.localizedDescription)", hint: "check the path and permissions.")
        }
        guard data.count >= 8 else {
            throw ModelError(
                "\(name) is \(data.count) bytes, too short to be a safetensors file",
                hint: "the file is truncated or not a safetensors file; save the checkpoint again.")
        }
        let headerLength = data.prefix(8).enumerated().reduce(UInt64(0)) {
            $0 | UInt64($1.element) << (8 * UInt64($1.offset))
        }
        guard headerLength <= UInt64(data.count - 8), headerLength <= 100_000_000 else {
            throw ModelError(
                "\(name): header length \(headerLength) does not fit in the file (\(data.count) bytes)",
                hint: "the file is truncated or not a safetensors file; save the checkpoint again.")
        }
        let headerEnd = 8 + Int(headerLength)
        guard let json = try? JSONSerialization.jsonObject(with: data.subdata(in: 8..<headerEnd)) as? [String: Any]
        else {
            throw ModelError(
                "\(name): the header is not a JSON object", hint: "the file is damaged or not a safetensors file.")
        }
        let dataLength = data.count - headerEnd
        var entries: [String: SafetensorsEntry] = [:]
        var metadata: [String: String] = [:]
        for (key, value) in json {
            if key == "__metadata__" {
                metadata = (value as? [String: String]) ?? [:]
                continue
            }
            guard let fields = value as? [String: Any], let dtype = fields["dtype"] as? String,
                let shape = fields["shape"] as? [Int], let offsets = fields["data_offsets"] as? [Int],
                offsets.count == 2
            else {
                throw ModelError(
                    "\(name): tensor '\(key)' lacks a valid dtype, shape or data_offsets",
                    hint: "the header is damaged; save the checkpoint again.")
            }
            guard let size = Self.elementSizes[dtype] else {
                throw ModelError(
                    "\(name): tensor '\(key)' has unknown dtype \(dtype)",
                    hint: "use one of \(Self.elementSizes.keys.sorted()).")
            }
            guard offsets[0] >= 0, offsets[0] <= offsets[1], offsets[1] <= dataLength else {
                throw ModelError(
                    "\(name): tensor '\(key)' data_offsets \(offsets) reach past the end of the data (\(dataLength) bytes)",
                    hint: "the file is truncated; save the checkpoint again.")
            }
            var bytes: Int? = size
            for extent in shape {
                guard let current = bytes, extent >= 0 else { bytes = nil; break }
                let (product, overflow) = current.multipliedReportingOverflow(by: extent)
                bytes = overflow ? nil : product
            }
            guard let bytes, bytes == offsets[1] - offsets[0] else {
                throw ModelError(
                    "\(name): tensor '\(key)' has shape \(shape) of \(dtype) but \(offsets[1] - offsets[0]) bytes",
                    hint: "the header is inconsistent; save the checkpoint again.")
            }
            entries[key] = SafetensorsEntry(dtype: dtype, shape: shape, byteRange: offsets[0]..<offsets[1])
        }
        // Tensors may not share bytes: overlapping ranges would load one tensor's weights into another.
        let ordered = entries.sorted {
            ($0.value.byteRange.lowerBound, $0.key) < ($1.value.byteRange.lowerBound, $1.key)
        }
        for (before, after) in zip(ordered, ordered.dropFirst())
        where after.value.byteRange.lowerBound < before.value.byteRange.upperBound {
            throw ModelError(
                "\(name): tensors '\(before.key)' (bytes \(before.value.byteRange)) and '\(after.key)' (bytes \(after.value.byteRange)) overlap",
                hint: "the header is damaged or hand-made; save the checkpoint again.")
        }
        self.entries = entries
        self.metadata = metadata
        self.data = data
        self.dataStart = headerEnd
    }

    /// Copies the F32 tensor `name` into `destination`, checking presence, dtype and shape.
    public func copyFloats(_ name: String, expectedShape: [Int], into destination: UnsafeMutableBufferPointer<Float>)
        throws
    {
        guard let entry = entries[name] else {
            throw ModelError(
                "tensor '\(name)' is missing from \(url.path)",
                hint: "the checkpoint was saved for a different architecture; check its config.json.")
        }
        guard entry.dtype == "F32" else {
            throw ModelError(
                "tensor '\(name)' in \(url.path) is \(entry.dtype); Fledge loads F32",
                hint: "convert the tensors to float32 before loading (e.g. `tensor.float()` in PyTorch).")
        }
        guard entry.shape == expectedShape else {
            throw ModelError(
                "tensor '\(name)' in \(url.path) has shape \(entry.shape), but the model expects \(expectedShape)",
                hint: "config.json and the weights disagree; use the config.json saved with these weights.")
        }
        precondition(destination.count == entry.elementCount)
        data.withUnsafeBytes { raw in
            let source = UnsafeRawBufferPointer(
                rebasing: raw[dataStart + entry.byteRange.lowerBound..<dataStart + entry.byteRange.upperBound])
            UnsafeMutableRawBufferPointer(destination).copyMemory(from: source)
        }
    }

    /// The F32 tensor `name` as an array (any shape).
    public func floats(_ name: String) throws -> [Float] {
        guard let entry = entries[name] else {
            throw ModelError("tensor '\(name)' is missing from \(url.path)", hint: "check the tensor name.")
        }
        var result = [Float](repeating: 0, count: entry.elementCount)
        try result.withUnsafeMutableBufferPointer { try copyFloats(name, expectedShape: entry.shape, into: $0) }
        return result
    }

    /// The floating-point tensor `name` (F32, F16, BF16 or F64) converted to F32, in row-major order.
    public func convertedFloats(_ name: String) throws -> [Float] {
        guard let entry = entries[name] else {
            throw ModelError("tensor '\(name)' is missing from \(url.path)", hint: "check the tensor name.")
        }
        let n = entry.elementCount
        var result = [Float](repeating: 0, count: n)
        let start = dataStart + entry.byteRange.lowerBound
        try data.withUnsafeBytes { raw in
            let bytes = UnsafeRawBufferPointer(rebasing: raw[start..<dataStart + entry.byteRange.upperBound])
            switch entry.dtype {
            case "F32":
                result.withUnsafeMutableBytes { $0.copyMemory(from: bytes) }
            case "F16":
                for i in 0..<n {
                    result[i] = HalfFloat.float(fromHalf: bytes.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self))
                }
            case "BF16":
                for i in 0..<n {
                    let bits = UInt32(bytes.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self)) << 16
                    result[i] = Float(bitPattern: bits)
                }
            case "F64":
                for i in 0..<n { result[i] = Float(bytes.loadUnaligned(fromByteOffset: 8 * i, as: Double.self)) }
            default:
                throw ModelError(
                    "tensor '\(name)' in \(url.path) is \(entry.dtype), not a floating-point type",
                    hint: "weights must be F32, F16, BF16 or F64.")
            }
        }
        return result
    }

    /// The I32 tensor `name` as an array.
    public func int32s(_ name: String) throws -> [Int32] {
        guard let entry = entries[name], entry.dtype == "I32" else {
            throw ModelError(
                "tensor '\(name)' is missing from \(url.path) or is not I32", hint: "check the tensor name.")
        }
        var result = [Int32](repeating: 0, count: entry.elementCount)
        data.withUnsafeBytes { raw in
            result.withUnsafeMutableBytes {
                $0.copyMemory(
                    from: UnsafeRawBufferPointer(
                        rebasing: raw[dataStart + entry.byteRange.lowerBound..<dataStart + entry.byteRange.upperBound]))
            }
        }
        return result
    }
}

/// Writes safetensors files.
public enum SafetensorsWriter {
    /// A tensor to write: its name, dtype ("F32" or "I32"), shape and raw bytes.
    public struct Tensor {
        public let name: String
        public let dtype: String
        public let shape: [Int]
        public let bytes: UnsafeRawBufferPointer

        public init(name: String, dtype: String = "F32", shape: [Int], bytes: UnsafeRawBufferPointer) {
            self.name = name
            self.dtype = dtype
            self.shape = shape
            self.bytes = bytes
        }
    }

    /// Writes `tensors` (in order) with `metadata` to `url`, atomically.
    public static func write(_ tensors: [Tensor], metadata: [String: String] = [:], to url: URL) throws {
        var header: [String: Any] = [:]
        if !metadata.isEmpty { header["__metadata__"] = metadata }
        var offset = 0
        for tensor in tensors {
            header[tensor.name] = [
                "dtype": tensor.dtype, "shape": tensor.shape, "data_offsets": [offset, offset + tensor.bytes.count],
            ]
            offset += tensor.bytes.count
        }
        var json = try JSONSerialization.data(withJSONObject: header, options: [.sortedKeys])
        // Pad with spaces so the data section starts 8-byte aligned (as the reference implementation does).
        while json.count % 8 != 0 { json.append(0x20) }
        var prefix = Data(count: 8)
        for i in 0..<8 { prefix[i] = UInt8(truncatingIfNeeded: UInt64(json.count) >> (8 * UInt64(i))) }
        try AtomicFile.write(to: url) { handle in
            try handle.write(contentsOf: prefix)
            try handle.write(contentsOf: json)
            for tensor in tensors where tensor.bytes.count > 0 {
                try handle.write(
                    contentsOf: Data(
                        bytesNoCopy: UnsafeMutableRawPointer(mutating: tensor.bytes.baseAddress!),
                        count: tensor.bytes.count, deallocator: .none))
            }
        }
    }
}

/// IEEE 754 half precision (binary16) ⇄ float, without relying on the platform's Float16.
public enum HalfFloat {
    /// The float value of the binary16 `bits` (subnormals, infinities and NaN included).
    public static func float(fromHalf bits: UInt16) -> Float {
        let sign = UInt32(bits & 0x8000) << 16
        let exponent = Int((bits >> 10) & 0x1F)
        let mantissa = UInt32(bits & 0x3FF)
        if exponent == 0 {
            // Zero or subnormal: mantissa · 2^-24.
            let magnitude = Float(mantissa) * Float(sign: .plus, exponent: -24, significand: 1)
            return sign == 0 ? magnitude : -magnitude
        }
        if exponent == 31 { return Float(bitPattern: sign | 0x7F80_0000 | (mantissa << 13)) }
        return Float(bitPattern: sign | UInt32(exponent - 15 + 127) << 23 | (mantissa << 13))
    }

    /// The binary16 nearest to `value` (round to nearest even; overflow to infinity; NaN stays NaN).
    public static func half(from value: Float) -> UInt16 {
        let bits = value.bitPattern
        let sign = UInt16((bits >> 16) & 0x8000)
        if value.isNaN { return sign | 0x7E00 }
        let magnitude = abs(value)
        if magnitude >= 65520 { return sign | 0x7C00 }  // rounds to infinity
        if magnitude < Float(sign: .plus, exponent: -14, significand: 1) {
            // Subnormal (or zero): a multiple of 2^-24, rounded to nearest even.
            let scaled = magnitude * Float(sign: .plus, exponent: 24, significand: 1)
            return sign | UInt16(scaled.rounded(.toNearestOrEven))
        }
        let exponent = Int((bits >> 23) & 0xFF) - 127 + 15
        var mantissa = bits & 0x7F_FFFF
        var result = UInt32(exponent) << 10 | (mantissa >> 13)
        mantissa &= 0x1FFF
        if mantissa > 0x1000 || (mantissa == 0x1000 && result & 1 == 1) { result += 1 }  // may carry into the exponent
        return sign | UInt16(result)
    }
}
