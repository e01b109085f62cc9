"""Job submission, Shoal's `cluster submit` beside Ray's `ray job submit`, on this machine.

Each system gets a fresh single-node cluster of 2 CPUs. Rows (milliseconds, lower is better):
- submit to first log line: from starting the submit command to the entrypoint's first output
  line reaching the submitter's stdout (entrypoint: `sh -c 'echo first-line'`);
- submit to exit, echo job: the whole submit of that entrypoint, until the command exits;
- submit to exit, driver job: an entrypoint that connects to the cluster as a driver, runs four
  small tasks and prints their result (Shoal: `trading demo` at a tiny size; Ray: a Python
  script with four `ray.remote` calls).
The first submit of each kind is reported apart ("cold": Ray starts its job supervisor, Shoal
ships the driver's binary to the node), then the median and p90 of the warm ones.
Usage: python3 Benchmarks/jobs.py BIN_DIR OUT.json [--runs N] [--ray-runs N]
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time


def timed_submit(command, marker, env):
    start = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1, env=env)
    first = None
    lines = []
    for line in process.stdout:
        lines.append(line)
        if first is None and marker in line:
            first = time.perf_counter() - start
    process.wait()
    total = time.perf_counter() - start
    if process.returncode != 0 or first is None:
        raise SystemExit(f"{command} failed ({process.returncode}):\n{''.join(lines[-30:])}")
    return first * 1000, total * 1000


def measure(name, submit, kinds, runs):
    rows = {}
    for kind, (entrypoint, marker) in kinds.items():
        firsts, totals = [], []
        for run in range(runs + 1):
            first, total = submit(entrypoint, marker)
            firsts.append(first)
            totals.append(total)
            print(f"  {name} {kind} run {run}: first line {first:.0f} ms, exit {total:.0f} ms", file=sys.stderr, flush=True)
        rows[kind] = {"cold_first": firsts[0], "cold_total": totals[0], "first": firsts[1:], "total": totals[1:]}
    return rows


def shoal(bin_dir, runs):
    session = tempfile.mkdtemp(prefix="shoal-jobs-bench-")
    env = dict(os.environ, SHOAL_SESSION_DIR=session, SHOAL_LOG_LEVEL="warning")
    cluster = os.path.join(bin_dir, "cluster")
    subprocess.run([cluster, "start", "--head", "--port", "0", "--num-cpus", "2"], check=True, env=env, capture_output=True)
    try:
        kinds = {
            "echo": (["sh", "-c", "echo first-line"], "first-line"),
            "driver": ([os.path.join(bin_dir, "trading"), "demo", "--chunks", "4", "--paths", "200", "--steps", "8"], "Monte Carlo"),
        }

        def submit(entrypoint, marker):
            return timed_submit([cluster, "submit", "--"] + entrypoint, marker, env)

        return measure("shoal", submit, kinds, runs)
    finally:
        subprocess.run([cluster, "stop"], env=env, capture_output=True)
        shutil.rmtree(session, ignore_errors=True)


RAY_DRIVER = (
    "import ray; ray.init(); f = ray.remote(lambda i: i * i); "
    "print('ray driver result', sum(ray.get([f.remote(i) for i in range(4)])))"
)


def ray(runs):
    env = dict(os.environ, RAY_AUTH_MODE="disabled")
    subprocess.run(["ray", "stop", "--force"], env=env, capture_output=True)
    subprocess.run(
        ["ray", "start", "--head", "--num-cpus", "2", "--include-dashboard=true", "--disable-usage-stats"],
        check=True, env=env, capture_output=True)
    try:
        kinds = {
            "echo": (["sh", "-c", "echo first-line"], "first-line"),
            "driver": ([sys.executable, "-c", RAY_DRIVER], "ray driver result"),
        }

        def submit(entrypoint, marker):
            # `ray job submit` quotes each argument after -- into its shell entrypoint.
            return timed_submit(["ray", "job", "submit", "--address", "http://127.0.0.1:8265", "--"] + entrypoint, marker, env)

        return measure("ray", submit, kinds, runs)
    finally:
        subprocess.run(["ray", "stop", "--force"], env=env, capture_output=True)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("bin_dir")
    parser.add_argument("out")
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--ray-runs", type=int, default=5)
    arguments = parser.parse_args()
    print("== job submission: Shoal", file=sys.stderr)
    shoal_rows = shoal(arguments.bin_dir, arguments.runs)
    print("== job submission: Ray", file=sys.stderr)
    ray_rows = ray(arguments.ray_runs)
    json.dump({"shoal": shoal_rows, "ray": ray_rows, "runs": arguments.runs, "ray_runs": arguments.ray_runs}, open(arguments.out, "w"), indent=1)


if __name__ == "__main__":
    main()
