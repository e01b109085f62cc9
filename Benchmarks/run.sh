#!/usr/bin/env bash
# `make bench`: Shoal's microbenchmark and Ray's, one after the other on this machine, then
# Benchmarks/RESULTS.md with both side by side. Ray is installed with pip if missing.
set -euo pipefail
cd "$(dirname "$0")/.."
out=Benchmarks/out
mkdir -p "$out"
bin=$(swift build -c release --show-bin-path)
seconds=${BENCH_SECONDS:-2}
trials=${BENCH_TRIALS:-3}
memory_tasks=${BENCH_MEMORY_TASKS:-1000000}

if ! python3 -c 'import ray' 2>/dev/null; then
  echo "Installing Ray 2.60 for the comparison..."
  pip install -q "ray==2.60.0"
fi

echo "== Shoal (release build, embedded cluster of 2 CPUs)"
"$bin/cluster" microbenchmark --seconds "$seconds" --trials "$trials" --memory-tasks "$memory_tasks" --json "$out/shoal_tasks.json"
echo "== Shoal with SHOAL_LOCAL_LINKS=0 (drivers reach executors over ZeroMQ)"
SHOAL_LOCAL_LINKS=0 "$bin/cluster" microbenchmark --seconds "$seconds" --trials "$trials" --json "$out/shoal_tasks_zeromq.json"
echo "== Ray $(python3 -c 'import ray; print(ray.__version__)') (ray.init(num_cpus=2))"
python3 Benchmarks/ray_tasks.py --seconds "$seconds" --trials "$trials" --json "$out/ray_tasks.json" 2>/dev/null

# The tasks and actors part is rewritten; the sections other targets keep between markers stay.
python3 Benchmarks/report.py "$out/shoal_tasks.json" "$out/ray_tasks.json" "$out/shoal_tasks_zeromq.json" > "$out/RESULTS.md"
if [ -f Benchmarks/RESULTS.md ]; then sed -n '/^<!-- [a-z-]*:begin -->$/,$p' Benchmarks/RESULTS.md >> "$out/RESULTS.md"; fi
mv "$out/RESULTS.md" Benchmarks/RESULTS.md
cat Benchmarks/RESULTS.md
