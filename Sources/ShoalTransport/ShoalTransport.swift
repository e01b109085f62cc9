// ShoalTransport: ZeroMQ and local links for Shoal's processes.
//
// A `Socket` wraps one libzmq socket and belongs to one `EventLoop` thread, which polls it and
// hands each multipart `Message` to the handler registered for it. The loop is also a Swift
// `SerialExecutor` and `TaskExecutor`, so an actor can make the loop its executor and own
// sockets safely, and async code can run on the loop without a thread hop. Between processes of
// one machine, a `Connection` to a `RouterEndpoint` takes a `LocalLink` (a Unix-domain stream the
// loops read and write themselves) instead of ZeroMQ. This module knows nothing of scheduling or
// of the messages' meaning.
