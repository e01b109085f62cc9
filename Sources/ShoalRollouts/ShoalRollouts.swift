// ShoalRollouts: reinforcement learning's rollouts on a Shoal cluster. Rollout workers
// (`EnvRunner` actors) step vectors of environments with the learner's current policy and
// return trajectories as raw float buffers; the learner publishes its weights once per update
// through the object store, where every runner reads them on its own node. `EnvRunnerGroup` is
// the learner's side: it starts the runners, gathers their parts of each rollout, and replaces
// a runner whose process died. The algorithms themselves live in `ShoalRL`, which knows
// nothing of the cluster.
