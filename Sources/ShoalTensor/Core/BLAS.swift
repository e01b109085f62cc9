import COpenBLAS
import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// OpenBLAS, and the kernels it runs.
///
/// Debian's OpenBLAS 0.3.21 does not recognise recent Xeons and falls back to its Prescott
/// kernels (about a fifth of the speed); it reads `OPENBLAS_CORETYPE` once, when it loads. So a
/// process that does numeric work calls `ensureBestKernels()` first thing: when the variable is
/// unset it sets it for this processor and starts the program again in place (a value already
/// in the environment is respected), and node daemons pass it on to executors.
public enum BLAS {
    /// The OpenBLAS core type this processor should run: `SKYLAKEX` with AVX-512, `HASWELL`
    /// with AVX2 and FMA, nil otherwise (let OpenBLAS decide).
    public static var preferredCoreType: String? {
        guard let info = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8),
            let flagsLine = info.split(separator: "\n").first(where: { $0.hasPrefix("flags") })
        else { return nil }
        let flags = Set(flagsLine.split(separator: " ").map(String.init))
        if flags.contains("avx512f") && flags.contains("avx512bw") && flags.contains("avx512vl") { return "SKYLAKEX" }
        if flags.contains("avx2") && flags.contains("fma") { return "HASWELL" }
        return nil
    }

    /// Sets `OPENBLAS_CORETYPE` for this processor and re-executes the program when it was
    /// unset; returns normally when nothing needs doing (or the re-exec is not possible).
    public static func ensureBestKernels() {
        let environment = ProcessInfo.processInfo.environment
        guard environment["OPENBLAS_CORETYPE"] == nil, environment["SHOAL_BLAS_REEXEC"] == nil,
            let core = preferredCoreType
        else { return }
        setenv("OPENBLAS_CORETYPE", core, 1)
        setenv("SHOAL_BLAS_REEXEC", "1", 1)
        let arguments = CommandLine.arguments.map { strdup($0) } + [nil]
        execv("/proc/self/exe", arguments)
        // Still here: exec failed; go on with the kernels OpenBLAS picked.
        arguments.forEach { free($0) }
    }

    /// The kernels OpenBLAS runs (`Skylakex`, `Haswell`, `Prescott` …).
    public static var coreName: String { String(cString: openblas_get_corename()) }

    /// OpenBLAS's build configuration.
    public static var configuration: String { String(cString: openblas_get_config()) }

    /// Threads OpenBLAS may use.
    public static func setThreads(_ count: Int) { Compute.setThreads(count) }
}
