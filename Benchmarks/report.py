"""Writes Benchmarks/RESULTS.md from the JSON rows of one `make bench` run."""
import datetime
import json
import platform
import subprocess
import sys

shoal = {row["name"]: row for row in json.load(open(sys.argv[1]))}
ray = {row["name"]: row for row in json.load(open(sys.argv[2]))}
# Optional: the same Shoal rows with SHOAL_LOCAL_LINKS=0 (drivers reach executors over ZeroMQ).
zeromq = {row["name"]: row for row in json.load(open(sys.argv[3]))} if len(sys.argv) > 3 else {}


def cpu():
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def ray_version():
    return subprocess.run([sys.executable, "-c", "import ray; print(ray.__version__)"], capture_output=True, text=True).stdout.strip()


def fmt(row):
    if row is None:
        return "—"
    value = row["mean"]
    text = f"{value:,.0f}" if value >= 100 else f"{value:.1f}"
    if row.get("deviation"):
        text += f" ± {row['deviation']:,.0f}"
    return text


print("# Benchmarks")
print()
print(f"Measured {datetime.date.today()} by `make bench` on this machine ({cpu()}, {subprocess.run(['nproc'], capture_output=True, text=True).stdout.strip()} vCPUs),")
print("Shoal as a release build, one run with both systems back to back. Throughput rows are the mean ± standard")
print("deviation over trials; latencies are percentiles over every call of the sync row. The machine is a shared VM:")
print("separate runs of the same build differ by up to about 20%, and Ray's figures differ between days by up to 3x.")
print()
print("## Tasks (issue: runtime core)")
print()
print(f"Shoal: `cluster microbenchmark` on an embedded cluster of 2 CPUs. Ray {ray_version()}: `Benchmarks/ray_tasks.py`, the same rows")
print("with `ray.init(num_cpus=2)`. Higher is better for rates, lower for latencies.")
print()
print("| row | Shoal | Ray | Shoal / Ray |")
print("|---|---:|---:|---:|")
for name in ["single client tasks sync", "single client tasks sync, from the thread pool", "single client tasks async", "multi client tasks async", "single client tasks and get batch"]:
    s, r = shoal.get(name), ray.get(name)
    if name.endswith("thread pool"):
        r = ray.get("single client tasks sync")
    ratio = f"{s['mean'] / r['mean']:.1f}×" if s and r else "—"
    print(f"| {name} (per second) | {fmt(s)} | {fmt(r)} | {ratio} |")
for name in ["task round trip p50", "task round trip p99"]:
    s, r = shoal.get(name), ray.get(name)
    ratio = f"{r['mean'] / s['mean']:.1f}× faster" if s and r else "—"
    print(f"| {name} (µs) | {fmt(s)} | {fmt(r)} | {ratio} |")
print()
print("Shoal's `single client tasks sync` row runs its loop with `cluster.onDriverLoop { }` (the driver's I/O thread);")
print("the `from the thread pool` row is the same loop as plain async code on Swift's cooperative pool, one thread hop")
print("each way more. Ray's sync row is compared with both. Round-trip percentiles are from the `onDriverLoop` row.")
print()
print("## Actors (issue: actors, object store and placement groups)")
print()
print("Same run. Shoal's rows call `distributed func`s of Swift `distributed actor`s hosted in one executor process per job")
print("and node; Ray's call actor methods, one process per actor. The n:n rows use n = 2 clients, each its own driver")
print("connection (Shoal) or actor (Ray), each calling its own actor; `with arg` passes an object reference to a put value on both sides.")
print()
print("| row | Shoal | Ray | Shoal / Ray |")
print("|---|---:|---:|---:|")
for name in ["1:1 actor calls sync", "1:1 actor calls async", "1:1 actor calls concurrent", "1:n actor calls async", "n:n actor calls async", "n:n actor calls with arg async", "actor creations", "placement group create/removal"]:
    s, r = shoal.get(name), ray.get(name)
    ratio = f"{s['mean'] / r['mean']:.1f}×" if s and r else "—"
    print(f"| {name} (per second) | {fmt(s)} | {fmt(r)} | {ratio} |")
s, r = shoal.get("idle memory per actor"), ray.get("idle memory per actor")
if s and r:
    print(f"| idle memory per actor (KiB) | {s['mean']:.1f} | {r['mean']:,.0f} | {r['mean'] / s['mean']:,.0f}× less |")
print()
print("Objects, same run: small values are inline; 100 MiB `[Float]` puts go to the node's shared-memory store (Shoal) or")
print("plasma (Ray, a numpy array). Multi-client rows use 2 clients.")
print()
print("| row | Shoal | Ray | Shoal / Ray |")
print("|---|---:|---:|---:|")
for name, unit in [("single client put calls", "per second"), ("single client get calls", "per second"), ("single client put gigabytes", "GB/s"), ("multi client put gigabytes", "GB/s"), ("single client get gigabytes", "GB/s")]:
    s, r = shoal.get(name), ray.get(name)
    ratio = f"{s['mean'] / r['mean']:.1f}×" if s and r else "—"
    value = (lambda row: "—" if row is None else (f"{row['mean']:.2f}" if unit == "GB/s" else fmt(row)))
    print(f"| {name} ({unit}) | {value(s)} | {value(r)} | {ratio} |")
print()
# The Ray figures the actors issue quotes for this kind of machine, for a second ratio when Ray runs slow.
quoted = {"1:1 actor calls sync": 1060, "1:1 actor calls async": 4700, "single client put calls": 2300,
          "single client get calls": 10700}
against = [f"{name} {shoal[name]['mean'] / value:.1f}× ({value:,})" for name, value in quoted.items() if name in shoal]
if against:
    print("Against the Ray figures the actors issue quotes for this machine, rather than this run's: " + "; ".join(against) + ".")
    print()
copy = shoal.get("memcpy of the same array, one thread")
spread = shoal.get("memcpy of the same array, all cores")
fresh = shoal.get("copy into a new array, all cores")
if copy and spread and fresh:
    print("Ceilings, same run: copying the same 100 MiB array into memory already mapped and touched moved")
    print(f"{copy['mean']:.2f} GB/s on one thread and {spread['mean']:.2f} GB/s spread over the cores, as Shoal's large puts")
    print(f"and gets copy; copying it into a newly allocated array, whose pages the kernel must first zero, {fresh['mean']:.2f} GB/s")
    print("over the cores. A put writes into a store file the node recycles (touched memory); a get decodes the stored array")
    print("into a new one on the node that holds it. Ray has no get-gigabytes row: its large gets are zero-copy views, which")
    print("Shoal's `mapped()` also gives.")
    print()
bare50 = shoal.get("bare ZeroMQ DEALER/ROUTER round trip p50")
bare99 = shoal.get("bare ZeroMQ DEALER/ROUTER round trip p99")
p50 = shoal.get("task round trip p50")
if bare50 and p50:
    print(f"Bare ZeroMQ DEALER/ROUTER round trip between two processes, same run: p50 {bare50['mean']:.0f} µs, p99 {bare99['mean']:.0f} µs.")
    print(f"Shoal's trivial-task round trip is {p50['mean'] / bare50['mean']:.2f}× the bare p50.")
    print()
if zeromq:
    print("Transport paths, same build, run just after: drivers reach executors on their own host over local links")
    print("(Unix-domain streams written and read by the event loops themselves, which spin briefly after each message) by")
    print("default; `SHOAL_LOCAL_LINKS=0` sends the same messages through ZeroMQ, whose I/O threads sleep between messages and")
    print("must be woken on another vCPU for each one.")
    print()
    print("| row | local links | ZeroMQ | links / ZeroMQ |")
    print("|---|---:|---:|---:|")
    for name in ["single client tasks sync", "single client tasks async", "1:1 actor calls sync", "1:1 actor calls async",
                 "n:n actor calls async", "task round trip p50", "task round trip p99"]:
        s, z = shoal.get(name), zeromq.get(name)
        if not s or not z:
            continue
        latency = "round trip" in name
        ratio = f"{z['mean'] / s['mean']:.1f}× faster" if latency else f"{s['mean'] / z['mean']:.1f}×"
        print(f"| {name} ({'µs' if latency else 'per second'}) | {fmt(s)} | {fmt(z)} | {ratio} |")
    print()
memory = [name for name in shoal if name.endswith("tasks in waves")]
print("Goals (issue 2): 10× Ray on `single client tasks sync` and `async`; a p50 task round trip within 2× of the bare")
print("ZeroMQ round trip; 1,000,000 trivial tasks under 1 GiB peak RSS for all Shoal processes together.")
print()
if memory:
    rate = shoal[memory[0]]
    peak = shoal.get("peak RSS of all Shoal processes")
    print(f"Memory: {memory[0]} (waves of 10,000, trivial tasks) ran at {rate['mean']:,.0f} tasks/s; the peak RSS of")
    print(f"all Shoal processes together (driver with the embedded head and node daemon, plus every executor) was {peak['mean']:,.0f} MiB.")
    print()
