// MPICommunicator: the collectives over Open MPI, loaded at run time (CFledgeMPI), so nothing needs MPI
// unless a job was started by `mpirun`. A watchdog thread bounds every collective: a rank that waits longer
// than the timeout for the others (one of them hangs, or the network is gone) says so and aborts the whole
// job instead of hanging. A rank that dies is noticed by Open MPI's launcher itself, which stops the others.

import CFledgeMPI
import Foundation

/// How this process was started.
public enum Launcher: Equatable, Sendable {
    /// Not by an MPI launcher: a job of one process.
    case none
    /// By Open MPI's `mpirun`: this rank, the job's size, and how many ranks share this host.
    case openMPI(rank: Int, size: Int, localSize: Int)
    /// By another MPI's launcher (MPICH's hydra and its kin), which Fledge does not support.
    case other(String)

    /// Reads the variables launchers set (Open MPI: OMPI_COMM_WORLD_*; MPICH: PMI_RANK).
    public static func detect(_ environment: [String: String] = ProcessInfo.processInfo.environment) -> Launcher {
        if let size = environment["OMPI_COMM_WORLD_SIZE"].flatMap(Int.init),
            let rank = environment["OMPI_COMM_WORLD_RANK"].flatMap(Int.init)
        {
            return .openMPI(
                rank: rank, size: size, localSize: environment["OMPI_COMM_WORLD_LOCAL_SIZE"].flatMap(Int.init) ?? 1)
        }
        if environment["PMI_RANK"] != nil || environment["PMI_SIZE"] != nil { return .other("PMI (MPICH, Intel MPI)") }
        return .none
    }

    /// Ranks on this host (they share its cores and memory).
    public var ranksOnThisHost: Int {
        if case .openMPI(_, _, let localSize) = self { return max(1, localSize) }
        return 1
    }

    /// Seconds a rank waits for the others in a collective or at start-up before the job is stopped.
    public static let defaultTimeout: Double = 300

    /// The communicator for this process: one process, or Open MPI's world.
    public func communicator(timeout: Double = Launcher.defaultTimeout) throws(DistributedError) -> Communicator {
        switch self {
        case .none: return SingleProcess()
        case .openMPI(let rank, let size, _):
            let communicator = try MPICommunicator(timeout: timeout)
            guard communicator.rank == rank, communicator.size == size else {
                throw DistributedError(
                    "MPI started as rank \(communicator.rank) of \(communicator.size), but mpirun launched rank \(rank) of \(size): the MPI library does not match the mpirun that started this job",
                    hint:
                        "use the mpirun of the Open MPI that FLEDGE_MPI_LIBRARY (or libmpi.so.40) belongs to; `mpirun --version` and `ldconfig -p | grep libmpi` tell which is installed."
                )
            }
            return communicator
        case .other(let name):
            throw DistributedError(
                "this process was started by the launcher of another MPI (\(name))",
                hint: "Fledge runs on Open MPI: start it with Open MPI's mpirun (Debian: apt-get install openmpi-bin).")
        }
    }
}

/// The collectives of an `mpirun` job, over Open MPI.
public final class MPICommunicator: Communicator, @unchecked Sendable {
    public let rank: Int
    public let size: Int
    public let name: String
    /// Seconds a collective may wait for the other ranks before the job is aborted.
    public let timeout: Double
    /// The collective in progress and when it began (read by the watchdog).
    private let lock = NSLock()
    private var current: (what: StaticString, since: Double)?
    private var watchdog: Thread?

    /// The libraries tried, in order: FLEDGE_MPI_LIBRARY alone when it is set, else Open MPI's sonames.
    public static var libraryCandidates: [String] {
        ProcessInfo.processInfo.environment["FLEDGE_MPI_LIBRARY"].map { [$0] } ?? ["libmpi.so.40", "libmpi.so"]
    }

    /// Loads Open MPI, initialises it and starts the watchdog. Throws when MPI is missing or broken.
    public init(timeout: Double) throws(DistributedError) {
        self.timeout = timeout
        var failures: [String] = []
        var loaded = false
        var message = [CChar](repeating: 0, count: 1024)
        for library in Self.libraryCandidates {
            if fledge_mpi_open(library, &message, message.count) == 0 {
                loaded = true
                break
            }
            failures.append(text(message))
        }
        guard loaded else {
            throw DistributedError(
                "Open MPI's library could not be loaded (\(failures.joined(separator: "; ")))",
                hint:
                    "install Open MPI (Debian: apt-get install openmpi-bin libopenmpi-dev), or set FLEDGE_MPI_LIBRARY to the path of its libmpi.so."
            )
        }
        var rank: Int32 = 0
        var size: Int32 = 0
        // MPI_Init talks to the launcher: bounded like a collective, so a broken installation cannot hang.
        let start = Date()
        let guardThread = Thread {
            while Date().timeIntervalSince(start) < max(timeout, 30) {
                Thread.sleep(forTimeInterval: 0.25)
                if Thread.current.isCancelled { return }
            }
            FileHandle.standardError.write(
                Data(
                    "error: MPI_Init did not finish in \(Int(max(timeout, 30))) s: the MPI installation or the launcher is broken.\nHint: check that `mpirun -n 2 hostname` works.\n"
                        .utf8))
            _exit(1)
        }
        guardThread.start()
        let code = fledge_mpi_init(&rank, &size, &message, message.count)
        guardThread.cancel()
        guard code == 0 else {
            throw DistributedError(
                "MPI could not start: \(text(message))",
                hint:
                    "check that `mpirun -n 2 hostname` works; start fledge with mpirun (or `fledge train --processes N`)."
            )
        }
        self.rank = Int(rank)
        self.size = Int(size)
        let version = String(cString: fledge_mpi_library_version())
        name = version.isEmpty ? "Open MPI" : version
        startWatchdog()
    }

    /// Checks twice a second whether a collective has waited past the timeout.
    private func startWatchdog() {
        let thread = Thread { [unowned self] in
            while true {
                Thread.sleep(forTimeInterval: 0.5)
                self.lock.lock()
                let pending = self.current
                self.lock.unlock()
                guard let pending, Date().timeIntervalSinceReferenceDate - pending.since > self.timeout else {
                    continue
                }
                FileHandle.standardError.write(
                    Data(
                        "error: rank \(self.rank): the other ranks did not answer for \(Int(self.timeout)) s (\(pending.what)): one of them has stopped, hangs or cannot be reached; stopping the job.\nHint: the last checkpoint (latest/) is intact; continue with --resume. If the ranks are only slow (a long evaluation or checkpoint), raise --collective-timeout.\n"
                            .utf8))
                fledge_mpi_abort(1)
            }
        }
        watchdog = thread
        thread.start()
    }

    /// Runs one collective under the watchdog; a failure becomes an error naming the call.
    private func guarded(_ what: StaticString, _ body: (UnsafeMutablePointer<CChar>, Int) -> Int32)
        throws(DistributedError)
    {
        lock.lock()
        current = (what, Date().timeIntervalSinceReferenceDate)
        lock.unlock()
        var failure = ""
        let code = withUnsafeTemporaryAllocation(of: CChar.self, capacity: 512) { buffer in
            buffer[0] = 0
            let code = body(buffer.baseAddress!, buffer.count)
            if code != 0 { failure = text(Array(buffer)) }
            return code
        }
        lock.lock()
        current = nil
        lock.unlock()
        guard code == 0 else {
            throw DistributedError(
                "rank \(rank): \(what): \(failure)",
                hint: "another rank has probably failed; its own message says why. The last checkpoint is intact.")
        }
    }

    public func allReduceSum(_ values: UnsafeMutableBufferPointer<Float>, what: StaticString) throws(DistributedError) {
        guard let base = values.baseAddress, values.count > 0 else { return }
        try guarded(what) { fledge_mpi_allreduce_sum_float(base, values.count, $0, $1) }
    }

    public func allReduceSum(_ values: UnsafeMutableBufferPointer<Double>, what: StaticString) throws(DistributedError)
    {
        guard let base = values.baseAddress, values.count > 0 else { return }
        try guarded(what) { fledge_mpi_allreduce_sum_double(base, values.count, $0, $1) }
    }

    public func broadcast(_ bytes: UnsafeMutableRawBufferPointer, from root: Int, what: StaticString)
        throws(DistributedError)
    {
        guard let base = bytes.baseAddress, bytes.count > 0 else { return }
        try guarded(what) { fledge_mpi_broadcast(base, bytes.count, Int32(root), $0, $1) }
    }

    public func barrier(what: StaticString) throws(DistributedError) {
        try guarded(what) { fledge_mpi_barrier($0, $1) }
    }

    public func abort(code: Int32) -> Never {
        fledge_mpi_abort(code)
        exit(code)
    }

    public func finish() {
        lock.lock()
        current = nil
        lock.unlock()
        _ = fledge_mpi_finalize()
    }
}

/// `fledge train --processes N`: the `mpirun` command that starts N ranks of this program on this host.
public enum MPIRun {
    /// `mpirun` on PATH (Open MPI's), or an error saying what to install.
    public static func find(_ environment: [String: String] = ProcessInfo.processInfo.environment)
        throws(DistributedError) -> String
    {
        for folder in (environment["PATH"] ?? "/usr/bin:/bin").split(separator: ":") {
            let path = "\(folder)/mpirun"
            if FileManager.default.isExecutableFile(atPath: path) { return path }
        }
        throw DistributedError(
            "--processes needs Open MPI's mpirun, which is not on PATH",
            hint: "install Open MPI (Debian: apt-get install openmpi-bin libopenmpi-dev), or train in one process.")
    }

    /// mpirun's arguments: N ranks on this host, not bound to cores (each rank runs its own worker threads),
    /// more ranks than cores allowed, and, for root, Open MPI's explicit consent to run as root.
    public static func arguments(processes: Int, program: String, arguments: [String], asRoot: Bool) -> [String] {
        ["-n", "\(processes)", "--bind-to", "none", "--oversubscribe", "--stdin", "none"]
            + (asRoot ? ["--allow-run-as-root"] : []) + [program] + arguments
    }

    /// Runs `mpirun` with `arguments` in a process group of its own and waits for it; returns its exit status.
    /// Ctrl-C reaches this process only: the first is passed on as SIGUSR1, which mpirun forwards to every
    /// rank (each stops after the current update and rank 0 saves latest/); a second stops the job at once.
    /// (Ctrl-C sent to mpirun itself kills the ranks without a save.)
    public static func run(_ mpirun: String, arguments: [String]) throws(DistributedError) -> Int32 {
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETPGROUP))
        posix_spawnattr_setpgroup(&attributes, 0)
        var pointers = ([mpirun] + arguments).map { strdup($0) } + [nil]
        defer { for pointer in pointers { free(pointer) } }
        var child: pid_t = 0
        let code = posix_spawn(&child, mpirun, nil, &attributes, &pointers, environ)
        guard code == 0 else {
            throw DistributedError(
                "could not start \(mpirun): \(String(cString: strerror(code)))",
                hint: "check that `mpirun -n 2 hostname` works.")
        }
        signal(SIGINT, SIG_IGN)
        let interrupts = DispatchSource.makeSignalSource(signal: SIGINT, queue: .global())
        let count = Counter()
        interrupts.setEventHandler {
            if count.next() == 1 {
                FileHandle.standardError.write(
                    Data("\nstopping every rank after this update (saving latest/); Ctrl-C again to quit now\n".utf8))
                kill(child, SIGUSR1)
            } else {
                kill(child, SIGTERM)
            }
        }
        interrupts.resume()
        var status: Int32 = 0
        while waitpid(child, &status, 0) < 0 && errno == EINTR {}
        interrupts.cancel()
        if status & 0x7f == 0 { return (status >> 8) & 0xff }  // exited
        return 128 + (status & 0x7f)  // killed by a signal
    }
}

/// A count shared with a signal handler.
private final class Counter: @unchecked Sendable {
    private let lock = NSLock()
    private var value = 0
    func next() -> Int {
        lock.lock()
        defer { lock.unlock() }
        value += 1
        return value
    }
}

/// The text of a NUL-terminated C buffer.
func text(_ buffer: [CChar]) -> String {
    String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
}
