// Which BLAS does the products, and (for MKL) which of its code paths: MKL answers "is this an Intel CPU?"
// through Fledge (CFledgeMKL), so on any CPU it uses the kernels the CPU's instructions allow, not its default
// ones. The test process is an executable that links CFledgeMKL, as `fledge` is.

import FledgeTensor
import Foundation
import Testing

struct BLASTests {
    @Test(.enabled(if: BLAS.mklCodePath != nil, "MKL is not the BLAS in use"))
    func mklUsesTheKernelsThisCPUAllows() {
        let path = BLAS.mklCodePath ?? ""
        #expect(BLAS.mklAnyVendor)
        // Every CPU Fledge's kernels build for has AVX2, so MKL must name an AVX2 or AVX-512 path, never its
        // default "Intel(R) Architecture processors".
        #expect(path.contains("AVX"), "MKL chose \(path)")
        #expect(!path.contains("Intel(R) Architecture processors"), "MKL chose \(path)")
    }
}
