"""`make bench-train`: data-parallel training of the hybrid model, Shoal beside PyTorch/Ray on this
machine, in one run; writes its section of Benchmarks/RESULTS.md.

Rows:
- all-reduce of the hybrid model's 557,956 float32 gradients among 2 and 4 processes: Shoal's
  `trading model allreduce-bench` (shared memory, and the ZeroMQ ring used between machines)
  beside torch.distributed with gloo (Benchmarks/allreduce_gloo.py), beside one memcpy;
- training throughput with 1 and 2 workers of 1 CPU, batch 64 per worker: `trading model train
  --workers N` on an embedded cluster beside Ray Train's TorchTrainer (Benchmarks/train_ray.py),
  the same architecture at the synthetic market's 17 features;
- a full 4-epoch run on the synthetic market, its test metrics beside the majority class;
- from submitting a 2-worker training job to its first finished step: `cluster submit -- trading
  model train --workers 2 …` beside `ray job submit -- python train_ray.py --first-step`, each on
  a fresh cluster of its system started beforehand.
Usage: python3 Benchmarks/train_bench.py BIN_DIR OUT.json RESULTS.md
"""
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time

from results_section import replace_section

HERE = os.path.dirname(os.path.abspath(__file__))
ROUNDS = 3
BEGIN = "<!-- bench-train begin -->"
END = "<!-- bench-train end -->"


def processor():
    for line in open("/proc/cpuinfo"):
        if line.startswith("model name"):
            name = line.split(":", 1)[1].strip()
            flags = open("/proc/cpuinfo").read()
            return f"{name} ({'AVX-512' if 'avx512f' in flags else 'AVX2'}), {os.cpu_count()} vCPUs"
    return platform.processor()


def run_json(command, out, env=None):
    subprocess.run(command, check=True, env=env, stdout=sys.stderr)
    return json.load(open(out))


def first_line(command, marker, env, timeout=600):
    start = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1, env=env)
    first, lines = None, []
    for line in process.stdout:
        lines.append(line)
        if first is None and marker in line:
            first = time.perf_counter() - start
    process.wait(timeout=timeout)
    if process.returncode != 0 or first is None:
        raise SystemExit(f"{command} failed ({process.returncode}):\n{''.join(lines[-40:])}")
    return first


def main():
    bin_dir, out, results_path = sys.argv[1:4]
    trading = os.path.join(bin_dir, "trading")
    cluster = os.path.join(bin_dir, "cluster")
    scratch = tempfile.mkdtemp(prefix="shoal-train-bench-")
    figures = {"processor": processor(), "date": time.strftime("%Y-%m-%d")}
    try:
        print("== all-reduce", file=sys.stderr)
        # On this VM a call is fast while every rank's vCPU runs and slow when one has halted, so a
        # single run can land in either mode: rounds alternate the systems, each figure their median.
        measured = {}
        for round_index in range(ROUNDS):
            for ranks in (2, 4):
                systems = ["shm", "ring", "gloo"] if round_index % 2 == 0 else ["gloo", "ring", "shm"]
                for system in systems:
                    if system == "gloo":
                        result = run_json(
                            [sys.executable, os.path.join(HERE, "allreduce_gloo.py"), f"{scratch}/gloo.json", "--ranks",
                             str(ranks)], f"{scratch}/gloo.json")
                        key = f"allreduce_gloo_{ranks}"
                    else:
                        result = run_json(
                            [trading, "model", "allreduce-bench", "--ranks", str(ranks), "--collective", system,
                             "--json", f"{scratch}/ar.json"], f"{scratch}/ar.json")
                        key = f"allreduce_shoal_{system}_{ranks}"
                    measured.setdefault(key, []).append(result)
        for key, calls in measured.items():
            medians = sorted(result["median_ms"] for result in calls)
            figures[key] = dict(calls[0], median_ms=medians[len(medians) // 2], rounds=medians)

        print("== training throughput", file=sys.stderr)
        # Rounds that alternate the systems and worker counts: each figure is the median of its rounds.
        rounds = {}
        for round_index in range(ROUNDS):
            for workers in (1, 2):
                systems = ["shoal", "ray"] if round_index % 2 == 0 else ["ray", "shoal"]
                for system in systems:
                    if system == "shoal":
                        result = run_json(
                            [trading, "model", "train", "--workers", str(workers), "--batch-size", str(64 * workers),
                             "--max-steps", "45", "--epochs", "100", "--patience", "0", "--warmup-steps", "5",
                             "--out", f"{scratch}/shoal-{workers}-{round_index}", "--json", f"{scratch}/tp.json"],
                            f"{scratch}/tp.json")
                    else:
                        result = run_json(
                            [sys.executable, os.path.join(HERE, "train_ray.py"), f"{scratch}/ray.json", "--workers",
                             str(workers)], f"{scratch}/ray.json", env=dict(os.environ, RAY_AUTH_MODE="disabled"))
                    rounds.setdefault(f"throughput_{system}_{workers}", []).append(result)
        for key, measured in rounds.items():
            rates = sorted(result["samples_per_second"] for result in measured)
            figures[key] = dict(measured[0], samples_per_second=rates[len(rates) // 2], rounds=rates)

        print("== submit to first step", file=sys.stderr)
        session = tempfile.mkdtemp(prefix="shoal-train-session-")
        env = dict(os.environ, SHOAL_SESSION_DIR=session, SHOAL_LOG_LEVEL="warning")
        subprocess.run([cluster, "start", "--head", "--port", "0", "--num-cpus", "2"], check=True, env=env, capture_output=True)
        try:
            # A first submit ships the binary to the node; the figure is the next one's.
            shoal_first = []
            for run in range(3):
                shoal_first.append(first_line(
                    [cluster, "submit", "--", trading, "model", "train", "--workers", "2", "--batch-size", "128",
                     "--max-steps", "3", "--epochs", "100", "--patience", "0", "--out", f"{scratch}/submitted-{run}"],
                    " step 1/", env))
            figures["first_step_shoal"] = {"cold": shoal_first[0], "warm": sorted(shoal_first[1:])[len(shoal_first[1:]) // 2]}
        finally:
            subprocess.run([cluster, "stop"], env=env, capture_output=True)
            shutil.rmtree(session, ignore_errors=True)
        if "--skip-full-run" in sys.argv and os.path.exists(out) and "full_run" in json.load(open(out)):
            figures["full_run"] = json.load(open(out))["full_run"]
            figures["full_run_date"] = json.load(open(out)).get("full_run_date", json.load(open(out)).get("date"))
        else:
            print("== a full training run", file=sys.stderr)
            started = time.perf_counter()
            subprocess.run([trading, "model", "train", "--workers", "2", "--epochs", "4", "--out", f"{scratch}/full"],
                           check=True, stdout=sys.stderr)
            figures["full_run"] = json.load(open(f"{scratch}/full/test-report.json"))
            figures["full_run"]["seconds"] = time.perf_counter() - started
            figures["full_run"]["epochs_run"] = len(open(f"{scratch}/full/metrics.csv").read().strip().split("\n")) - 1
            figures["full_run_date"] = figures["date"]
        ray_env = dict(os.environ, RAY_AUTH_MODE="disabled")
        subprocess.run(["ray", "stop", "--force"], env=ray_env, capture_output=True)
        subprocess.run(["ray", "start", "--head", "--num-cpus", "2", "--include-dashboard=true", "--disable-usage-stats"],
                       check=True, env=ray_env, capture_output=True)
        try:
            ray_first = []
            for run in range(2):
                ray_first.append(first_line(
                    ["ray", "job", "submit", "--address", "http://127.0.0.1:8265", "--working-dir", HERE, "--",
                     "python3", "train_ray.py", "--first-step"], "first finished step", ray_env))
            figures["first_step_ray"] = {"cold": ray_first[0], "warm": ray_first[1]}
        finally:
            subprocess.run(["ray", "stop", "--force"], env=ray_env, capture_output=True)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    json.dump(figures, open(out, "w"), indent=1)
    report(figures, results_path)


def report(f, results):
    lines = [BEGIN, "## Data-parallel training (issue: hybrid-model training on the cluster)", ""]
    lines.append(
        f"Measured {f['date']} by `make bench-train`, one run, release build, on {f['processor']}; every row side by side "
        "in that run. Several processes of one machine (no network namespaces): the shared-memory all-reduce is the path "
        "Shoal takes when every worker is on one machine; the ZeroMQ ring is its path between machines, measured here "
        "over loopback.")
    lines += ["", "| all-reduce of 557,956 float32 (2.2 MB) | processes | Shoal shared memory | Shoal ZeroMQ ring | "
              "gloo | Shoal (shm) / gloo | memcpy of the buffer |", "|---|---:|---:|---:|---:|---:|---:|"]
    for ranks in (2, 4):
        shm, ring, gloo = f[f"allreduce_shoal_shm_{ranks}"], f[f"allreduce_shoal_ring_{ranks}"], f[f"allreduce_gloo_{ranks}"]
        lines.append(
            f"| median ms (slowest rank per call) | {ranks} | {shm['median_ms']:.3f} | {ring['median_ms']:.3f} | "
            f"{gloo['median_ms']:.3f} | **{gloo['median_ms'] / shm['median_ms']:.1f}×** | {shm['memcpy_ms']:.3f} |")
    allreduce_rounds = ""
    if "rounds" in f["allreduce_gloo_2"]:
        def rounds_of(key):
            return ", ".join(f"{value:.3f}" for value in f[key]["rounds"])
        allreduce_rounds = (f" Each figure is the median of {len(f['allreduce_gloo_2']['rounds'])} rounds that alternate the "
                            "systems (a round's figure: the median of its calls); the rounds, ms: " + "; ".join(
                                f"{ranks} processes shm {rounds_of(f'allreduce_shoal_shm_{ranks}')}, ring "
                                f"{rounds_of(f'allreduce_shoal_ring_{ranks}')}, gloo {rounds_of(f'allreduce_gloo_{ranks}')}"
                                for ranks in (2, 4)) + ".")
    lines += ["", "Goal ≥ 5× gloo. gloo: " + f["allreduce_gloo_2"]["system"] +
              ", OMP_NUM_THREADS=1 per process; a barrier lines the ranks up before each of 200 timed calls in both." +
              allreduce_rounds, ""]
    lines += ["| training throughput, samples/s | workers | Shoal | Ray Train | Shoal / Ray Train | scaling 1→2 (Shoal) | "
              "scaling 1→2 (Ray) |", "|---|---:|---:|---:|---:|---:|---:|"]
    s1, s2 = f["throughput_shoal_1"]["samples_per_second"], f["throughput_shoal_2"]["samples_per_second"]
    r1, r2 = f["throughput_ray_1"]["samples_per_second"], f["throughput_ray_2"]["samples_per_second"]
    lines.append(f"| batch 64 per worker | 1 | {s1:.0f} | {r1:.0f} | **{s1 / r1:.2f}×** | | |")
    rounds_note = ""
    if "rounds" in f["throughput_shoal_1"]:
        def listed(key):
            return ", ".join(f"{rate:.0f}" for rate in f[key]["rounds"])
        rounds_note = (f" Medians of {len(f['throughput_shoal_1']['rounds'])} rounds that alternate the systems; the rounds: "
                       f"Shoal 1 worker {listed('throughput_shoal_1')}, 2 workers {listed('throughput_shoal_2')}; Ray Train "
                       f"1 worker {listed('throughput_ray_1')}, 2 workers {listed('throughput_ray_2')}.")
    lines.append(f"| batch 64 per worker | 2 | {s2:.0f} | {r2:.0f} | **{s2 / r2:.2f}×** | {s2 / (2 * s1):.0%} | {r2 / (2 * r1):.0%} |")
    lines += ["", f"Goal ≥ 2× Ray Train at each worker count and ≥ 90% scaling. Model: the hybrid architecture at 17 input "
              f"features ({int(f['throughput_shoal_1']['parameters']):,} parameters), window 64, AdamW and clipping on both sides; "
              "Shoal trains on synthetic-market windows, Ray Train on random tensors of the same shape. Samples/s over steps "
              "5–44 (Shoal: the driver's clock at segment ends, all-reduce included; Ray: rank 0's clock)." + rounds_note, ""]
    sf, rf = f["first_step_shoal"], f["first_step_ray"]
    lines += ["| submit → first finished step, seconds | Shoal | Ray | Ray / Shoal |", "|---|---:|---:|---:|",
              f"| warm (a job of that binary ran before) | {sf['warm']:.2f} | {rf['warm']:.2f} | **{rf['warm'] / sf['warm']:.1f}×** |",
              f"| cold (first job on a fresh cluster) | {sf['cold']:.2f} | {rf['cold']:.2f} | {rf['cold'] / sf['cold']:.1f}× |",
              "", "Goal ≥ 20× sooner. Shoal: `cluster submit -- trading model train --workers 2 …` (the data, the "
              "placement group, two workers, the first step of the reference-width model); Ray: `ray job submit -- python "
              "train_ray.py --first-step` (TorchTrainer with 2 workers) on a running `ray start --head` cluster; both until "
              "the line reaches the submitter's output."]
    if "full_run" in f:
        run, m = f["full_run"], f["full_run"]["metrics"]
        names = ["Sell", "Hold", "Buy"]
        lines += ["", f"A full run (measured {f.get('full_run_date', f['date'])}): `trading model train --workers 2 --epochs 4` on the synthetic market (4 assets × 20,000 "
                  f"bars, the reference-width model at 17 features), {run['epochs_run']} epochs in {run['seconds'] / 60:.1f} min; "
                  f"the test split ({m['count']:,} windows) with the weights of epoch {run['epoch']}:", "",
                  "| | accuracy | macro-F1 | loss | MSE | IC |", "|---|---:|---:|---:|---:|---:|",
                  f"| model | {m['accuracy']:.4f} | {m['macroF1']:.4f} | {m['loss']:.4f} | {m['mse']:.4f} | "
                  f"{m['informationCoefficient']:.4f} |",
                  f"| always {names[run['majorityClass']]} (training split's majority) | {run['baselineAccuracy']:.4f} | "
                  f"{run['baselineMacroF1']:.4f} | | | |", "",
                  f"One-sided binomial test of the model's accuracy against the baseline's: p = {run['pValue']:.3g}. " +
                  ("The model beats the majority class." if run["pValue"] < 0.05 and m["accuracy"] > run["baselineAccuracy"]
                   else "The model is **not** better than always predicting the majority class.")]
    lines.append(END)
    replace_section(results, BEGIN, END, lines)


if __name__ == "__main__":
    if len(sys.argv) >= 4 and sys.argv[1] == "--report":
        figures = json.load(open(sys.argv[2]))
        if len(sys.argv) == 6:  # --report FIGURES RESULTS FULL_RUN_FOLDER SECONDS: a full run made apart
            figures["full_run"] = json.load(open(os.path.join(sys.argv[4], "test-report.json")))
            figures["full_run"]["seconds"] = float(sys.argv[5])
            figures["full_run"]["epochs_run"] = len(open(os.path.join(sys.argv[4], "metrics.csv")).read().strip().split("\n")) - 1
            json.dump(figures, open(sys.argv[2], "w"), indent=1)
        report(figures, sys.argv[3])
    else:
        main()
