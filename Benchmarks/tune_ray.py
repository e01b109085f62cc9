"""Ray Tune 2.60's side of `make bench-tune`: 200 trivial trials (a function trainable that
reports Branin once), 2 at a time, FIFO and ASHA, with and without `reuse_actors`. Prints one
JSON object: trials/s per setting (the `Tuner.fit()` wall time; `ray.init` excluded); with
`reuse_actors` the median of 3 runs (it varies from run to run), by default one run (about 200 s)."""
import json
import math
import sys
import time

import ray
from ray import tune
from ray.tune.schedulers import ASHAScheduler, FIFOScheduler


def branin(config):
    x, y = config["x"], config["y"]
    b, c, t = 5.1 / (4 * math.pi**2), 5 / math.pi, 1 / (8 * math.pi)
    tune.report({"value": (y - b * x * x + c * x - 6) ** 2 + 10 * (1 - t) * math.cos(x) + 10})


def run(samples, scheduler, reuse):
    tuner = tune.Tuner(
        branin,
        param_space={"x": tune.uniform(-5, 10), "y": tune.uniform(0, 15)},
        tune_config=tune.TuneConfig(
            num_samples=samples, max_concurrent_trials=2, metric="value", mode="min",
            scheduler=ASHAScheduler() if scheduler == "asha" else FIFOScheduler(), reuse_actors=reuse),
        run_config=tune.RunConfig(verbose=0, storage_path="/tmp/ray_tune_bench"),
    )
    started = time.perf_counter()
    results = tuner.fit()
    seconds = time.perf_counter() - started
    assert len(results) == samples and not results.errors
    return {"trials": samples, "seconds": seconds, "trials_per_second": samples / seconds,
            "best": results.get_best_result().metrics["value"]}


def main():
    samples = int(sys.argv[1]) if len(sys.argv) > 1 else 200
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    figures = {}
    for reuse in (True, False):
        for scheduler in ("fifo", "asha"):
            runs = sorted((run(samples, scheduler, reuse) for _ in range(3 if reuse else 1)),
                          key=lambda r: r["trials_per_second"])
            figures[f"{scheduler}/{'reuse' if reuse else 'default'}"] = dict(
                runs[len(runs) // 2], runs=[r["trials_per_second"] for r in runs])
            print(scheduler, reuse, [r["trials_per_second"] for r in runs], file=sys.stderr, flush=True)
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
