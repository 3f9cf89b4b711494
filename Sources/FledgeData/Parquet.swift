// Parquet: the string columns of a Parquet file, as `fledge data prepare` reads Hugging Face datasets. Ours is the
// structure (the footer's Thrift compact metadata, row groups, column chunks, data pages v1 and v2, dictionary
// pages, PLAIN and RLE_DICTIONARY encodings, definition levels of optional columns); decompression is zlib,
// Snappy and Zstandard (CFledgeCodecs). Nested columns, other encodings and other codecs are refused with a
// message naming the file, the column and the feature.
// Format: https://github.com/apache/parquet-format (parquet.thrift, Encodings.md).

import CFledgeCodecs
import Foundation

/// The string columns of one Parquet file, read a column chunk at a time (from its bytes in memory, or from the
/// file, so that only one row group's chunk is held at once).
public struct ParquetFile {
    public let path: String
    /// The file's length in bytes.
    let size: Int
    /// The file's bytes in a range (checked to lie in the file).
    let load: (Range<Int>) throws -> [UInt8]
    let metadata: ParquetMetadata

    /// Parses the footer of `bytes` (the whole file); `path` names the file in errors.
    public init(bytes: [UInt8], path: String) throws {
        try self.init(size: bytes.count, path: path) { Array(bytes[$0]) }
    }

    /// Opens `url` and parses its footer; column chunks are read when asked for.
    public init(url: URL) throws {
        let file = try InputFile(url)
        try self.init(size: file.size, path: url.path) { try file.read($0) }
    }

    init(size: Int, path: String, load: @escaping (Range<Int>) throws -> [UInt8]) throws {
        self.path = path
        self.size = size
        self.load = load
        guard size >= 12, try load(0..<4).elementsEqual(Self.magic) else {
            throw DataError(
                "\(path) is not a Parquet file (it does not start with PAR1)",
                hint: "give .parquet files written by pyarrow, pandas or the Hugging Face hub.")
        }
        let tail = try load((size - 8)..<size)
        guard tail[4...].elementsEqual(Self.magic) else {
            throw DataError(
                "\(path) is truncated (it does not end with PAR1: \(size) bytes)",
                hint: "download the file again; a complete Parquet file ends with its metadata and PAR1.")
        }
        let length = Int(tail[0]) | Int(tail[1]) << 8 | Int(tail[2]) << 16 | Int(tail[3]) << 24
        guard length > 0, length <= size - 12 else {
            throw DataError(
                "\(path) is damaged: its footer claims \(length) bytes of metadata in a \(size)-byte file",
                hint: "download the file again.")
        }
        let footer = try load((size - 8 - length)..<(size - 8))
        var reader = ThriftReader(footer, from: 0, to: footer.count, path: path)
        metadata = try ParquetMetadata(&reader, path: path)
    }

    static let magic: [UInt8] = Array("PAR1".utf8)
    /// The largest page (uncompressed) and the most values in one page that Fledge reads.
    static let maximumPageBytes = 256 << 20
    static let maximumPageValues = 4_000_000

    /// Rows in the file.
    public var rowCount: Int { metadata.rowCount }

    /// The top-level column names, in schema order.
    public var columnNames: [String] { metadata.columns.map(\.name) }

    /// Row groups in the file.
    public var rowGroupCount: Int { metadata.rowGroups.count }

    /// The values of string column `name`, row by row (nil for a null); `nil` when there is no such column.
    public func strings(_ name: String) throws -> [[UInt8]?]? {
        guard columnNames.contains(name) else { return nil }
        var values: [[UInt8]?] = []
        values.reserveCapacity(min(max(0, metadata.rowCount), 1 << 20))
        for group in 0..<rowGroupCount { values += try strings(name, rowGroup: group)! }
        return values
    }

    /// The values of string column `name` in row group `group` (nil for a null); `nil` when there is no such
    /// column.
    public func strings(_ name: String, rowGroup group: Int) throws -> [[UInt8]?]? {
        guard let index = metadata.columns.firstIndex(where: { $0.name == name }) else { return nil }
        let column = metadata.columns[index]
        let place = "\(path), column \"\(name)\""
        guard column.isFlat else {
            throw DataError(
                "\(place) is nested (lists or structs), which Fledge does not read",
                hint: "store the text as a plain string column (e.g. with pyarrow.compute), or name another column.")
        }
        guard column.physicalType == 6 else {
            throw DataError(
                "\(place) holds \(ParquetMetadata.typeName(column.physicalType)), not strings",
                hint: "name a string column with --text-field.")
        }
        let chunks = metadata.rowGroups[group].chunks
        guard index < chunks.count else {
            throw DataError("\(path) is damaged: a row group lacks column \"\(name)\"", hint: "download it again.")
        }
        var values: [[UInt8]?] = []
        try readChunk(chunks[index], column: column, place: place, into: &values)
        return values
    }

    private func readChunk(
        _ chunk: ParquetMetadata.Chunk, column: ParquetMetadata.Column, place: String, into values: inout [[UInt8]?]
    ) throws {
        guard [0, 1, 2, 6].contains(chunk.codec) else {
            throw DataError(
                "\(place) is compressed with \(ParquetMetadata.codecName(chunk.codec)), which Fledge does not read",
                hint: "rewrite the file with Snappy, Zstandard, gzip or no compression (pyarrow: compression=\"zstd\")."
            )
        }
        let start = chunk.dictionaryOffset.map { min($0, chunk.dataOffset) } ?? chunk.dataOffset
        guard start >= 4, chunk.compressedSize >= 0, chunk.valueCount >= 0, start <= size - 8,
            chunk.compressedSize <= size - 8 - start
        else {
            throw DataError("\(place) points outside the file (it is damaged or truncated)", hint: "download it again.")
        }
        // The chunk's bytes: offsets below are relative to its start.
        let bytes = try load(start..<(start + chunk.compressedSize))
        var offset = 0
        let end = bytes.count
        var dictionary: [[UInt8]] = []
        var read = 0
        while read < chunk.valueCount && offset < end {
            var header = ThriftReader(bytes, from: offset, to: end, path: path)
            let page = try PageHeader(&header)
            let bodyStart = header.position
            guard page.compressedSize >= 0, page.uncompressedSize >= 0, page.compressedSize <= end - bodyStart,
                page.valueCount >= 0
            else {
                throw DataError("\(place) has a page that runs past its column chunk", hint: "download the file again.")
            }
            // Limits checked before anything is allocated: pages of real files hold at most a few megabytes and
            // some ten thousand values.
            guard page.uncompressedSize <= Self.maximumPageBytes, page.valueCount <= Self.maximumPageValues else {
                throw DataError(
                    "\(place) has a page of \(page.uncompressedSize) bytes and \(page.valueCount) values; Fledge reads pages of up to \(Self.maximumPageBytes >> 20) MB and \(Self.maximumPageValues) values",
                    hint:
                        "rewrite the file with smaller pages (pyarrow: data_page_size), or check that it is not damaged."
                )
            }
            let body = bodyStart..<(bodyStart + page.compressedSize)
            offset = body.upperBound
            switch page.type {
            case 2:  // dictionary page
                let plain = try Self.decompress(
                    bytes, body, codec: chunk.codec, size: page.uncompressedSize, place: place)
                dictionary = try Self.plainStrings(plain, count: page.valueCount, place: place)
            case 0, 3:  // data page v1, v2
                guard page.valueCount <= chunk.valueCount - read else { throw Self.damaged(place) }
                let added = try readDataPage(
                    page, bytes, body, codec: chunk.codec, column: column, dictionary: dictionary,
                    place: place, into: &values)
                read += added
            default:
                continue  // index pages carry nothing to read
            }
        }
        guard read == chunk.valueCount else {
            throw DataError(
                "\(place): its pages hold \(read) values, its metadata says \(chunk.valueCount)",
                hint: "the file is damaged; download it again.")
        }
    }

    /// Appends one data page's values (nil for nulls); returns how many (nulls included).
    private func readDataPage(
        _ page: PageHeader, _ bytes: [UInt8], _ body: Range<Int>, codec: Int, column: ParquetMetadata.Column,
        dictionary: [[UInt8]],
        place: String, into values: inout [[UInt8]?]
    ) throws -> Int {
        let count = page.valueCount
        var defined = [Bool](repeating: true, count: count)
        let data: [UInt8]
        var position = 0
        if page.type == 0 {
            data = try Self.decompress(bytes, body, codec: codec, size: page.uncompressedSize, place: place)
            if column.optional {
                guard data.count >= 4 else { throw Self.damaged(place) }
                let length = Int(data[0]) | Int(data[1]) << 8 | Int(data[2]) << 16 | Int(data[3]) << 24
                guard page.definitionEncoding == 3 else {
                    throw DataError(
                        "\(place) stores definition levels with encoding \(page.definitionEncoding) (only RLE is read)",
                        hint: "rewrite the file with pyarrow.")
                }
                guard 4 + length <= data.count else { throw Self.damaged(place) }
                defined = try RLEHybrid.decode(data, from: 4, to: 4 + length, bitWidth: 1, count: count, place: place)
                    .map { $0 == 1 }
                position = 4 + length
            }
        } else {
            guard page.repetitionLength >= 0, page.definitionLength >= 0,
                page.repetitionLength <= body.count, page.definitionLength <= body.count - page.repetitionLength
            else { throw Self.damaged(place) }
            let levels = page.repetitionLength + page.definitionLength
            if column.optional && page.definitionLength > 0 {
                let start = body.lowerBound + page.repetitionLength
                defined = try RLEHybrid.decode(
                    bytes, from: start, to: start + page.definitionLength, bitWidth: 1, count: count, place: place
                ).map { $0 == 1 }
            }
            let rest = (body.lowerBound + levels)..<body.upperBound
            let valuesSize = page.uncompressedSize - levels
            data =
                page.compressed
                ? try Self.decompress(bytes, rest, codec: codec, size: valuesSize, place: place) : Array(bytes[rest])
        }
        let present = defined.reduce(0) { $0 + ($1 ? 1 : 0) }
        let strings: [[UInt8]]
        switch page.encoding {
        case 0:
            strings = try Self.plainStrings(data[position...], count: present, place: place)
        case 2, 8:
            guard !dictionary.isEmpty || present == 0 else {
                throw DataError("\(place) uses a dictionary its chunk does not have", hint: "the file is damaged.")
            }
            guard position < data.count || present == 0 else { throw Self.damaged(place) }
            let width = present == 0 ? 0 : Int(data[position])
            guard width <= 32 else { throw Self.damaged(place) }
            let indices =
                present == 0
                ? []
                : try RLEHybrid.decode(
                    data, from: position + 1, to: data.count, bitWidth: width, count: present,
                    place: place)
            strings = try indices.map { index in
                guard Int(index) < dictionary.count else { throw Self.damaged(place) }
                return dictionary[Int(index)]
            }
        default:
            throw DataError(
                "\(place) uses the \(ParquetMetadata.encodingName(page.encoding)) encoding, which Fledge does not read",
                hint: "rewrite the file with PLAIN or dictionary encoding (pyarrow's defaults).")
        }
        var next = 0
        for isDefined in defined {
            if isDefined {
                values.append(strings[next])
                next += 1
            } else {
                values.append(nil)
            }
        }
        return count
    }

    private static func decompress(
        _ bytes: [UInt8], _ range: Range<Int>, codec: Int, size: Int, place: String
    ) throws -> [UInt8] {
        if codec == 0 { return Array(bytes[range]) }
        guard size >= 0, size <= 1 << 31 else { throw Self.damaged(place) }
        var output = [UInt8](repeating: 0, count: size)
        var produced = 0
        let status = bytes.withUnsafeBufferPointer { input in
            output.withUnsafeMutableBufferPointer { out in
                let source = input.baseAddress! + range.lowerBound
                switch codec {
                case 1: return fledge_unsnappy(source, range.count, out.baseAddress, size, &produced)
                case 2: return fledge_gunzip(source, range.count, out.baseAddress, size, &produced)
                default: return fledge_unzstd(source, range.count, out.baseAddress, size, &produced)
                }
            }
        }
        let name = ParquetMetadata.codecName(codec)
        switch status {
        case 0 where produced == size: return output
        case -3:
            throw DataError(
                "\(place) is compressed with \(name), but its library is not installed",
                hint:
                    "install Debian's \(codec == 1 ? "libsnappy1v5" : "libzstd1") (apt-get install), or rewrite the file uncompressed."
            )
        default:
            throw DataError(
                "\(place) has a \(name) page that does not decompress to its recorded \(size) bytes",
                hint: "the file is damaged; download it again.")
        }
    }

    /// `count` PLAIN byte arrays: a 4-byte little-endian length, then the bytes, each.
    static func plainStrings(_ data: ArraySlice<UInt8>, count: Int, place: String) throws -> [[UInt8]] {
        // Each value has a 4-byte length: a count the bytes cannot hold is damage, found before allocating.
        guard count >= 0, count <= data.count / 4 else { throw damaged(place) }
        var result: [[UInt8]] = []
        result.reserveCapacity(count)
        var i = data.startIndex
        for _ in 0..<count {
            guard i + 4 <= data.endIndex else { throw damaged(place) }
            let length = Int(data[i]) | Int(data[i + 1]) << 8 | Int(data[i + 2]) << 16 | Int(data[i + 3]) << 24
            i += 4
            guard length >= 0, i + length <= data.endIndex else { throw damaged(place) }
            result.append(Array(data[i..<(i + length)]))
            i += length
        }
        return result
    }

    static func plainStrings(_ data: [UInt8], count: Int, place: String) throws -> [[UInt8]] {
        try plainStrings(data[...], count: count, place: place)
    }

    static func damaged(_ place: String) -> DataError {
        DataError("\(place) has a damaged page", hint: "download the file again.")
    }
}

/// The RLE / bit-packed hybrid encoding of definition levels and dictionary indices.
enum RLEHybrid {
    static func decode(
        _ data: [UInt8], from start: Int, to end: Int, bitWidth: Int, count: Int, place: String
    ) throws -> [UInt32] {
        var result: [UInt32] = []
        result.reserveCapacity(count)
        var i = start
        let byteWidth = (bitWidth + 7) / 8
        while result.count < count {
            guard i < end else { throw ParquetFile.damaged(place) }
            var header = 0
            var shift = 0
            while true {
                guard i < end, shift < 64 else { throw ParquetFile.damaged(place) }
                let byte = data[i]
                i += 1
                header |= Int(byte & 0x7F) << shift
                if byte & 0x80 == 0 { break }
                shift += 7
            }
            guard header >= 0, header >> 1 <= count else { throw ParquetFile.damaged(place) }
            if header & 1 == 0 {
                // A run: the value repeated header/2 times.
                let run = header >> 1
                guard i + byteWidth <= end else { throw ParquetFile.damaged(place) }
                var value: UInt32 = 0
                for b in 0..<byteWidth { value |= UInt32(data[i + b]) << (8 * b) }
                i += byteWidth
                for _ in 0..<min(run, count - result.count) { result.append(value) }
            } else {
                // Bit-packed groups of 8 values, least significant bit first.
                let values = (header >> 1) * 8
                let byteCount = (header >> 1) * bitWidth
                guard i + byteCount <= end else { throw ParquetFile.damaged(place) }
                var bit = 0
                for _ in 0..<min(values, count - result.count) {
                    var value: UInt32 = 0
                    for b in 0..<bitWidth {
                        let at = bit + b
                        if data[i + at / 8] >> UInt8(at % 8) & 1 == 1 { value |= 1 << UInt32(b) }
                    }
                    bit += bitWidth
                    result.append(value)
                }
                i += byteCount
            }
        }
        return result
    }
}

/// A page header (parquet.thrift PageHeader, with the data page v1/v2 and dictionary page fields Fledge uses).
struct PageHeader {
    var type = -1
    var uncompressedSize = -1
    var compressedSize = -1
    var valueCount = 0
    var encoding = 0
    var definitionEncoding = 3
    var definitionLength = 0
    var repetitionLength = 0
    var compressed = true

    init(_ r: inout ThriftReader) throws {
        try r.readStruct { r, field, kind in
            switch field {
            case 1: self.type = try r.readInt(kind)
            case 2: self.uncompressedSize = try r.readInt(kind)
            case 3: self.compressedSize = try r.readInt(kind)
            case 5:  // DataPageHeader
                try r.readStruct { r, field, kind in
                    switch field {
                    case 1: self.valueCount = try r.readInt(kind)
                    case 2: self.encoding = try r.readInt(kind)
                    case 3: self.definitionEncoding = try r.readInt(kind)
                    default: try r.skip(kind)
                    }
                }
            case 7:  // DictionaryPageHeader
                try r.readStruct { r, field, kind in
                    switch field {
                    case 1: self.valueCount = try r.readInt(kind)
                    case 2: self.encoding = try r.readInt(kind)
                    default: try r.skip(kind)
                    }
                }
            case 8:  // DataPageHeaderV2
                try r.readStruct { r, field, kind in
                    switch field {
                    case 1: self.valueCount = try r.readInt(kind)
                    case 4: self.encoding = try r.readInt(kind)
                    case 5: self.definitionLength = try r.readInt(kind)
                    case 6: self.repetitionLength = try r.readInt(kind)
                    case 7: self.compressed = try r.readBool(kind)
                    default: try r.skip(kind)
                    }
                }
            default: try r.skip(kind)
            }
        }
    }
}

/// The parts of FileMetaData that reading string columns needs.
struct ParquetMetadata {
    struct Column {
        var name: String
        var physicalType: Int
        var optional: Bool
        /// A top-level leaf that is not repeated.
        var isFlat: Bool
    }

    struct Chunk {
        var codec = 0
        var valueCount = 0
        var dataOffset = 0
        var dictionaryOffset: Int?
        var compressedSize = 0
    }

    struct RowGroup {
        var chunks: [Chunk] = []
    }

    var rowCount = 0
    var columns: [Column] = []
    var rowGroups: [RowGroup] = []

    init(_ r: inout ThriftReader, path: String) throws {
        struct Element {
            var name = ""
            var type = -1
            var repetition = 0
            var children = 0
        }
        var schema: [Element] = []
        try r.readStruct { r, field, kind in
            switch field {
            case 2:
                try r.readList(kind) { r, kind in
                    var e = Element()
                    try r.readStruct { r, field, kind in
                        switch field {
                        case 1: e.type = try r.readInt(kind)
                        case 3: e.repetition = try r.readInt(kind)
                        case 4: e.name = try r.readString(kind)
                        case 5: e.children = try r.readInt(kind)
                        default: try r.skip(kind)
                        }
                    }
                    schema.append(e)
                }
            case 3: self.rowCount = try r.readInt(kind)
            case 4:
                try r.readList(kind) { r, kind in
                    var group = RowGroup()
                    try r.readStruct { r, field, kind in
                        guard field == 1 else { return try r.skip(kind) }
                        try r.readList(kind) { r, kind in
                            var chunk = Chunk()
                            try r.readStruct { r, field, kind in
                                guard field == 3 else { return try r.skip(kind) }
                                try r.readStruct { r, field, kind in
                                    switch field {
                                    case 4: chunk.codec = try r.readInt(kind)
                                    case 5: chunk.valueCount = try r.readInt(kind)
                                    case 7: chunk.compressedSize = try r.readInt(kind)
                                    case 9: chunk.dataOffset = try r.readInt(kind)
                                    case 11: chunk.dictionaryOffset = try r.readInt(kind)
                                    default: try r.skip(kind)
                                    }
                                }
                            }
                            group.chunks.append(chunk)
                        }
                    }
                    self.rowGroups.append(group)
                }
            default: try r.skip(kind)
            }
        }
        // The schema is a depth-first list: the root, then each field with its children after it. Leaves are the
        // columns, in the order of each row group's chunks.
        guard let root = schema.first else {
            throw DataError("\(path) has no schema", hint: "the file is damaged; download it again.")
        }
        var i = 1
        func walk(top: String?, repeated: Bool, depth: Int) throws {
            guard i < schema.count, depth < 64 else {
                throw DataError("\(path) has a damaged schema", hint: "download the file again.")
            }
            let e = schema[i]
            i += 1
            // A nested field's leaves go by its top-level name, so naming it finds it (and refuses it).
            let name = top ?? e.name
            if e.children > 0 {
                for _ in 0..<min(e.children, schema.count) {
                    try walk(top: name, repeated: repeated || e.repetition == 2, depth: depth + 1)
                }
            } else {
                let flat = top == nil && e.repetition != 2
                columns.append(Column(name: name, physicalType: e.type, optional: e.repetition == 1, isFlat: flat))
            }
        }
        guard root.children >= 0, root.children < schema.count else {
            throw DataError("\(path) has a damaged schema", hint: "download the file again.")
        }
        for _ in 0..<root.children { try walk(top: nil, repeated: false, depth: 0) }
    }

    static func typeName(_ type: Int) -> String {
        let names = [
            "booleans", "32-bit integers", "64-bit integers", "96-bit integers", "floats", "doubles", "byte arrays",
            "fixed-length byte arrays",
        ]
        return names.indices.contains(type) ? names[type] : "values of type \(type)"
    }

    static func codecName(_ codec: Int) -> String {
        let names = ["no compression", "Snappy", "gzip", "LZO", "Brotli", "LZ4 (Hadoop)", "Zstandard", "LZ4"]
        return names.indices.contains(codec) ? names[codec] : "codec \(codec)"
    }

    static func encodingName(_ encoding: Int) -> String {
        let names = [
            0: "PLAIN", 2: "PLAIN_DICTIONARY", 3: "RLE", 4: "BIT_PACKED", 5: "DELTA_BINARY_PACKED",
            6: "DELTA_LENGTH_BYTE_ARRAY", 7: "DELTA_BYTE_ARRAY", 8: "RLE_DICTIONARY", 9: "BYTE_STREAM_SPLIT",
        ]
        return names[encoding] ?? "encoding \(encoding)"
    }
}

/// Thrift's compact protocol, as Parquet's metadata uses it: structs of numbered fields, lists, integers as
/// zigzag varints, strings as length-prefixed bytes.
struct ThriftReader {
    let bytes: [UInt8]
    private(set) var position: Int
    let end: Int
    let path: String
    private var depth = 0

    init(_ bytes: [UInt8], from start: Int, to end: Int, path: String) {
        self.bytes = bytes
        position = start
        self.end = end
        self.path = path
    }

    private func damaged() -> DataError {
        DataError("\(path) has damaged metadata", hint: "the file is truncated or corrupt; download it again.")
    }

    private mutating func byte() throws -> UInt8 {
        guard position < end else { throw damaged() }
        defer { position += 1 }
        return bytes[position]
    }

    private mutating func varint() throws -> UInt64 {
        var result: UInt64 = 0
        var shift: UInt64 = 0
        while true {
            let b = try byte()
            guard shift < 64 else { throw damaged() }
            result |= UInt64(b & 0x7F) << shift
            if b & 0x80 == 0 { return result }
            shift += 7
        }
    }

    private mutating func zigzag() throws -> Int64 {
        let v = try varint()
        return Int64(bitPattern: v >> 1) ^ -Int64(bitPattern: v & 1)
    }

    /// An i8/i16/i32/i64 field (kind 3–6).
    mutating func readInt(_ kind: Int) throws -> Int {
        switch kind {
        case 3: return Int(Int8(bitPattern: try byte()))
        case 4, 5, 6:
            let v = try zigzag()
            guard let value = Int(exactly: v) else { throw damaged() }
            return value
        default: throw damaged()
        }
    }

    /// A bool field: the value is in the field's kind (1 true, 2 false).
    mutating func readBool(_ kind: Int) throws -> Bool {
        guard kind == 1 || kind == 2 else { throw damaged() }
        return kind == 1
    }

    mutating func readString(_ kind: Int) throws -> String {
        guard kind == 8 else { throw damaged() }
        let length = Int(truncatingIfNeeded: try varint())
        guard length >= 0, position + length <= end else { throw damaged() }
        defer { position += length }
        return String(decoding: bytes[position..<(position + length)], as: UTF8.self)
    }

    /// Reads a struct, calling `field` with each field's id and kind (the callee reads or skips the value).
    mutating func readStruct(_ field: (inout ThriftReader, Int, Int) throws -> Void) throws {
        depth += 1
        defer { depth -= 1 }
        guard depth < 64 else { throw damaged() }
        var last = 0
        while true {
            let header = try byte()
            if header == 0 { return }  // stop
            let kind = Int(header & 0x0F)
            let delta = Int(header >> 4)
            let id = delta != 0 ? last + delta : Int(try zigzag())
            last = id
            try field(&self, id, kind)
        }
    }

    /// Reads a list, calling `element` once per element with the element kind.
    mutating func readList(_ kind: Int, _ element: (inout ThriftReader, Int) throws -> Void) throws {
        guard kind == 9 || kind == 10 else { throw damaged() }
        let header = try byte()
        var count = Int(header >> 4)
        if count == 15 { count = Int(truncatingIfNeeded: try varint()) }
        guard count >= 0, count <= end - position else { throw damaged() }
        let elementKind = Int(header & 0x0F)
        for _ in 0..<count { try element(&self, elementKind) }
    }

    /// Skips a value of `kind`.
    mutating func skip(_ kind: Int) throws {
        switch kind {
        case 1, 2: return  // bool in the header
        case 3: _ = try byte()
        case 4, 5, 6: _ = try varint()
        case 7:
            guard position + 8 <= end else { throw damaged() }
            position += 8
        case 8: _ = try readString(8)
        case 9, 10: try readList(kind) { r, k in try r.skip(k == 1 ? 3 : k) }  // bools in lists are one byte
        case 11:
            let count = Int(truncatingIfNeeded: try varint())
            guard count >= 0, count <= end - position else { throw damaged() }
            if count > 0 {
                let kinds = try byte()
                for _ in 0..<count {
                    try skip(Int(kinds >> 4) == 1 ? 3 : Int(kinds >> 4))
                    try skip(Int(kinds & 0x0F) == 1 ? 3 : Int(kinds & 0x0F))
                }
            }
        case 12: try readStruct { r, _, k in try r.skip(k) }
        default: throw damaged()
        }
    }
}
