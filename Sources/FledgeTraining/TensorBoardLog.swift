// TensorBoardLog: the run's scalars also as a TensorBoard event file (RUN/tensorboard/events.out.tfevents.*),
// so `tensorboard --logdir runs` draws Fledge runs beside others. The format, written by hand (no
// dependency): a TFRecord file — each record is its length (uint64 LE), the masked CRC-32C of the length,
// the data, and the masked CRC-32C of the data — whose records are `Event` protocol buffers: wall_time (1,
// double), step (2, int64), file_version (3, string) in the first, and summary (5) with values (1) of tag
// (1, string) and simple_value (2, float).

import Foundation

/// Appends scalar summaries to a TensorBoard event file.
public final class TensorBoardLog {
    public let url: URL
    private let handle: FileHandle

    /// Starts a new event file in `folder` (created if needed): one file per training session, as
    /// TensorBoard expects.
    public init(folder: URL) throws {
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        let now = Date().timeIntervalSince1970
        url = folder.appendingPathComponent("events.out.tfevents.\(Int(now)).fledge.\(getpid())")
        guard FileManager.default.createFile(atPath: url.path, contents: nil) else {
            throw TrainingError("cannot create \(url.path)", hint: "check that the run directory is writable.")
        }
        handle = try FileHandle(forWritingTo: url)
        var event = Protobuf()
        event.double(1, now)
        event.bytes(3, Array("brain.Event:2".utf8))
        write(event.bytes)
    }

    deinit { try? handle.close() }

    /// Scalars `values` (tag → value) at `step`.
    public func scalars(_ values: [(String, Float)], step: Int) {
        var summary = Protobuf()
        for (tag, value) in values where value.isFinite {
            var entry = Protobuf()
            entry.bytes(1, Array(tag.utf8))
            entry.float(2, value)
            summary.bytes(1, entry.bytes)
        }
        var event = Protobuf()
        event.double(1, Date().timeIntervalSince1970)
        event.varint(2, UInt64(bitPattern: Int64(step)))
        event.bytes(5, summary.bytes)
        write(event.bytes)
    }

    /// One TFRecord.
    private func write(_ data: [UInt8]) {
        var record: [UInt8] = []
        let length = withUnsafeBytes(of: UInt64(data.count).littleEndian, Array.init)
        record += length
        record += withUnsafeBytes(of: CRC32C.masked(length).littleEndian, Array.init)
        record += data
        record += withUnsafeBytes(of: CRC32C.masked(data).littleEndian, Array.init)
        try? handle.write(contentsOf: record)
    }
}

/// The protocol-buffer wire format, as far as Event needs it.
struct Protobuf {
    var bytes: [UInt8] = []

    mutating func key(_ field: Int, _ wireType: UInt64) { appendVarint(UInt64(field) << 3 | wireType) }

    mutating func appendVarint(_ value: UInt64) {
        var v = value
        while v >= 0x80 {
            bytes.append(UInt8(v & 0x7F) | 0x80)
            v >>= 7
        }
        bytes.append(UInt8(v))
    }

    mutating func varint(_ field: Int, _ value: UInt64) {
        key(field, 0)
        appendVarint(value)
    }

    mutating func double(_ field: Int, _ value: Double) {
        key(field, 1)
        bytes += withUnsafeBytes(of: value.bitPattern.littleEndian, Array.init)
    }

    mutating func float(_ field: Int, _ value: Float) {
        key(field, 5)
        bytes += withUnsafeBytes(of: value.bitPattern.littleEndian, Array.init)
    }

    mutating func bytes(_ field: Int, _ value: [UInt8]) {
        key(field, 2)
        appendVarint(UInt64(value.count))
        bytes += value
    }
}

/// CRC-32C (Castagnoli), and TFRecord's masking of it.
public enum CRC32C {
    static let table: [UInt32] = (0..<256).map { n in
        var c = UInt32(n)
        for _ in 0..<8 { c = c & 1 != 0 ? 0x82F6_3B78 ^ (c >> 1) : c >> 1 }
        return c
    }

    public static func checksum(_ data: [UInt8]) -> UInt32 {
        var crc: UInt32 = 0xFFFF_FFFF
        for byte in data { crc = table[Int((crc ^ UInt32(byte)) & 0xFF)] ^ (crc >> 8) }
        return crc ^ 0xFFFF_FFFF
    }

    public static func masked(_ data: [UInt8]) -> UInt32 {
        let crc = checksum(data)
        return ((crc >> 15) | (crc << 17)) &+ 0xA282_EAD8
    }
}
