"""Reference values for the performance metrics: empyrical (0.7, `empyrical-reloaded`) on seeded
daily returns, and the probabilistic and deflated Sharpe ratios from their papers' formulas with
SciPy's moments and normal distribution.

    metrics_reference.py fixture OUT.json            # the test fixture (Tests/ShoalBacktestTests)
    metrics_reference.py check TRADING_BINARY SEEDS [RESULTS.md]  # other data, through `trading backtest metrics`
"""
import json
import math
import os
import subprocess
import sys
import tempfile

import empyrical as ep
import numpy as np
from scipy import stats

NAMES = ["annual_return", "cum_returns_final", "annual_volatility", "sharpe_ratio", "sortino_ratio", "downside_risk",
         "calmar_ratio", "max_drawdown", "omega_ratio", "tail_ratio", "stability_of_timeseries", "value_at_risk",
         "conditional_value_at_risk"]


def series(seed, n=750):
    rng = np.random.default_rng(seed)
    benchmark = 0.0003 + 0.011 * rng.standard_t(4, n) / math.sqrt(2)
    returns = 0.0002 + 0.8 * benchmark + 0.007 * rng.standard_normal(n)
    return returns, benchmark


def probabilistic_sharpe(excess, benchmark):
    sharpe = excess.mean() / excess.std(ddof=1)
    skew, kurt = stats.skew(excess), stats.kurtosis(excess, fisher=False)
    z = (sharpe - benchmark) * math.sqrt(len(excess) - 1) / math.sqrt(1 - skew * sharpe + (kurt - 1) / 4 * sharpe**2)
    return stats.norm.cdf(z)


def deflated_sharpe(excess, trials, variance):
    gamma = 0.5772156649015329
    expected = math.sqrt(variance) * ((1 - gamma) * stats.norm.ppf(1 - 1 / trials)
                                      + gamma * stats.norm.ppf(1 - 1 / (trials * math.e)))
    return probabilistic_sharpe(excess, expected)


def reference(returns, benchmark, risk_free=0.0):
    values = {name: float(getattr(ep, name)(returns)) for name in NAMES}
    values["sharpe_ratio"] = float(ep.sharpe_ratio(returns, risk_free=risk_free))
    values["omega_ratio"] = float(ep.omega_ratio(returns, risk_free=risk_free))
    alpha, beta = ep.alpha_beta(returns, benchmark, risk_free=risk_free)
    values["alpha"], values["beta"] = float(alpha), float(beta)
    values["probabilistic_sharpe_ratio"] = float(probabilistic_sharpe(returns - risk_free, 0.0))
    return values


def write_csv(path, values):
    with open(path, "w") as f:
        f.write("date,return\n")
        for day, value in enumerate(values):
            f.write(f"2020-01-{day:05d},{float(value)!r}\n")


def main():
    if sys.argv[1] == "fixture":
        returns, benchmark = series(7)
        fixture = {"returns": returns.tolist(), "benchmark": benchmark.tolist(), "expected": reference(returns, benchmark),
                   "risk_free": 0.0001, "expected_risk_free": reference(returns, benchmark, 0.0001),
                   "deflated": {"trials": 50, "variance": 0.002,
                                "value": float(deflated_sharpe(returns, 50, 0.002))}}
        json.dump(fixture, open(sys.argv[2], "w"), indent=1)
        return
    binary, seeds = sys.argv[2], int(sys.argv[3])
    worst = 0.0
    with tempfile.TemporaryDirectory() as folder:
        for seed in range(100, 100 + seeds):
            returns, benchmark = series(seed, n=500 + seed)
            write_csv(os.path.join(folder, "r.csv"), returns)
            write_csv(os.path.join(folder, "b.csv"), benchmark)
            subprocess.run([binary, "backtest", "metrics", "--returns", os.path.join(folder, "r.csv"), "--benchmark",
                            os.path.join(folder, "b.csv"), "--json", os.path.join(folder, "m.json")], check=True,
                           capture_output=True)
            ours = json.load(open(os.path.join(folder, "m.json")))
            for name, value in reference(returns, benchmark).items():
                error = abs(ours[name] - value) / max(abs(value), 1e-12)
                worst = max(worst, error)
                if error > 1e-6:
                    print(f"seed {seed}: {name} {ours[name]} against {value} (relative {error:.2e})")
    print(json.dumps({"seeds": seeds, "largest_relative_difference": worst}))
    if len(sys.argv) > 4:
        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
        from results_section import replace_section
        import time
        begin, end = "<!-- check-metrics begin -->", "<!-- check-metrics end -->"
        replace_section(sys.argv[4], begin, end, [
            begin, "## Performance metrics against empyrical (`make check-metrics`)", "",
            f"Checked {time.strftime('%Y-%m-%d')}: `trading backtest metrics` on {seeds} seeded return series of 600–"
            f"{500 + 100 + seeds - 1} days with a benchmark (Student-t market, not the tests' data) against empyrical 0.7 "
            "(`empyrical-reloaded`) and the probabilistic Sharpe ratio's formula with SciPy: every metric (annual_return, "
            "cum_returns_final, annual_volatility, sharpe_ratio, sortino_ratio, downside_risk, calmar_ratio, max_drawdown, "
            "omega_ratio, tail_ratio, stability_of_timeseries, value_at_risk, conditional_value_at_risk, alpha, beta, "
            f"probabilistic_sharpe_ratio) agrees to {worst:.1e} relative at worst (goal 1e-6).", end])


if __name__ == "__main__":
    main()
