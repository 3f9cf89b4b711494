// BLAS: which CBLAS library is loaded, and its thread count.
// Fledge links Debian's `libblas.so` alternative and calls only CBLAS, so OpenBLAS, BLIS or MKL can be
// swapped without a rebuild. Fledge runs BLAS single-threaded and splits GEMMs over its own ThreadPool:
// one owner of the cores, and GEMMs can be called from inside parallel regions (attention).

import COpenBLAS

/// Facts about, and settings of, the CBLAS library in this process.
public enum BLAS {
    private typealias SetThreads32 = @convention(c) (Int32) -> Void
    private typealias SetThreads64 = @convention(c) (Int64) -> Void
    private typealias GetString = @convention(c) () -> UnsafePointer<CChar>?

    private static func symbol(_ name: String) -> UnsafeMutableRawPointer? {
        dlsym(UnsafeMutableRawPointer(bitPattern: 0), name)
    }

    /// A name for the loaded BLAS library (e.g. "OpenBLAS 0.3.21 ...", "BLIS 0.9.0", "MKL").
    public static var libraryName: String {
        if let s = symbol("openblas_get_config") {
            let f = unsafeBitCast(s, to: GetString.self)
            return "OpenBLAS " + (f().map { String(cString: $0) } ?? "")
        }
        if let s = symbol("bli_info_get_version_str") {
            let f = unsafeBitCast(s, to: GetString.self)
            return "BLIS " + (f().map { String(cString: $0) } ?? "")
        }
        if symbol("MKL_Set_Num_Threads") != nil || symbol("mkl_set_num_threads") != nil { return "Intel MKL" }
        return "unknown CBLAS"
    }

    /// Sets the library's own thread count (1 = Fledge does the threading). Unknown libraries are left alone.
    public static func setThreadCount(_ count: Int) {
        if let s = symbol("openblas_set_num_threads") { unsafeBitCast(s, to: SetThreads32.self)(Int32(count)) }
        if let s = symbol("bli_thread_set_num_threads") { unsafeBitCast(s, to: SetThreads64.self)(Int64(count)) }
        if let s = symbol("MKL_Set_Num_Threads") { unsafeBitCast(s, to: SetThreads32.self)(Int32(count)) }
    }
}
