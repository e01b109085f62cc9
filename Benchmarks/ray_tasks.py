"""Ray's side of `cluster microbenchmark`: the same rows, measured the same way.

Run with `python3 Benchmarks/ray_tasks.py --json out.json` (Ray 2.60, local ray.init(num_cpus=2)).
"""
import argparse
import json
import statistics
import time

import ray


@ray.remote
def noop(x):
    return x


@ray.remote(num_cpus=0)
class Actor:
    def small(self):
        return 0

    def echo(self, value):
        return value

    def pid(self):
        import os
        return os.getpid()


@ray.remote(num_cpus=0, max_concurrency=16)
class ConcurrentActor:
    def small(self):
        return 0


@ray.remote(num_cpus=0)
class ActorClient:
    """One of the n clients of the n:n rows: calls its own actor."""

    def __init__(self):
        self.argument = ray.put(0)
        self.actor = Actor.remote()
        ray.get(self.actor.small.remote())

    def run(self, seconds, with_argument):
        deadline = time.perf_counter() + seconds
        count = 0
        while time.perf_counter() < deadline:
            if with_argument:
                ray.get([self.actor.echo.remote(self.argument) for _ in range(1000)])
            else:
                ray.get([self.actor.small.remote() for _ in range(1000)])
            count += 1000
        return count


@ray.remote(num_cpus=0)
class Client:
    def batch(self, seconds):
        deadline = time.perf_counter() + seconds
        count = 0
        while time.perf_counter() < deadline:
            ray.get([noop.remote(i) for i in range(1000)])
            count += 1000
        return count


def rate(name, body, seconds, trials):
    rates = []
    for _ in range(trials):
        start = time.perf_counter()
        count = body(start + seconds)
        rates.append(count / (time.perf_counter() - start))
    mean = statistics.mean(rates)
    deviation = statistics.pstdev(rates)
    print(f"{name:44s} {mean:.0f} +- {deviation:.0f} per second", flush=True)
    return {"name": name, "mean": mean, "deviation": deviation, "unit": "per second"}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=1.0)
    parser.add_argument("--trials", type=int, default=3)
    parser.add_argument("--json")
    args = parser.parse_args()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    ray.get([noop.remote(i) for i in range(200)])
    rows = []
    latencies = []

    def sync(deadline):
        count = 0
        while time.perf_counter() < deadline:
            start = time.perf_counter()
            ray.get(noop.remote(count))
            latencies.append((time.perf_counter() - start) * 1e6)
            count += 1
        return count

    def async_each(deadline):
        count = 0
        while time.perf_counter() < deadline:
            refs = [noop.remote(i) for i in range(1000)]
            for ref in refs:
                ray.get(ref)
            count += 1000
        return count

    clients = [Client.remote() for _ in range(4)]
    ray.get([c.batch.remote(0.1) for c in clients])

    def multi(deadline):
        return sum(ray.get([c.batch.remote(deadline - time.perf_counter()) for c in clients]))

    def get_batch(deadline):
        count = 0
        while time.perf_counter() < deadline:
            count += len(ray.get([noop.remote(i) for i in range(1000)]))
        return count

    rows.append(rate("single client tasks sync", sync, args.seconds, args.trials))
    rows.append(rate("single client tasks async", async_each, args.seconds, args.trials))
    rows.append(rate("multi client tasks async", multi, args.seconds, args.trials))
    rows.append(rate("single client tasks and get batch", get_batch, args.seconds, args.trials))
    actor = Actor.remote()
    ray.get(actor.small.remote())

    def actor_sync(deadline):
        count = 0
        while time.perf_counter() < deadline:
            ray.get(actor.small.remote())
            count += 1
        return count

    def actor_async(deadline, target=None, actors=None):
        count = 0
        while time.perf_counter() < deadline:
            if actors:
                ray.get([actors[i % len(actors)].small.remote() for i in range(1000)])
            else:
                ray.get([(target or actor).small.remote() for _ in range(1000)])
            count += 1000
        return count

    concurrent = ConcurrentActor.remote()
    ray.get(concurrent.small.remote())
    many = [Actor.remote() for _ in range(2)]
    ray.get([a.small.remote() for a in many])
    rows.append(rate("1:1 actor calls sync", actor_sync, args.seconds, args.trials))
    rows.append(rate("1:1 actor calls async", actor_async, args.seconds, args.trials))
    rows.append(rate("1:1 actor calls concurrent", lambda d: actor_async(d, target=concurrent), args.seconds, args.trials))
    rows.append(rate("1:n actor calls async", lambda d: actor_async(d, actors=many), args.seconds, args.trials))
    clients = [ActorClient.remote() for _ in range(2)]
    ray.get([c.run.remote(0.05, False) for c in clients])
    rows.append(rate("n:n actor calls async", lambda d: sum(ray.get([c.run.remote(d - time.perf_counter(), False) for c in clients])), args.seconds, args.trials))
    rows.append(rate("n:n actor calls with arg async", lambda d: sum(ray.get([c.run.remote(d - time.perf_counter(), True) for c in clients])), args.seconds, args.trials))

    import numpy

    def put_calls(deadline):
        count = 0
        while time.perf_counter() < deadline:
            ray.put(count)
            count += 1
        return count

    small = ray.put(42)

    def get_calls(deadline):
        count = 0
        while time.perf_counter() < deadline:
            ray.get(small)
            count += 1
        return count

    large = numpy.full(25 << 20, 1.5, dtype=numpy.float32)

    def put_large(deadline):
        count = 0
        while time.perf_counter() < deadline:
            ray.put(large)
            count += 1
        return count

    @ray.remote(num_cpus=0)
    class Putter:
        def run(self, seconds):
            array = numpy.full(25 << 20, 1.5, dtype=numpy.float32)
            deadline = time.perf_counter() + seconds
            count = 0
            while time.perf_counter() < deadline:
                ray.put(array)
                count += 1
            return count

    rows.append(rate("single client put calls", put_calls, args.seconds, args.trials))
    rows.append(rate("single client get calls", get_calls, args.seconds, args.trials))
    row = rate("single client put gigabytes", put_large, args.seconds, args.trials)
    gigabytes = large.nbytes / 1e9
    row.update(mean=row["mean"] * gigabytes, deviation=row["deviation"] * gigabytes, unit="GB per second")
    rows.append(row)
    putters = [Putter.remote() for _ in range(2)]
    ray.get([p.run.remote(0.05) for p in putters])
    row = rate("multi client put gigabytes", lambda d: sum(ray.get([p.run.remote(d - time.perf_counter()) for p in putters])), args.seconds, args.trials)
    row.update(mean=row["mean"] * gigabytes, deviation=row["deviation"] * gigabytes, unit="GB per second")
    rows.append(row)

    from ray.util.placement_group import placement_group, remove_placement_group

    def placement_groups(deadline):
        count = 0
        while time.perf_counter() < deadline:
            group = placement_group([{"CPU": 1}], strategy="PACK")
            ray.get(group.ready())
            remove_placement_group(group)
            count += 1
        return count

    rows.append(rate("placement group create/removal", placement_groups, args.seconds, args.trials))

    # Creation rate and idle memory: Ray starts a process per actor.
    def rss(pid):
        with open(f"/proc/{pid}/status") as handle:
            for line in handle:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
        return 0

    count = 20
    start = time.perf_counter()
    created = [Actor.remote() for _ in range(count)]
    pids = ray.get([a.pid.remote() for a in created])
    elapsed = time.perf_counter() - start
    time.sleep(0.5)
    memory = sum(rss(pid) for pid in pids) / count / 1024
    print(f"{'actor creations':44s} {count / elapsed:.1f} per second", flush=True)
    print(f"{'idle memory per actor':44s} {memory:.0f} KiB", flush=True)
    rows.append({"name": "actor creations", "mean": count / elapsed, "deviation": 0, "unit": "per second"})
    rows.append({"name": "idle memory per actor", "mean": memory, "deviation": 0, "unit": "KiB"})

    latencies.sort()
    for name, q in [("task round trip p50", 0.5), ("task round trip p99", 0.99)]:
        value = latencies[min(len(latencies) - 1, int(len(latencies) * q))]
        print(f"{name:44s} {value:.0f} us", flush=True)
        rows.append({"name": name, "mean": value, "deviation": 0, "unit": "us"})
    ray.shutdown()
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(rows, handle, indent=2)


if __name__ == "__main__":
    main()
