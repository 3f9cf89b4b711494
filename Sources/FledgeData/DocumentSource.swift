// DocumentSource: the inputs of `fledge data prepare` — named sources (a file or a folder, a mixing weight,
// a licence) and how their files become documents: plain text cut at file, line, blank-line or separator
// boundaries, JSONL with a text field, Parquet with a text column, and question/answer pairs (JSON array, JSONL
// or Parquet question/answer columns).

import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// How a file's content is read.
public enum InputFormat: String, Codable, Sendable, CaseIterable {
    /// By extension: .jsonl/.ndjson → JSONL (question/answer when records have those fields and no text
    /// field), .json → question/answer array, .parquet → Parquet, anything else → plain text.
    case auto
    case text
    case jsonl
    case qa
    /// Parquet: one document per row of the text column (question/answer pairs when the file has "question"
    /// and "answer" columns and no text column).
    case parquet
}

/// Where one plain-text document ends and the next begins.
public enum DocumentBoundary: String, Codable, Sendable, CaseIterable {
    /// One document per file.
    case file
    /// One document per non-empty line.
    case line
    /// Documents separated by blank lines (paragraphs).
    case blankLine = "blank-line"
    /// Documents separated by `InputConfig.separator`.
    case separator
}

/// What to do with a JSON record that does not parse or lacks its field.
public enum BadRecordPolicy: String, Codable, Sendable, CaseIterable {
    case stop
    case skip
}

/// One named source: a file or folder with a mixing weight.
public struct SourceSpec: Codable, Sendable, Equatable {
    public var name: String
    public var path: String
    /// Relative share of the training tokens (normalised over all sources).
    public var weight: Double
    public var licence: String?
    /// The whole source is the validation split (a data set's own validation file); when any source is, the
    /// other sources are all training and no document is held out by hash.
    public var validationOnly: Bool?

    public init(name: String, path: String, weight: Double = 1, licence: String? = nil, validationOnly: Bool? = nil) {
        self.name = name
        self.path = path
        self.weight = weight
        self.licence = licence
        self.validationOnly = validationOnly
    }

    /// Parses `NAME=PATH[:WEIGHT]` or `PATH` (the name is then the file or folder name without extension).
    public static func parse(_ text: String) throws -> SourceSpec {
        var name: String?
        var rest = Substring(text)
        if let equals = rest.firstIndex(of: "="), !rest[..<equals].contains("/") {
            name = String(rest[..<equals])
            rest = rest[rest.index(after: equals)...]
        }
        var weight = 1.0
        if let colon = rest.lastIndex(of: ":"), let value = Double(rest[rest.index(after: colon)...]) {
            weight = value
            rest = rest[..<colon]
        }
        let path = String(rest)
        guard !path.isEmpty else {
            throw DataError(
                "source \"\(text)\" has no path",
                hint: "write --source NAME=PATH:WEIGHT, e.g. stories=data/stories:0.7.")
        }
        guard weight > 0, weight.isFinite else {
            throw DataError(
                "source \"\(text)\" has weight \(weight)", hint: "weights must be positive numbers, e.g. :0.3.")
        }
        let fallback = URL(fileURLWithPath: path).deletingPathExtension().lastPathComponent
        return SourceSpec(name: name ?? fallback, path: path, weight: weight)
    }
}

/// How files are read and cut into documents.
public struct InputConfig: Codable, Sendable, Equatable {
    public var format: InputFormat = .auto
    /// The JSONL field or Parquet column holding the text.
    public var textField = "text"
    public var boundary: DocumentBoundary = .file
    public var separator = "<|endoftext|>"
    /// File-name globs a folder's files must match (any of them); empty = every file not starting with ".".
    public var include: [String] = []
    public var onBadRecord: BadRecordPolicy = .stop

    public init() {}
}

/// One document as read: its text (the question, for a question/answer pair) and where it came from.
public struct Document: Sendable {
    public var source: Int
    /// Index into the source's files.
    public var file: Int
    /// Line number (JSONL, line and blank-line boundaries, 1-based) or position in the file (0-based).
    public var ordinal: Int
    public var text: [UInt8]
    /// The answer, for a question/answer pair.
    public var answer: [UInt8]?
}

/// A file read from a source, for the manifest.
public struct SourceFile: Codable, Sendable, Equatable {
    public var path: String
    public var bytes: Int
    public var sha256: String
    public var modified: String
}

/// Reads sources into documents.
public struct DocumentReader {
    public let config: InputConfig
    /// Records skipped under `BadRecordPolicy.skip`, with the first few reasons.
    public private(set) var skippedRecords = 0
    public private(set) var skipReasons: [String] = []

    public init(_ config: InputConfig) { self.config = config }

    /// The files of `path` (a file, or a folder walked recursively, sorted, filtered by `include`).
    public func files(of path: String) throws -> [URL] {
        var isFolder: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isFolder) else {
            throw DataError("\(path) does not exist", hint: "check the path given to --source (or as an argument).")
        }
        guard isFolder.boolValue else { return [URL(fileURLWithPath: path)] }
        let root = URL(fileURLWithPath: path).standardizedFileURL
        guard
            let walker = FileManager.default.enumerator(
                at: root, includingPropertiesForKeys: [.isRegularFileKey], options: [.skipsHiddenFiles])
        else { throw DataError("cannot list \(path)", hint: "check that the folder is readable.") }
        var found: [URL] = []
        for case let url as URL in walker {
            guard (try? url.resourceValues(forKeys: [.isRegularFileKey]).isRegularFile) == true else { continue }
            let relative = String(url.standardizedFileURL.path.dropFirst(root.path.count + 1))
            if config.include.isEmpty || config.include.contains(where: { DocumentReader.glob($0, matches: relative) })
            {
                found.append(url)
            }
        }
        found.sort { $0.path < $1.path }
        guard !found.isEmpty else {
            throw DataError(
                "\(path) holds no files\(config.include.isEmpty ? "" : " matching \(config.include.joined(separator: ", "))")",
                hint: "check the folder and the --include globs (e.g. --include '*.txt').")
        }
        return found
    }

    /// fnmatch(3) on the file name, or on the relative path when the pattern contains "/".
    static func glob(_ pattern: String, matches relativePath: String) -> Bool {
        let subject =
            pattern.contains("/") ? relativePath : (relativePath.split(separator: "/").last.map(String.init) ?? "")
        return fnmatch(pattern, subject, 0) == 0
    }

    /// Reads the documents of file `url` of source `source` (file index `file`), appending to `documents`.
    public mutating func read(_ url: URL, source: Int, file: Int, into documents: inout [Document]) throws -> SourceFile
    {
        guard let data = FileManager.default.contents(atPath: url.path) else {
            throw DataError("cannot read \(url.path)", hint: "check that the file exists and is readable.")
        }
        let bytes = [UInt8](data)
        let attributes = try? FileManager.default.attributesOfItem(atPath: url.path)
        let modified = (attributes?[.modificationDate] as? Date).map { ISO8601DateFormatter().string(from: $0) } ?? ""
        let record = SourceFile(path: url.path, bytes: bytes.count, sha256: SHA256.hex(bytes), modified: modified)
        let make = { (ordinal: Int, text: [UInt8], answer: [UInt8]?) in
            documents.append(Document(source: source, file: file, ordinal: ordinal, text: text, answer: answer))
        }
        switch try format(of: url, bytes: bytes) {
        case .parquet: try readParquet(bytes, path: url.path, make)
        case .text, .auto: cutText(bytes, make)
        case .jsonl: try readJSONLines(bytes, path: url.path, questionAnswer: false, make)
        case .qa:
            if bytes.first(where: { ![0x20, 0x09, 0x0A, 0x0D].contains($0) }) == UInt8(ascii: "[") {
                try readJSONArray(data, path: url.path, make)
            } else {
                try readJSONLines(bytes, path: url.path, questionAnswer: true, make)
            }
        }
        return record
    }

    /// The format of one file under `config.format`.
    func format(of url: URL, bytes: [UInt8]) throws -> InputFormat {
        guard config.format == .auto else { return config.format }
        switch url.pathExtension.lowercased() {
        case "parquet": return .parquet
        case "json": return .qa
        case "jsonl", "ndjson":
            let firstLine = bytes.split(separator: 0x0A, maxSplits: 1).first.map { Data($0) } ?? Data()
            let record = (try? JSONSerialization.jsonObject(with: firstLine)) as? [String: Any]
            if let record, record[config.textField] == nil, record["question"] != nil, record["answer"] != nil {
                return .qa
            }
            return .jsonl
        default: return .text
        }
    }

    /// Cuts plain text at the configured boundary.
    private func cutText(_ bytes: [UInt8], _ make: (Int, [UInt8], [UInt8]?) -> Void) {
        switch config.boundary {
        case .file:
            make(0, bytes, nil)
        case .line:
            var line = 1
            var start = 0
            for i in 0...bytes.count where i == bytes.count || bytes[i] == 0x0A {
                if i > start { make(line, Array(bytes[start..<i]), nil) }
                line += 1
                start = i + 1
            }
        case .blankLine:
            var line = 1
            var blockStart: (line: Int, offset: Int)?
            var lineStart = 0
            for i in 0...bytes.count where i == bytes.count || bytes[i] == 0x0A {
                let blank = bytes[lineStart..<i].allSatisfy { $0 == 0x20 || $0 == 0x09 || $0 == 0x0D }
                if blank, let block = blockStart {
                    make(block.line, Array(bytes[block.offset..<lineStart]), nil)
                    blockStart = nil
                } else if !blank && blockStart == nil {
                    blockStart = (line, lineStart)
                }
                line += 1
                lineStart = i + 1
            }
            if let block = blockStart { make(block.line, Array(bytes[block.offset..<bytes.count]), nil) }
        case .separator:
            let separator = Array(config.separator.utf8)
            var ordinal = 0
            var start = 0
            var i = 0
            while i <= bytes.count - separator.count && !separator.isEmpty {
                if bytes[i] == separator[0] && bytes[i..<i + separator.count].elementsEqual(separator) {
                    make(ordinal, Array(bytes[start..<i]), nil)
                    ordinal += 1
                    i += separator.count
                    start = i
                } else {
                    i += 1
                }
            }
            make(ordinal, Array(bytes[start...]), nil)
        }
    }

    /// Reads one JSON object per line: the text field, or "question" and "answer".
    private mutating func readJSONLines(
        _ bytes: [UInt8], path: String, questionAnswer: Bool, _ make: (Int, [UInt8], [UInt8]?) -> Void
    ) throws {
        var line = 1
        var start = 0
        for i in 0...bytes.count where i == bytes.count || bytes[i] == 0x0A {
            defer {
                line += 1
                start = i + 1
            }
            let text = bytes[start..<i]
            if text.allSatisfy({ $0 == 0x20 || $0 == 0x09 || $0 == 0x0D }) { continue }
            let where_ = "\(path), line \(line)"
            guard let object = try? JSONSerialization.jsonObject(with: Data(text)),
                let record = object as? [String: Any]
            else {
                try badRecord(
                    "\(where_) is not a JSON object",
                    hint: "fix the line, or pass --on-bad-record skip to skip such lines.")
                continue
            }
            if questionAnswer {
                guard let pair = try pair(record, at: where_) else { continue }
                make(line, pair.question, pair.answer)
            } else {
                guard let value = record[config.textField] as? String else {
                    try missing(
                        config.textField, in: record, at: where_, hint: "name the text field with --text-field NAME")
                    continue
                }
                make(line, Array(value.utf8), nil)
            }
        }
    }

    /// Reads a Parquet file's text column (one document per row), or its question and answer columns. A null
    /// is a bad record (stop, or skip and count it).
    private mutating func readParquet(_ bytes: [UInt8], path: String, _ make: (Int, [UInt8], [UInt8]?) -> Void)
        throws
    {
        let file = try ParquetFile(bytes: bytes, path: path)
        if let texts = try file.strings(config.textField) {
            for (row, text) in texts.enumerated() {
                guard let text else {
                    try badRecord(
                        "\(path), row \(row + 1) has a null \"\(config.textField)\"",
                        hint: "pass --on-bad-record skip to skip such rows")
                    continue
                }
                make(row + 1, text, nil)
            }
            return
        }
        guard let questions = try file.strings("question"), let answers = try file.strings("answer") else {
            throw DataError(
                "\(path) has no column \"\(config.textField)\" (columns: \(file.columnNames.joined(separator: ", ")))",
                hint: "name the text column with --text-field NAME, or give question and answer columns.")
        }
        for (row, (question, answer)) in zip(questions, answers).enumerated() {
            guard let question, let answer else {
                try badRecord(
                    "\(path), row \(row + 1) has a null \"\(question == nil ? "question" : "answer")\"",
                    hint: "pass --on-bad-record skip to skip such rows")
                continue
            }
            make(row + 1, question, answer)
        }
    }

    /// Reads a JSON array of question/answer objects.
    private mutating func readJSONArray(_ data: Data, path: String, _ make: (Int, [UInt8], [UInt8]?) -> Void) throws {
        let array: [Any]
        do {
            guard let parsed = try JSONSerialization.jsonObject(with: data) as? [Any] else {
                throw CocoaError(.fileReadCorruptFile)
            }
            array = parsed
        } catch {
            throw DataError(
                "\(path) is not a JSON array of question/answer objects: \(error.localizedDescription)",
                hint: "check the file with a JSON validator, or write it as JSONL (one object per line).")
        }
        for (index, element) in array.enumerated() {
            let where_ = "\(path), element \(index)"
            guard let record = element as? [String: Any] else {
                try badRecord(
                    "\(where_) is not an object", hint: "each element must be {\"question\": ..., \"answer\": ...}.")
                continue
            }
            guard let pair = try pair(record, at: where_) else { continue }
            make(index, pair.question, pair.answer)
        }
    }

    private mutating func pair(_ record: [String: Any], at where_: String) throws -> (
        question: [UInt8], answer: [UInt8]
    )? {
        for field in ["question", "answer"] where !(record[field] is String) {
            try missing(
                field, in: record, at: where_, hint: "each record needs string fields \"question\" and \"answer\"")
            return nil
        }
        return (Array((record["question"] as! String).utf8), Array((record["answer"] as! String).utf8))
    }

    private mutating func missing(_ field: String, in record: [String: Any], at where_: String, hint: String) throws {
        let fields = record.keys.sorted().joined(separator: ", ")
        let problem = record[field] == nil ? "has no field \"\(field)\"" : "has a non-string \"\(field)\""
        try badRecord(
            "\(where_) \(problem) (fields: \(fields))",
            hint: "\(hint), or pass --on-bad-record skip to skip such records.")
    }

    private mutating func badRecord(_ message: String, hint: String) throws {
        guard config.onBadRecord == .skip else { throw DataError(message, hint: hint) }
        skippedRecords += 1
        if skipReasons.count < 5 { skipReasons.append(message) }
    }
}
