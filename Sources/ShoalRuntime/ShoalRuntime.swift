// ShoalRuntime: the processes of a Shoal cluster and the API their code shares.
//
// - `Head`: cluster state, lease scheduling, package store, failure detection.
// - `NodeDaemon`: one machine's resources and executor processes.
// - `ExecutorService`: runs a job's registered tasks, pushed to it directly by drivers.
// - `DriverCore`: behind `Cluster`; submits tasks to leased executors and owns their results.
//
// Each is an actor whose executor is an `EventLoop` thread that owns its ZeroMQ sockets.
// Control messages are `Shoal_V1_Envelope`; task inputs and outputs ride as extra frames.
