"""Puts the job submission table (from Benchmarks/jobs.py's JSON) into Benchmarks/RESULTS.md,
replacing the section from an earlier run."""
import datetime
import json
import statistics
import sys

from results_section import replace_section

data = json.load(open(sys.argv[1]))
path = sys.argv[2]
begin, end = "<!-- jobs:begin -->", "<!-- jobs:end -->"


def median(values):
    return statistics.median(values)


def p90(values):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(0.9 * (len(ordered) - 1))))]


lines = [begin, "## Jobs (issue: jobs, `cluster submit`)", ""]
lines.append(f"Measured {datetime.date.today()} by `make bench-jobs` (also part of `make bench`): `Benchmarks/jobs.py`, each system on a")
lines.append("fresh single-node cluster of 2 CPUs, back to back. Milliseconds, lower is better; warm rows are the median (p90) of")
lines.append(f"{data['runs']} Shoal and {data['ray_runs']} Ray submits after a first, cold one. `echo`: entrypoint `sh -c 'echo first-line'`.")
lines.append("`driver`: an entrypoint that connects as a driver and runs four small tasks (Shoal: `trading demo --chunks 4`, whose")
lines.append("first submit also ships the `trading` binary to the node; Ray: a Python script with four `ray.remote` calls).")
lines.append("")
lines.append("| row (ms) | Shoal | Ray (`ray job submit`) | Ray / Shoal |")
lines.append("|---|---:|---:|---:|")
for kind in ["echo", "driver"]:
    s, r = data["shoal"][kind], data["ray"][kind]
    line = "first log line" if kind == "echo" else "result line"
    rows = [
        (f"{kind} job: submit → {line}, cold", s["cold_first"], r["cold_first"], None, None),
        (f"{kind} job: submit → {line}, warm", median(s["first"]), median(r["first"]), p90(s["first"]), p90(r["first"])),
        (f"{kind} job: submit → exit (job start overhead), cold", s["cold_total"], r["cold_total"], None, None),
        (f"{kind} job: submit → exit (job start overhead), warm", median(s["total"]), median(r["total"]), p90(s["total"]), p90(r["total"])),
    ]
    for name, shoal_value, ray_value, shoal_p90, ray_p90 in rows:
        shoal_text = f"{shoal_value:,.0f}" + (f" ({shoal_p90:,.0f})" if shoal_p90 is not None else "")
        ray_text = f"{ray_value:,.0f}" + (f" ({ray_p90:,.0f})" if ray_p90 is not None else "")
        lines.append(f"| {name} | {shoal_text} | {ray_text} | {ray_value / shoal_value:.0f}× |")
lines.append(end)
replace_section(path, begin, end, lines)
