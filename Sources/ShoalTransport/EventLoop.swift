import CZeroMQ
import Foundation
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// A thread that polls its sockets, fires its timers and runs Swift jobs, one at a time.
///
/// The loop is a `SerialExecutor`: an actor whose `unownedExecutor` is a loop runs all its code
/// on the loop's thread, so it may own `Socket`s. It is also a `TaskExecutor`, so async code
/// started with the loop as its preference runs there without thread hops.
///
/// Sockets, handlers and timers are touched only on the loop's thread; jobs and `execute`
/// closures may come from any thread.
public final class EventLoop: SerialExecutor, TaskExecutor, @unchecked Sendable {
    private struct Registration {
        let socket: Socket
        let handler: (Message) -> Void
    }

    /// A plain file descriptor the loop polls (a `LocalLink`'s socket).
    private struct Watch {
        let id: Int
        let fd: Int32
        var events: Int16
        let handler: (Int16) -> Void
        let onStop: (() -> Void)?
    }

    private struct Timer {
        let id: Int
        var deadline: ContinuousClock.Instant
        let interval: Duration?
        let body: () -> Void
    }

    /// Jobs and closures share one queue, so work enqueued from one thread runs in order.
    private enum Work {
        case job(UnownedJob)
        case closure(@Sendable () -> Void)
    }

    private struct Inbox {
        var work: [Work] = []
        var sleeping = false
        var stopping = false
    }

    public let name: String
    private let inbox = Mutex(Inbox())
    /// A pipe whose read end the loop polls, so other threads can wake it.
    private let wakeRead: Int32
    private let wakeWrite: Int32
    private let threadID = Mutex<pthread_t?>(nil)
    private let finished = Mutex(false)
    private let started = DispatchSemaphore(value: 0)
    private let stopped = DispatchSemaphore(value: 0)

    // Loop-thread state.
    private var registrations: [Registration] = []
    private var watches: [Watch] = []
    private var nextWatchID = 0
    private var timers: [Timer] = []
    /// Set by a `shutdown()` on the loop's own thread: no socket handler, watch or timer runs
    /// after it, since their owner may be gone (an owner's deinit stops its loop). Loop thread only.
    private var handlersHalted = false
    private var nextTimerID = 0
    /// Until when the loop polls without sleeping, as its owner asked (`pollBriefly`).
    private var busyUntil = ContinuousClock.now
    /// Messages read from one socket before the loop moves on, so no peer starves another.
    private let fairnessBatch = 256
    /// Rounds of queued jobs the loop runs before it polls its sockets again.
    private let localRounds = 8

    /// How long the loop keeps polling without sleeping after it last had work: waking a
    /// sleeping thread on another core costs tens of microseconds, so latency-critical loops
    /// (drivers, executors) spin a little. Zero for loops that are rarely busy.
    private let spin: Duration

    /// Starts a loop on a new thread.
    /// - Parameter spin: how long to poll without sleeping after the last work.
    public init(name: String, spin: Duration = .zero) {
        self.name = name
        self.spin = spin
        var ends: [Int32] = [0, 0]
        guard pipe(&ends) == 0 else { preconditionFailure("pipe() failed: the process is out of file descriptors") }
        for end in ends {
            _ = fcntl(end, F_SETFL, fcntl(end, F_GETFL) | O_NONBLOCK)
            _ = fcntl(end, F_SETFD, FD_CLOEXEC)
        }
        wakeRead = ends[0]
        wakeWrite = ends[1]
        // The thread keeps its loop alive until `run` returns: an owner that drops the loop from
        // one of its own jobs must not free it under the running thread.
        let thread = Thread { self.run() }
        thread.name = name
        thread.stackSize = 4 << 20
        thread.start()
        started.wait()
    }

    deinit {
        Glibc.close(wakeRead)
        Glibc.close(wakeWrite)
    }

    /// Whether the caller runs on this loop's thread.
    public var inLoop: Bool {
        guard let owner = threadID.withLock({ $0 }) else { return false }
        return pthread_equal(owner, pthread_self()) != 0
    }

    // MARK: executors

    public func enqueue(_ job: consuming ExecutorJob) {
        let unowned = UnownedJob(job)
        let wake = inbox.withLock { inbox -> Bool in
            inbox.work.append(.job(unowned))
            defer { inbox.sleeping = false }
            return inbox.sleeping
        }
        if wake { signal() }
    }

    public func asUnownedSerialExecutor() -> UnownedSerialExecutor {
        UnownedSerialExecutor(ordinary: self)
    }

    public func checkIsolated() {
        precondition(inLoop, "expected to run on event loop '\(name)'")
    }

    public func isIsolatingCurrentContext() -> Bool? { inLoop }

    /// Runs `body` on the loop's thread, soon.
    public func execute(_ body: @escaping @Sendable () -> Void) {
        let wake = inbox.withLock { inbox -> Bool in
            inbox.work.append(.closure(body))
            defer { inbox.sleeping = false }
            return inbox.sleeping
        }
        if wake { signal() }
    }

    private func signal() {
        var one: UInt8 = 1
        _ = Glibc.write(wakeWrite, &one, 1)
    }

    // MARK: sockets and timers (loop thread only)

    /// Polls `socket` and calls `handler` with each message it receives.
    public func register(_ socket: Socket, handler: @escaping (Message) -> Void) {
        checkIsolated()
        registrations.append(Registration(socket: socket, handler: handler))
    }

    /// Opens a DEALER to `endpoint` (`Socket.dealer(connectedTo:)`) and polls it.
    public func dealer(connectedTo endpoint: String, handler: @escaping (Message) -> Void) throws -> Socket {
        let socket = try Socket.dealer(connectedTo: endpoint)
        register(socket, handler: handler)
        return socket
    }

    /// Stops polling `socket` (it stays open).
    public func unregister(_ socket: Socket) {
        checkIsolated()
        registrations.removeAll { $0.socket === socket }
    }

    /// Polls the file descriptor `fd` for `events` (poll(2)'s `POLLIN`, `POLLOUT`) and calls `handler`
    /// with the events that are ready. The descriptor stays the caller's to close; `onStop` runs
    /// on the loop's thread when the loop shuts down with the descriptor still watched.
    /// - Returns: an id for `setEvents(_:for:)` and `unwatch(_:)`.
    public func watch(
        _ fd: Int32, events: Int16, onStop: (() -> Void)? = nil, handler: @escaping (Int16) -> Void
    ) -> Int {
        checkIsolated()
        nextWatchID += 1
        watches.append(Watch(id: nextWatchID, fd: fd, events: events, handler: handler, onStop: onStop))
        return nextWatchID
    }

    /// Changes the events polled for a watched descriptor.
    public func setEvents(_ events: Int16, for id: Int) {
        checkIsolated()
        if let index = watches.firstIndex(where: { $0.id == id }) { watches[index].events = events }
    }

    /// Stops polling a watched descriptor.
    public func unwatch(_ id: Int) {
        checkIsolated()
        watches.removeAll { $0.id == id }
    }

    /// Calls `body` after `delay`, and again every `repeating` if given.
    /// - Returns: an id for `cancelTimer(_:)`.
    @discardableResult
    public func schedule(after delay: Duration, repeating: Duration? = nil, _ body: @escaping () -> Void) -> Int {
        checkIsolated()
        nextTimerID += 1
        timers.append(Timer(id: nextTimerID, deadline: .now + delay, interval: repeating, body: body))
        return nextTimerID
    }

    /// Cancels a timer from `schedule`.
    public func cancelTimer(_ id: Int) {
        checkIsolated()
        timers.removeAll { $0.id == id }
    }

    /// Keeps the loop polling, without sleeping, for `duration`: for an owner that expects an
    /// answer within microseconds and would otherwise pay for waking a sleeping thread.
    public func pollBriefly(for duration: Duration) {
        checkIsolated()
        busyUntil = max(busyUntil, .now + duration)
    }

    /// Stops the loop after the current iteration and waits for its thread to end. Sockets still
    /// registered are closed on the loop's thread.
    public func shutdown() {
        let already = finished.withLock { done -> Bool in
            defer { done = true }
            return done
        }
        guard !already else { return }
        inbox.withLock { $0.stopping = true }
        signal()
        if inLoop {
            handlersHalted = true
        } else {
            stopped.wait()
        }
    }

    // MARK: the loop

    private func run() {
        threadID.withLock { $0 = pthread_self() }
        started.signal()
        var items: [pollfd] = []
        var batch: [Work] = []
        var lastWork = ContinuousClock.now
        while true {
            // Jobs often enqueue more jobs (a task resuming its caller): run those too before
            // polling, a few rounds at most so sockets are never left unpolled for long.
            var stopping = false
            for _ in 0..<localRounds {
                stopping = inbox.withLock { inbox in
                    swap(&batch, &inbox.work)
                    return inbox.stopping
                }
                if batch.isEmpty { break }
                for work in batch {
                    switch work {
                    case .job(let job):
                        job.runSynchronously(isolatedTo: asUnownedSerialExecutor(), taskExecutor: asUnownedTaskExecutor())
                    case .closure(let body):
                        body()
                    }
                }
                lastWork = .now
                batch.removeAll(keepingCapacity: true)
                if stopping { break }
            }
            // Work queued before the stop (a last clean-up) has run; now stop.
            if stopping { break }

            var timeout = pollTimeout()
            if timeout != 0 && ((spin > .zero && ContinuousClock.now - lastWork < spin) || ContinuousClock.now < busyUntil) {
                timeout = 0
                inbox.withLock { $0.sleeping = false }
            }
            // One poll(2) over plain descriptors: the wake pipe, each socket's signalling
            // descriptor, the watched ones. A socket used since its last check may hold input
            // its descriptor will not announce, so it is checked without waiting.
            let snapshot = registrations
            let watched = watches
            if timeout != 0 && snapshot.contains(where: { $0.socket.needsEventCheck }) { timeout = 0 }
            items.removeAll(keepingCapacity: true)
            items.append(pollfd(fd: wakeRead, events: Int16(POLLIN), revents: 0))
            for registration in snapshot {
                items.append(pollfd(fd: registration.socket.signalFD, events: Int16(POLLIN), revents: 0))
            }
            for watch in watched {
                items.append(pollfd(fd: watch.fd, events: watch.events, revents: 0))
            }
            let count = items.count
            let ready = items.withUnsafeMutableBufferPointer { Glibc.poll($0.baseAddress, nfds_t(count), Int32(timeout)) }
            inbox.withLock { $0.sleeping = false }
            if items[0].revents != 0 {
                withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 64) { buffer in
                    while Glibc.read(wakeRead, buffer.baseAddress, buffer.count) > 0 {}
                }
            }
            var worked = false
            // Handlers may register or unregister sockets: walk the snapshot polled.
            for (index, registration) in snapshot.enumerated()
            where items[index + 1].revents != 0 || registration.socket.needsEventCheck {
                // A receive that finds nothing brings libzmq's view up to date and clears the flag.
                if drain(registration) { worked = true }
            }
            if ready > 0 {
                // Socket handlers may have changed the watches: walk those that were polled.
                for (index, watch) in watched.enumerated() {
                    let revents = items[index + 1 + snapshot.count].revents
                    guard revents != 0, !handlersHalted, watches.contains(where: { $0.id == watch.id }) else { continue }
                    worked = true
                    watch.handler(revents)
                }
            }
            if worked { lastWork = .now }
            fireTimers()
        }
        for registration in registrations { registration.socket.close() }
        registrations.removeAll()
        let watched = watches
        watches.removeAll()
        for watch in watched { watch.onStop?() }
        timers.removeAll()
        stopped.signal()
    }

    /// Hands queued messages to the socket's handler. - Returns: whether there was any.
    private func drain(_ registration: Registration) -> Bool {
        var received = false
        for _ in 0..<fairnessBatch {
            guard !handlersHalted, registrations.contains(where: { $0.socket === registration.socket }) else { return received }
            guard let message = try? registration.socket.receive() else { return received }
            received = true
            registration.handler(message)
        }
        return received
    }

    /// Milliseconds poll(2) may wait: 0 with work queued, else until the next timer.
    private func pollTimeout() -> Int {
        let idle = inbox.withLock { inbox -> Bool in
            let empty = inbox.work.isEmpty && !inbox.stopping
            if empty { inbox.sleeping = true }
            return empty
        }
        guard idle else { return 0 }
        guard let next = timers.map(\.deadline).min() else { return -1 }
        let wait = next - .now
        if wait <= .zero { return 0 }
        let (seconds, attoseconds) = wait.components
        return Int(seconds) * 1000 + Int((attoseconds + 999_999_999_999_999) / 1_000_000_000_000_000)
    }

    private func fireTimers() {
        guard !timers.isEmpty else { return }
        let now = ContinuousClock.now
        var due: [() -> Void] = []
        for index in timers.indices where timers[index].deadline <= now {
            due.append(timers[index].body)
            if let interval = timers[index].interval {
                timers[index].deadline = now + interval
            } else {
                timers[index].deadline = .now + .seconds(1 << 40)
            }
        }
        timers.removeAll { $0.interval == nil && $0.deadline > now + .seconds(1 << 39) }
        for body in due where !handlersHalted { body() }
    }
}
