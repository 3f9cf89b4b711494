// FledgeTestSupport: helpers shared by the test targets. ScratchFolder makes a fresh folder under the temporary
// directory for a test and removes every folder it made when the test process exits, so test runs leave nothing
// behind (a test that wants to inspect its folder after a failure can print its path).

import Foundation

/// Scratch folders of this test process.
public enum ScratchFolder {
    nonisolated(unsafe) private static var made: [URL] = []
    private static let lock = NSLock()
    private static let removeAtExit: Void = { atexit { ScratchFolder.removeAll() } }()

    /// A new empty folder named `fledge-<prefix>-<name>-<unique>`, removed when the process exits.
    public static func make(_ prefix: String, _ name: String = "") -> URL {
        _ = removeAtExit
        let label = name.filter { $0.isLetter || $0.isNumber }.prefix(60)
        let url = FileManager.default.temporaryDirectory.appendingPathComponent(
            "fledge-\(prefix)-\(label)-\(UUID().uuidString.prefix(8))")
        try! FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        lock.lock()
        made.append(url)
        lock.unlock()
        return url
    }

    /// Removes every folder made so far.
    public static func removeAll() {
        lock.lock()
        defer { lock.unlock() }
        for url in made { try? FileManager.default.removeItem(at: url) }
        made.removeAll()
    }
}
