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
