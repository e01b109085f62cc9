"""`make bench-tune`: Shoal's search beside Ray Tune 2.60 and Optuna 5 on this machine, in one run.

1. 200 trivial trials (Branin, one report), 2 at a time, FIFO and ASHA: trials/s against Ray
   Tune with `reuse_actors=True` and by default.
2. TPE against Optuna's TPESampler on Branin, Hartmann-6 and a 5-D Styblinski-Tang (log, integer
   and categorical dimensions): best value after 60 and 200 trials over 20 seeds, one trial at a
   time on both sides; one-sided Mann-Whitney (is Shoal worse?) at 5%.
3. ASHA against FIFO on the hybrid trainable: the best validation loss each reaches and the
   epochs each spends.

Usage: tune_bench.py BIN_DIR OUT_DIR RESULTS.md [--quick] [--parts trivial,tpe,hybrid]
(parts not run keep their figures from OUT_DIR/tune.json, a previous run's)
"""
import json
import os
import re
import subprocess
import sys
import time

from scipy.stats import mannwhitneyu

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from results_section import replace_section  # noqa: E402
from train_bench import processor  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))


def shoal(binary, out, name, arguments):
    """Runs `trading tune` and returns its JSON document and its 'N trials in S s' figures."""
    json_path = os.path.join(out, name + ".json")
    command = [binary, "tune", "--out", out, "--name", name, "--json", json_path] + arguments
    run = subprocess.run(command, capture_output=True, text=True)
    if run.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{run.stdout}\n{run.stderr}")
    found = re.search(r"(\d+) trials in ([\d.]+) s \(([\d.]+) trials/s\) on (\d+) worker", run.stdout)
    document = json.load(open(json_path))
    return document, {"trials": int(found.group(1)), "seconds": float(found.group(2)),
                      "trials_per_second": float(found.group(3)), "processes": int(found.group(4))}


def best_curve(document):
    trials = sorted(document["trials"], key=lambda t: t["trial_id"])
    best, curve = float("inf"), []
    for trial in trials:
        if trial["value"] is not None:
            best = min(best, trial["value"])
        curve.append(best)
    return curve


def main():
    bin_dir, out, results = sys.argv[1], sys.argv[2], sys.argv[3]
    quick = "--quick" in sys.argv
    parts = {"trivial", "tpe", "hybrid"}
    if "--parts" in sys.argv:
        parts = set(sys.argv[sys.argv.index("--parts") + 1].split(","))
    os.makedirs(out, exist_ok=True)
    binary = os.path.join(bin_dir, "trading")
    samples, seeds, tpe_trials = (40, 3, 80) if quick else (200, 20, 200)
    saved = os.path.join(out, "tune.json")
    figures = json.load(open(saved)) if parts != {"trivial", "tpe", "hybrid"} and os.path.exists(saved) else {}
    figures.update({"processor": processor(), "date": time.strftime("%Y-%m-%d"), "samples": samples, "seeds": seeds})
    if "trivial" in parts:
        trivial(binary, out, samples, figures)
    if "tpe" in parts:
        tpe(binary, out, seeds, tpe_trials, figures)
    if "hybrid" in parts:
        hybrid(binary, out, quick, figures)
    json.dump(figures, open(saved, "w"), indent=1)
    report(results, figures, quick)


def trivial(binary, out, samples, figures):
    """200 trivial trials, FIFO and ASHA, Shoal then Ray Tune."""
    figures["shoal"] = {}
    for scheduler in ("fifo", "asha"):
        rates = []
        for repeat in range(3):
            _, rate = shoal(binary, out, f"trivial-{scheduler}-{repeat}",
                            ["--trainable", "branin", "--num-samples", str(samples), "--max-concurrent", "2",
                             "--scheduler", scheduler, "--seed", str(repeat)])
            rates.append(rate)
        figures["shoal"][scheduler] = sorted(rates, key=lambda r: r["trials_per_second"])[1]
        print("shoal", scheduler, figures["shoal"][scheduler], flush=True)
    ray = subprocess.run([sys.executable, os.path.join(HERE, "tune_ray.py"), str(samples)], capture_output=True, text=True)
    if ray.returncode != 0:
        raise SystemExit("tune_ray.py failed:\n" + ray.stderr[-3000:])
    figures["ray"] = json.loads(ray.stdout.strip().splitlines()[-1])
    print("ray", figures["ray"], flush=True)


def tpe(binary, out, seeds, tpe_trials, figures):
    """TPE against Optuna's TPESampler, best after 60 and after all trials, over the seeds."""
    optuna = subprocess.run([sys.executable, os.path.join(HERE, "tune_optuna.py"), str(tpe_trials), str(seeds)],
                            capture_output=True, text=True)
    if optuna.returncode != 0:
        raise SystemExit("tune_optuna.py failed:\n" + optuna.stderr[-3000:])
    optuna_curves = json.loads(optuna.stdout.strip().splitlines()[-1])
    figures["tpe"] = {}
    for function in ("branin", "hartmann6", "styblinski-tang"):
        curves = []
        for seed in range(seeds):
            document, _ = shoal(binary, out, f"tpe-{function}-{seed}",
                                ["--trainable", function, "--search", "tpe", "--num-samples", str(tpe_trials),
                                 "--max-concurrent", "1", "--seed", str(seed)])
            curves.append(best_curve(document))
        entry = {}
        for at in (60, tpe_trials):
            ours = [curve[at - 1] for curve in curves]
            theirs = [curve[at - 1] for curve in optuna_curves[function].values()]
            p = mannwhitneyu(ours, theirs, alternative="greater").pvalue
            entry[str(at)] = {"shoal": ours, "optuna": theirs, "p_worse": p}
        figures["tpe"][function] = entry
        print("tpe", function, {k: (median(v["shoal"]), median(v["optuna"]), v["p_worse"]) for k, v in entry.items()}, flush=True)


def hybrid(binary, out, quick, figures):
    """ASHA against FIFO on the hybrid trainable, same configurations."""
    figures["hybrid"] = {}
    hybrid_samples = 6 if quick else 12
    for scheduler in ("fifo", "asha"):
        document, rate = shoal(binary, out, f"hybrid-{scheduler}",
                               ["--trainable", "hybrid", "--space", os.path.join(HERE, "tune/hybrid_space.json"),
                                "--base-config", os.path.join(HERE, "tune/hybrid_base.json"), "--num-samples",
                                str(hybrid_samples), "--max-concurrent", "2", "--scheduler", scheduler, "--max-steps", "9",
                                "--reduction-factor", "3", "--seed", "0"])
        values = [t["value"] for t in document["trials"] if t["value"] is not None]
        figures["hybrid"][scheduler] = {"best": min(values), "epochs": sum(t["steps"] for t in document["trials"]),
                                        "seconds": rate["seconds"],
                                        "pruned": sum(t["state"] == "PRUNED" for t in document["trials"])}
        print("hybrid", scheduler, figures["hybrid"][scheduler], flush=True)


def median(values):
    ordered = sorted(values)
    middle = len(ordered) // 2
    return ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2


def report(path, f, quick):
    ray_best = max(f["ray"][f"{s}/reuse"]["trials_per_second"] for s in ("fifo", "asha"))
    lines = [
        "<!-- bench-tune begin -->",
        "## Hyperparameter search (`make bench-tune`)",
        "",
        f"Measured {f['date']} by `make bench-tune`{' --quick' if quick else ''}, one run, release build, on {f['processor']}; "
        "Shoal (`trading tune`, an embedded cluster: 2 trial-worker processes reused from trial to trial), Ray Tune 2.60 "
        "(`ray.init(num_cpus=2)`, a function trainable) and Optuna 5 side by side.",
        "",
        f"**Trivial trials**: {f['samples']} trials of Branin reporting once, 2 at a time (trials/s over the search itself, "
        "its trial workers' start included, the cluster's or `ray.init` excluded; Shoal's figures and Ray Tune's with "
        "`reuse_actors` are medians of 3 runs, Ray Tune's default one run).",
        "",
        "| scheduler | Shoal | Ray Tune, `reuse_actors=True` | Ray Tune, default | Shoal ÷ Ray's best |",
        "|---|---:|---:|---:|---:|",
    ]
    for scheduler in ("fifo", "asha"):
        ours = f["shoal"][scheduler]["trials_per_second"]
        lines.append(
            f"| {scheduler.upper()} | {ours:,.0f} | {f['ray'][scheduler + '/reuse']['trials_per_second']:.1f} | "
            f"{f['ray'][scheduler + '/default']['trials_per_second']:.2f} | {ours / ray_best:,.0f}× |")
    lines += [
        "",
        f"Goal: ≥ 50× Ray Tune's best ({ray_best:.1f} trials/s here; its runs with `reuse_actors`: "
        + "; ".join(f"{s.upper()} " + ", ".join(f"{r:.1f}" for r in f["ray"][s + "/reuse"].get("runs", []))
                    for s in ("fifo", "asha")) + " trials/s).",
        "",
        f"**TPE against Optuna's `TPESampler`** (defaults, seeded; one trial at a time on both sides): the best value found "
        f"after 60 and after {max(int(k) for k in f['tpe']['branin'])} trials, median over {f['seeds']} seeds; p: one-sided "
        "Mann-Whitney that Shoal's best values are larger (worse) than Optuna's. Goal: no worse at 5% (p ≥ 0.05).",
        "",
        "| function (minimum) | trials | Shoal median | Optuna median | p (Shoal worse) | no worse? |",
        "|---|---:|---:|---:|---:|---|",
    ]
    minima = {"branin": "0.398", "hartmann6": "−3.322", "styblinski-tang": "−195.8"}
    for function, entry in f["tpe"].items():
        for at, values in sorted(entry.items(), key=lambda item: int(item[0])):
            lines.append(
                f"| {function} ({minima[function]}) | {at} | {median(values['shoal']):.4g} | {median(values['optuna']):.4g} | "
                f"{values['p_worse']:.3f} | {'yes' if values['p_worse'] >= 0.05 else '**no**'} |")
    fifo, asha = f["hybrid"]["fifo"], f["hybrid"]["asha"]
    lines += [
        "",
        "**ASHA on the hybrid trainable** (the hybrid model's training loop, one epoch a report, up to 9 epochs; "
        "`Benchmarks/tune/hybrid_space.json` over `hybrid_base.json`; same seed, same configurations; ASHA with reduction "
        "factor 3):",
        "",
        "| scheduler | best validation loss (`best_val_loss`) | epochs trained | pruned | seconds |",
        "|---|---:|---:|---:|---:|",
        f"| FIFO | {fifo['best']:.4f} | {fifo['epochs']} | {fifo['pruned']} | {fifo['seconds']:.1f} |",
        f"| ASHA | {asha['best']:.4f} | {asha['epochs']} | {asha['pruned']} | {asha['seconds']:.1f} |",
        "",
        f"ASHA spent {asha['epochs'] / max(fifo['epochs'], 1):.0%} of FIFO's epochs and reached "
        f"{'the same best' if asha['best'] <= fifo['best'] + 1e-12 else 'a best ' + format(asha['best'] - fifo['best'], '.4f') + ' above FIFO'}"
        " validation loss (goal: FIFO's best at a third of the compute).",
        "<!-- bench-tune end -->",
    ]
    replace_section(path, lines[0], lines[-1], lines)


if __name__ == "__main__":
    main()
