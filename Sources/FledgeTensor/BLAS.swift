// BLAS: which CBLAS library does the matrix products, chosen when the process starts.
// Fledge links Debian's `libblas.so.3` alternative (OpenBLAS by default) and can load another CBLAS at run
// time: FLEDGE_BLAS = auto (default: MKL when installed, else the linked one) | mkl | openblas | blis |
// system | a path to a CBLAS shared library. Each library is made single-threaded before its first call:
// Fledge splits GEMMs over its own ThreadPool, so one owner schedules the cores and GEMMs may run inside
// parallel regions (attention). MKL is let use the kernels the CPU's instructions allow on any vendor's CPU
// (CFledgeMKL; FLEDGE_MKL_VENDOR_CHECK=1 restores its Intel-only rule). Measured choice and numbers: README,
// "Choosing the BLAS".

import CFledgeMKL
import COpenBLAS
import Foundation

/// The CBLAS library in use.
public enum BLAS {
    typealias Sgemm =
        @convention(c) (
            CBLAS_ORDER, CBLAS_TRANSPOSE, CBLAS_TRANSPOSE, Int32, Int32, Int32, Float, UnsafePointer<Float>?, Int32,
            UnsafePointer<Float>?, Int32, Float, UnsafeMutablePointer<Float>?, Int32
        ) -> Void

    struct Library {
        let name: String
        let path: String
        let sgemm: Sgemm
        /// MKL's version and the processors its code path is for (MKL_Get_Version), e.g. "2020.0.4, Intel(R)
        /// Advanced Vector Extensions 2 (Intel(R) AVX2) enabled processors"; nil for other libraries.
        var mklCodePath: String? = nil
    }

    /// Library files tried for each FLEDGE_BLAS name (Debian paths first).
    static let candidates: [String: [String]] = [
        "mkl": ["libmkl_rt.so", "libmkl_rt.so.1", "libmkl_rt.so.2"],
        "openblas": ["/usr/lib/x86_64-linux-gnu/openblas-pthread/libblas.so.3", "libopenblas.so.0"],
        "blis": [
            "/usr/lib/x86_64-linux-gnu/blis-openmp/libblas.so.3", "/usr/lib/x86_64-linux-gnu/blis-pthread/libblas.so.3",
        ],
    ]

    static let library: Library = load(ProcessInfo.processInfo.environment["FLEDGE_BLAS"] ?? "auto")

    /// A description of the library in use, e.g. "mkl (libmkl_rt.so; 2020.0.4, Intel(R) Advanced Vector
    /// Extensions 2 (Intel(R) AVX2) enabled processors)" or "openblas (/usr/lib/.../libblas.so.3)".
    public static var libraryName: String {
        "\(library.name) (\(library.path)\(library.mklCodePath.map { "; \($0)" } ?? ""))"
    }

    /// For MKL: its version and the processors of the code path it chose (see `Library.mklCodePath`).
    public static var mklCodePath: String? { library.mklCodePath }

    /// Whether MKL is let choose its kernels by the CPU's instructions on any vendor's CPU (the default), or only
    /// on Intel's (FLEDGE_MKL_VENDOR_CHECK=1, MKL's own rule).
    public static var mklAnyVendor: Bool { fledge_mkl_any_vendor() != 0 }

    /// C = alpha·op(A)·op(B) + beta·C through the loaded library, on the calling thread.
    @inline(__always)
    static func sgemm(
        _ ta: CBLAS_TRANSPOSE, _ tb: CBLAS_TRANSPOSE, _ m: Int32, _ n: Int32, _ k: Int32, _ alpha: Float,
        _ a: UnsafePointer<Float>, _ lda: Int32, _ b: UnsafePointer<Float>, _ ldb: Int32, _ beta: Float,
        _ c: UnsafeMutablePointer<Float>, _ ldc: Int32
    ) {
        library.sgemm(CblasRowMajor, ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
    }

    private static func load(_ choice: String) -> Library {
        // Threading settings must be in the environment before a library initialises.
        setenv("MKL_THREADING_LAYER", "SEQUENTIAL", 0)
        setenv("OPENBLAS_NUM_THREADS", "1", 0)
        setenv("BLIS_NUM_THREADS", "1", 0)
        // MKL asks whether the CPU is Intel's when it first chooses a code path.
        fledge_mkl_set_any_vendor(ProcessInfo.processInfo.environment["FLEDGE_MKL_VENDOR_CHECK"] == "1" ? 0 : 1)
        let names = choice == "auto" ? ["mkl"] : [choice]
        for name in names {
            let files = candidates[name] ?? (name.contains("/") ? [name] : [])
            for file in files {
                guard let handle = dlopen(file, RTLD_NOW | RTLD_LOCAL), let symbol = dlsym(handle, "cblas_sgemm") else {
                    continue
                }
                setSingleThreaded(handle)
                return Library(
                    name: name.contains("/") ? "custom" : name, path: file,
                    sgemm: unsafeBitCast(symbol, to: Sgemm.self),
                    mklCodePath: mklVersion(handle))
            }
            if choice != "auto" && name != "system" {
                FileHandle.standardError.write(
                    Data("warning: FLEDGE_BLAS=\(choice) could not be loaded; using the linked BLAS.\n".utf8))
            }
        }
        let linked = dlopen(nil, RTLD_NOW)
        setSingleThreaded(linked)
        var info = Dl_info()
        let symbol = dlsym(linked, "cblas_sgemm")!
        dladdr(symbol, &info)
        let path = info.dli_fname.map { String(cString: $0) } ?? "libblas.so.3"
        // Follow Debian's alternatives links to the library actually loaded.
        let resolved = URL(fileURLWithPath: path).resolvingSymlinksInPath().path
        let name =
            resolved.contains("openblas")
            ? "openblas" : resolved.contains("blis") ? "blis" : resolved.contains("mkl") ? "mkl" : "system"
        return Library(
            name: name, path: resolved, sgemm: unsafeBitCast(symbol, to: Sgemm.self), mklCodePath: mklVersion(linked))
    }

    /// MKL's MKLVersion struct (mkl_types.h).
    private struct MKLVersion {
        var major: Int32 = 0, minor: Int32 = 0, update: Int32 = 0
        var productStatus: UnsafePointer<CChar>? = nil, build: UnsafePointer<CChar>? = nil
        var processor: UnsafePointer<CChar>? = nil, platform: UnsafePointer<CChar>? = nil
    }

    /// "version, processors of the code path" from MKL_Get_Version, when `handle` is MKL.
    private static func mklVersion(_ handle: UnsafeMutableRawPointer?) -> String? {
        typealias GetVersion = @convention(c) (UnsafeMutableRawPointer) -> Void
        guard let symbol = dlsym(handle, "MKL_Get_Version") else { return nil }
        var version = MKLVersion()
        withUnsafeMutablePointer(to: &version) {
            unsafeBitCast(symbol, to: GetVersion.self)(UnsafeMutableRawPointer($0))
        }
        let processor = version.processor.map { String(cString: $0) } ?? "unknown processors"
        return "\(version.major).\(version.minor).\(version.update), \(processor)"
    }

    /// Sets a library's own threading to one thread where it exposes a setter.
    private static func setSingleThreaded(_ handle: UnsafeMutableRawPointer?) {
        typealias SetThreads32 = @convention(c) (Int32) -> Void
        typealias SetThreads64 = @convention(c) (Int64) -> Void
        for name in ["openblas_set_num_threads", "MKL_Set_Num_Threads", "omp_set_num_threads"] {
            if let s = dlsym(handle, name) { unsafeBitCast(s, to: SetThreads32.self)(1) }
        }
        if let s = dlsym(handle, "bli_thread_set_num_threads") { unsafeBitCast(s, to: SetThreads64.self)(1) }
    }
}
