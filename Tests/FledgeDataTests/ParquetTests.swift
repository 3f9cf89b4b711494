// The Parquet reader against pyarrow: files written by pyarrow with every combination of data page version (v1,
// v2), encoding (PLAIN, dictionary), nullability and codec (none, Snappy, Zstandard, gzip), and files shaped like
// the Hugging Face hub's, read back to exactly the strings pyarrow reads (Scripts/make_parquet_fixtures.py wrote
// them and expected.json). Unsupported features and damaged files get clear errors, never a crash.

import FledgeData
import Foundation
import Testing

struct ParquetTests {
    static let folder = DataFixtures.root.appendingPathComponent("Tests/FledgeDataTests/Fixtures/parquet")

    struct Expected: Decodable {
        let files: [String: String]
        let values: [String: [String?]]
        let qa: [String: [String]]
    }

    static let expected: Expected = try! JSONDecoder().decode(
        Expected.self, from: Data(contentsOf: folder.appendingPathComponent("expected.json")))

    static func open(_ name: String) throws -> ParquetFile {
        let url = folder.appendingPathComponent(name)
        return try ParquetFile(bytes: [UInt8](try Data(contentsOf: url)), path: url.path)
    }

    static func message(_ body: () throws -> Void) -> String {
        do { try body() } catch { return "\(error)" }
        return "no error"
    }

    @Test(arguments: expected.files.keys.sorted())
    func readsWhatPyarrowReads(name: String) throws {
        let file = try Self.open(name)
        let want = try #require(Self.expected.values[Self.expected.files[name]!])
        let got = try #require(try file.strings("text"))
        #expect(got.count == want.count && file.rowCount == want.count, "\(name)")
        let gotText = got.map { $0.map { String(decoding: $0, as: UTF8.self) } }
        #expect(
            gotText == want,
            "\(name): first difference at row \(gotText.indices.first { $0 < want.count && gotText[$0] != want[$0] } ?? -1)"
        )
        #expect(try file.strings("no such column") == nil)
    }

    @Test func questionAnswerColumns() throws {
        let file = try Self.open("qa.parquet")
        #expect(file.columnNames == ["question", "answer"])
        for column in ["question", "answer"] {
            let got = try #require(try file.strings(column)).map { String(decoding: $0!, as: UTF8.self) }
            #expect(got == Self.expected.qa[column])
        }
    }

    @Test func unsupportedFeaturesAreNamed() throws {
        let nested = Self.message { _ = try Self.open("nested.parquet").strings("text") }
        #expect(
            nested.contains("nested.parquet") && nested.contains("\"text\"") && nested.contains("nested"), "\(nested)")
        let brotli = Self.message { _ = try Self.open("brotli.parquet").strings("text") }
        #expect(brotli.contains("brotli.parquet") && brotli.contains("Brotli"), "\(brotli)")
        let ints = Self.message { _ = try Self.open("v1-plain-required-none.parquet").strings("id") }
        #expect(ints.contains("\"id\"") && ints.contains("64-bit integers"), "\(ints)")
        let notParquet = Self.message {
            _ = try ParquetFile(bytes: Array("{\"text\": 1}\n".utf8), path: "data.parquet")
        }
        #expect(notParquet.contains("data.parquet is not a Parquet file"), "\(notParquet)")
    }

    /// Every truncation and many single-byte corruptions of a file end in the strings or a DataError naming the
    /// file; none may crash (the build keeps bounds checks, so a missed one would stop the test run).
    @Test(arguments: [
        "v2-dict-nullable-snappy.parquet", "v1-plain-nullable-gzip.parquet", "v1-dict-required-zstd.parquet",
        "v2-plain-nullable-none.parquet",
    ])
    func damagedFilesGiveErrorsNotCrashes(name: String) throws {
        let url = Self.folder.appendingPathComponent(name)
        let bytes = [UInt8](try Data(contentsOf: url))
        var errors = 0
        func attempt(_ data: [UInt8]) {
            do {
                let file = try ParquetFile(bytes: data, path: "damaged.parquet")
                _ = try file.strings("text")
                _ = try file.strings("id")
            } catch let error as DataError {
                errors += 1
                #expect("\(error)".contains("damaged.parquet"))
            } catch { Issue.record("unexpected error \(error)") }
        }
        for length in stride(from: 0, to: bytes.count, by: 37) { attempt(Array(bytes[0..<length])) }
        var rng = SystemRandomNumberGenerator()
        for _ in 0..<400 {
            var copy = bytes
            let at = Int.random(in: 4..<(bytes.count - 4), using: &rng)
            copy[at] ^= UInt8.random(in: 1...255, using: &rng)
            attempt(copy)
        }
        let truncated = Self.message {
            _ = try ParquetFile(bytes: Array(bytes.prefix(bytes.count / 2)), path: "half.parquet")
        }
        #expect(truncated.contains("half.parquet is truncated"), "\(truncated)")
        #expect(errors > 0)
    }

    /// `fledge data prepare`'s reader: a Parquet file's rows are documents (question/answer pairs from those
    /// columns); nulls are bad records, stopped on or skipped and counted.
    @Test func documentReaderTakesParquetRows() throws {
        func read(_ name: String, _ configure: (inout InputConfig) -> Void = { _ in }) throws -> (
            [Document], DocumentReader
        ) {
            var config = InputConfig()
            configure(&config)
            var reader = DocumentReader(config)
            var documents: [Document] = []
            _ = try reader.read(Self.folder.appendingPathComponent(name), source: 0, file: 0, into: &documents)
            return (documents, reader)
        }
        let text = { (d: Document) in String(decoding: d.text, as: UTF8.self) }
        let (hub, _) = try read("hub-train-00000-of-00002.parquet")
        #expect(hub.map(text) == Self.expected.values["hub0"]!.map { $0! })
        #expect(hub.allSatisfy { $0.answer == nil } && hub.last?.ordinal == 1000)
        let (qa, _) = try read("qa.parquet")
        #expect(qa.map(text) == Self.expected.qa["question"])
        #expect(qa.map { String(decoding: $0.answer!, as: UTF8.self) } == Self.expected.qa["answer"])
        let (questions, _) = try read("qa.parquet") { $0.textField = "question" }
        #expect(questions.map(text) == Self.expected.qa["question"] && questions.allSatisfy { $0.answer == nil })
        let stopped = Self.message { _ = try read("v1-plain-nullable-none.parquet") }
        #expect(stopped.contains("v1-plain-nullable-none.parquet, row 6 has a null \"text\""), "\(stopped)")
        let (kept, reader) = try read("v1-plain-nullable-none.parquet") { $0.onBadRecord = .skip }
        let nulls = Self.expected.values["nullable"]!.filter { $0 == nil }.count
        #expect(reader.skippedRecords == nulls && kept.count == 250 - nulls)
        #expect(reader.skipCounts == ["null \"text\"": nulls])
        let missing = Self.message { _ = try read("v1-plain-required-none.parquet") { $0.textField = "body" } }
        #expect(missing.contains("no column \"body\" (columns: id, text)"), "\(missing)")
    }
}
