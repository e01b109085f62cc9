import CPosix
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// Set when the process was asked to stop (SIGTERM, SIGINT, or the head's shutdown).
public let stopRequested = Atomic<Bool>(false)

/// Turns SIGTERM and SIGINT into `stopRequested`, so daemons can end their children first.
public func installStopSignalHandlers() {
    signal(SIGTERM) { _ in stopRequested.store(true, ordering: .relaxed) }
    signal(SIGINT) { _ in stopRequested.store(true, ordering: .relaxed) }
    signal(SIGPIPE, SIG_IGN)
}

/// Asks this process to stop, as SIGTERM would.
public func requestStop() { stopRequested.store(true, ordering: .relaxed) }

/// Whether this process was asked to stop.
public var isStopRequested: Bool { stopRequested.load(ordering: .relaxed) }

/// Sleeps until `stopRequested` is set.
public func waitForStopRequest() async {
    while !stopRequested.load(ordering: .relaxed) {
        try? await Task.sleep(for: .milliseconds(50))
    }
}

/// Flushes buffered standard output, so a parent reading a pipe sees what was printed.
public func flushStandardOutput() {
    fflush(nil)
}

/// Makes standard output flush at every newline, even into a pipe (so a process that hangs
/// shows how far it got).
public func lineBufferStandardOutput() {
    shoal_line_buffer_stdout()
}
