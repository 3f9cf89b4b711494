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
    /// Records skipped, by reason (e.g. `no field "text"`).
    public private(set) var skipCounts: [String: Int] = [:]

    public init(_ config: InputConfig) { self.config = config }

    /// The files of `path` (a file, or a folder walked recursively, sorted, filtered by `include`).
    public func files(of path: String) throws -> [URL] {
        var isFolder: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isFolder) else {
            throw DataError("\(path) does not exist", hint: "check the path given to --source (or as an argument).")
        }
        guard isFolder.boolValue else { return [URL(fileURLWithPath: path)] }
        // The folder and the files in it may be symbolic links (the Hugging Face hub's cache links each file of
        // a snapshot to a blob): the walk starts at the resolved folder and follows links to regular files.
        let root = URL(fileURLWithPath: path).standardizedFileURL
        let resolved = root.resolvingSymlinksInPath()
        guard
            let walker = FileManager.default.enumerator(
                at: resolved, includingPropertiesForKeys: nil, options: [.skipsHiddenFiles])
        else { throw DataError("cannot list \(path)", hint: "check that the folder is readable.") }
        var found: [URL] = []
        for case let url as URL in walker {
            var info = stat()
            guard stat(url.path, &info) == 0, info.st_mode & S_IFMT == S_IFREG else { continue }
            let relative = String(url.standardizedFileURL.path.dropFirst(resolved.path.count + 1))
            if config.include.isEmpty || config.include.contains(where: { DocumentReader.glob($0, matches: relative) })
            {
                found.append(root.appendingPathComponent(relative))
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

    /// Bytes read from a text or JSONL file at a time.
    public var blockBytes = 4 << 20

    /// Reads the documents of file `url` of source `source` (file index `file`), handing each to `emit` in
    /// order with how many of the file's bytes are read so far. Plain text and JSONL stream through in blocks,
    /// Parquet a row group at a time; only a JSON array of question/answer pairs is read whole. A file that
    /// changes while it is read is refused.
    public mutating func read(
        _ url: URL, source: Int, file: Int, emit: (Document, _ position: Int) throws -> Void
    ) throws -> SourceFile {
        let input = try InputFile(url)
        var hasher = SHA256()
        var digest: String?
        var bytesRead = 0
        var position = 0
        let make = { (ordinal: Int, text: [UInt8], answer: [UInt8]?) throws in
            try emit(Document(source: source, file: file, ordinal: ordinal, text: text, answer: answer), position)
        }
        var pending = try input.read(upTo: blockBytes)
        if config.format == .auto && ["jsonl", "ndjson"].contains(url.pathExtension.lowercased()) {
            while !pending.contains(0x0A) {  // the first line decides between text records and pairs
                let block = try input.read(upTo: blockBytes)
                if block.isEmpty { break }
                pending += block
            }
        }
        let format = try format(of: url, bytes: pending)
        let jsonArray =
            format == .qa && pending.first(where: { ![0x20, 0x09, 0x0A, 0x0D].contains($0) }) == UInt8(ascii: "[")
        switch format {
        case .parquet:  // read by byte ranges: the digest is a pass of its own over the whole file
            (digest, bytesRead) = try InputFile(url).sha256()
            let parquet = try ParquetFile(url: url)
            try readParquet(parquet, atRowGroup: { position = input.size * $0 / max(1, parquet.rowGroupCount) }, make)
        case .qa where jsonArray:
            pending += try input.read(pending.count..<input.size)
            hasher.update(pending)
            bytesRead = pending.count
            position = bytesRead
            try readJSONArray(Data(pending), path: url.path, make)
        default:
            var state = CutState()
            var searched = 0
            while true {
                let block = try input.read(upTo: blockBytes)
                let atEnd = block.isEmpty
                if bytesRead == 0 {  // the first block, read above
                    hasher.update(pending)
                    bytesRead = pending.count
                }
                if !atEnd {
                    hasher.update(block)
                    bytesRead += block.count
                    pending += block
                }
                // Complete pieces are handed on; the incomplete last one waits for the next block.
                let end = atEnd ? pending.count : safeEnd(pending, format: format, from: searched)
                position = bytesRead
                if end > 0 || atEnd {
                    switch format {
                    case .jsonl, .qa:
                        try readJSONLines(
                            pending, end: end, atEnd: atEnd, state: &state, path: url.path,
                            questionAnswer: format == .qa, make)
                    default: try cutText(pending, end: end, atEnd: atEnd, state: &state, make)
                    }
                    pending.removeFirst(end)
                }
                searched = pending.count
                if atEnd { break }
            }
        }
        try input.checkUnchanged(bytesRead: bytesRead)
        let modified = input.modified.map { ISO8601DateFormatter().string(from: $0) } ?? ""
        return SourceFile(path: url.path, bytes: input.size, sha256: digest ?? hasher.finalizeHex(), modified: modified)
    }

    /// Reads all of file `url`'s documents, appending them to `documents`.
    @discardableResult
    public mutating func read(_ url: URL, source: Int, file: Int, into documents: inout [Document]) throws
        -> SourceFile
    {
        try read(url, source: source, file: file) { document, _ in documents.append(document) }
    }

    /// Where a text cut resumes: the line number (text lines, JSONL) or the position of the next piece.
    struct CutState {
        var line = 1
        var ordinal = 0
    }

    /// How far `bytes` can be handed on without cutting a piece that may continue in the next block: after the
    /// last newline (lines, JSONL), blank line (paragraphs) or separator; 0 when there is none yet. `from`: the
    /// bytes before it were searched already.
    func safeEnd(_ bytes: [UInt8], format: InputFormat, from: Int) -> Int {
        bytes.withUnsafeBufferPointer { b in
            let lineBased = format == .jsonl || format == .qa || config.boundary == .line
            if lineBased || config.boundary == .blankLine {
                var i = b.count - 1
                while i >= max(0, from - 1) {
                    while i >= max(0, from - 1) && b[i] != 0x0A { i -= 1 }
                    guard i >= max(0, from - 1) else { break }
                    if lineBased { return i + 1 }
                    // Is the line that this newline ends blank?
                    var j = i - 1
                    while j >= 0 && (b[j] == 0x20 || b[j] == 0x09 || b[j] == 0x0D) { j -= 1 }
                    if j < 0 || b[j] == 0x0A { return i + 1 }
                    i = j
                }
                return 0
            }
            guard config.boundary == .separator, !config.separator.isEmpty else { return 0 }
            let separator = Array(config.separator.utf8)
            var i = b.count - separator.count
            while i >= max(0, from - separator.count) {
                if b[i] == separator[0] && (0..<separator.count).allSatisfy({ b[i + $0] == separator[$0] }) {
                    return i + separator.count
                }
                i -= 1
            }
            return 0
        }
    }

    /// The format of one file under `config.format` (`bytes`: its first block).
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

    /// Cuts `bytes[..<end]` of plain text at the configured boundary (`atEnd`: the file ends there).
    private func cutText(
        _ bytes: [UInt8], end: Int, atEnd: Bool, state: inout CutState, _ make: (Int, [UInt8], [UInt8]?) throws -> Void
    ) throws {
        switch config.boundary {
        case .file:
            if atEnd { try make(0, Array(bytes[..<end]), nil) }
        case .line:
            var start = 0
            for i in 0..<end where bytes[i] == 0x0A {
                if i > start { try make(state.line, Array(bytes[start..<i]), nil) }
                state.line += 1
                start = i + 1
            }
            if atEnd && end > start { try make(state.line, Array(bytes[start..<end]), nil) }
        case .blankLine:
            var blockStart: (line: Int, offset: Int)?
            var lineStart = 0
            for i in 0...end where (i == end && atEnd) || (i < end && bytes[i] == 0x0A) {
                let blank = bytes[lineStart..<i].allSatisfy { $0 == 0x20 || $0 == 0x09 || $0 == 0x0D }
                if blank, let block = blockStart {
                    try make(block.line, Array(bytes[block.offset..<lineStart]), nil)
                    blockStart = nil
                } else if !blank && blockStart == nil {
                    blockStart = (state.line, lineStart)
                }
                state.line += 1
                lineStart = i + 1
            }
            if let block = blockStart { try make(block.line, Array(bytes[block.offset..<end]), nil) }
        case .separator:
            let separator = Array(config.separator.utf8)
            var start = 0
            var i = 0
            while i <= end - separator.count && !separator.isEmpty {
                if bytes[i] == separator[0] && bytes[i..<i + separator.count].elementsEqual(separator) {
                    try make(state.ordinal, Array(bytes[start..<i]), nil)
                    state.ordinal += 1
                    i += separator.count
                    start = i
                } else {
                    i += 1
                }
            }
            if atEnd { try make(state.ordinal, Array(bytes[start..<end]), nil) }
        }
    }

    /// Reads one JSON object per line of `bytes[..<end]`: the text field, or "question" and "answer".
    private mutating func readJSONLines(
        _ bytes: [UInt8], end: Int, atEnd: Bool, state: inout CutState, path: String, questionAnswer: Bool,
        _ make: (Int, [UInt8], [UInt8]?) throws -> Void
    ) throws {
        var start = 0
        for i in 0...end where (i == end && atEnd) || (i < end && bytes[i] == 0x0A) {
            let line = state.line
            defer {
                state.line += 1
                start = i + 1
            }
            let text = bytes[start..<i]
            if text.allSatisfy({ $0 == 0x20 || $0 == 0x09 || $0 == 0x0D }) { continue }
            let where_ = "\(path), line \(line)"
            guard let object = try? JSONSerialization.jsonObject(with: Data(text)),
                let record = object as? [String: Any]
            else {
                try badRecord(
                    "\(where_) is not a JSON object", reason: "not a JSON object",
                    hint: "fix the line, or pass --on-bad-record skip to skip such lines.")
                continue
            }
            if questionAnswer {
                guard let pair = try pair(record, at: where_) else { continue }
                try make(line, pair.question, pair.answer)
            } else {
                guard let value = record[config.textField] as? String else {
                    try missing(
                        config.textField, in: record, at: where_, hint: "name the text field with --text-field NAME")
                    continue
                }
                try make(line, Array(value.utf8), nil)
            }
        }
    }

    /// Reads a Parquet file's text column (one document per row), or its question and answer columns, a row
    /// group at a time. A null is a bad record (stop, or skip and count it).
    private mutating func readParquet(
        _ file: ParquetFile, atRowGroup: (Int) -> Void, _ make: (Int, [UInt8], [UInt8]?) throws -> Void
    ) throws {
        let path = file.path
        var row = 0
        if file.columnNames.contains(config.textField) {
            for group in 0..<file.rowGroupCount {
                atRowGroup(group)
                for text in try file.strings(config.textField, rowGroup: group)! {
                    row += 1
                    guard let text else {
                        try badRecord(
                            "\(path), row \(row) has a null \"\(config.textField)\"",
                            reason: "null \"\(config.textField)\"", hint: "pass --on-bad-record skip to skip such rows")
                        continue
                    }
                    try make(row, text, nil)
                }
            }
            return
        }
        guard file.columnNames.contains("question"), file.columnNames.contains("answer") else {
            throw DataError(
                "\(path) has no column \"\(config.textField)\" (columns: \(file.columnNames.joined(separator: ", ")))",
                hint: "name the text column with --text-field NAME, or give question and answer columns.")
        }
        for group in 0..<file.rowGroupCount {
            atRowGroup(group)
            let questions = try file.strings("question", rowGroup: group)!
            let answers = try file.strings("answer", rowGroup: group)!
            guard questions.count == answers.count else {
                throw DataError(
                    "\(path) is damaged: row group \(group + 1) has \(questions.count) questions and \(answers.count) answers",
                    hint: "download the file again.")
            }
            for (question, answer) in zip(questions, answers) {
                row += 1
                guard let question, let answer else {
                    let field = question == nil ? "question" : "answer"
                    try badRecord(
                        "\(path), row \(row) has a null \"\(field)\"", reason: "null \"\(field)\"",
                        hint: "pass --on-bad-record skip to skip such rows")
                    continue
                }
                try make(row, question, answer)
            }
        }
    }

    /// Reads a JSON array of question/answer objects.
    private mutating func readJSONArray(
        _ data: Data, path: String, _ make: (Int, [UInt8], [UInt8]?) throws -> Void
    ) throws {
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
                    "\(where_) is not an object", reason: "not an object",
                    hint: "each element must be {\"question\": ..., \"answer\": ...}.")
                continue
            }
            guard let pair = try pair(record, at: where_) else { continue }
            try make(index, pair.question, pair.answer)
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
        let problem = record[field] == nil ? "no field \"\(field)\"" : "a non-string \"\(field)\""
        try badRecord(
            "\(where_) has \(problem) (fields: \(fields))", reason: problem,
            hint: "\(hint), or pass --on-bad-record skip to skip such records.")
    }

    /// A record that does not parse or lacks its field: an error, or (skip) counted under `reason`.
    private mutating func badRecord(_ message: String, reason: String, hint: String) throws {
        guard config.onBadRecord == .skip else { throw DataError(message, hint: hint) }
        skippedRecords += 1
        skipCounts[reason, default: 0] += 1
        if skipReasons.count < 5 { skipReasons.append(message) }
    }
}
