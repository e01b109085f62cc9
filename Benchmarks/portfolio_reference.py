"""Reference portfolios from PyPortfolioOpt 1.6 on seeded prices, for the optimiser's tests and
an independent check through `trading portfolio optimize`.

    portfolio_reference.py fixture OUT.json
    portfolio_reference.py check TRADING_BINARY SEEDS [RESULTS.md]
"""
import json
import os
import subprocess
import sys
import tempfile
import time
import warnings

import numpy as np
import pandas as pd
from pypfopt import BlackLittermanModel, EfficientFrontier, HRPOpt, expected_returns, risk_models
from pypfopt.black_litterman import market_implied_prior_returns

warnings.filterwarnings("ignore")
SYMBOLS = ["AAA", "BBB", "CCC", "DDD", "EEE", "FFF"]


def prices(seed, days=756):
    rng = np.random.default_rng(seed)
    factor = rng.standard_normal(days)
    drifts = rng.uniform(0.0001, 0.0009, len(SYMBOLS))
    loads = rng.uniform(0.3, 0.9, len(SYMBOLS))
    noise = rng.uniform(0.006, 0.02, len(SYMBOLS))
    returns = drifts + 0.01 * np.outer(factor, loads) + noise * rng.standard_normal((days, len(SYMBOLS)))
    values = 100 * np.cumprod(1 + returns, axis=0)
    return pd.DataFrame(values, columns=SYMBOLS, index=pd.date_range("2020-01-01", periods=days, freq="B"))


def reference(frame, caps, views, delta=2.5, rf=0.02):
    mu = expected_returns.mean_historical_return(frame)
    sigma = risk_models.sample_cov(frame)
    out = {"expected_returns": mu.tolist(), "covariance": sigma.values.tolist(),
           "ledoit_wolf": risk_models.CovarianceShrinkage(frame).ledoit_wolf().values.tolist()}
    out["min_volatility"] = list(EfficientFrontier(mu, sigma).min_volatility().values())
    out["max_sharpe"] = list(EfficientFrontier(mu, sigma).max_sharpe(risk_free_rate=rf).values())
    target_return = float(np.percentile(mu, 60))
    target_risk = float(np.sqrt(np.diag(sigma)).min()) * 1.1
    out["target_return"], out["target_risk"] = target_return, target_risk
    out["efficient_return"] = list(EfficientFrontier(mu, sigma).efficient_return(target_return).values())
    out["efficient_risk"] = list(EfficientFrontier(mu, sigma).efficient_risk(target_risk).values())
    out["hrp"] = [HRPOpt(frame.pct_change().dropna()).optimize()[s] for s in SYMBOLS]
    prior = market_implied_prior_returns(pd.Series(caps, index=SYMBOLS), delta, sigma, risk_free_rate=rf)
    bl = BlackLittermanModel(sigma, pi=prior, absolute_views={SYMBOLS[i]: v for i, v in views.items()}, tau=0.05)
    posterior, posterior_cov = bl.bl_returns(), bl.bl_cov()
    out["bl_returns"], out["bl_covariance"] = posterior.tolist(), posterior_cov.values.tolist()
    out["bl_max_sharpe"] = list(EfficientFrontier(posterior, posterior_cov).max_sharpe(risk_free_rate=rf).values())
    return out


CAPS = [3e12, 1.5e12, 8e11, 5e11, 2e11, 1e11]
VIEWS = {0: 0.10, 3: 0.18, 5: -0.02}


def main():
    if sys.argv[1] == "fixture":
        frame = prices(11)
        fixture = {"symbols": SYMBOLS, "prices": frame.values.tolist(), "caps": CAPS, "views": {str(k): v for k, v in VIEWS.items()},
                   "risk_aversion": 2.5, "risk_free": 0.02, "expected": reference(frame, CAPS, VIEWS)}
        json.dump(fixture, open(sys.argv[2], "w"))
        return
    binary, seeds = sys.argv[2], int(sys.argv[3])
    worst = {"weights": 0.0, "bl_returns": 0.0, "risk_parity_spread": 0.0}
    with tempfile.TemporaryDirectory() as folder:
        for seed in range(200, 200 + seeds):
            frame = prices(seed)
            expected = reference(frame, CAPS, VIEWS)
            path = os.path.join(folder, "prices.csv")
            frame.to_csv(path, index_label="date")
            with open(os.path.join(folder, "caps.csv"), "w") as f:
                f.write("symbol,market_cap\n" + "".join(f"{s},{c}\n" for s, c in zip(SYMBOLS, CAPS)))
            with open(os.path.join(folder, "views.csv"), "w") as f:
                f.write("symbol,view\n" + "".join(f"{SYMBOLS[i]},{v}\n" for i, v in VIEWS.items()))
            def run(method, *extra):
                out = os.path.join(folder, "w.json")
                subprocess.run([binary, "portfolio", "optimize", "--prices", path, "--method", method, "--json", out, *extra],
                               check=True, capture_output=True)
                return json.load(open(out))
            checks = [("min_volatility", run("min-volatility")), ("max_sharpe", run("max-sharpe", "--risk-free", "0.02")),
                      ("efficient_return", run("efficient-return", "--target", str(expected["target_return"]))),
                      ("efficient_risk", run("efficient-risk", "--target", str(expected["target_risk"]))),
                      ("hrp", run("hrp"))]
            bl = run("black-litterman", "--market-caps", os.path.join(folder, "caps.csv"), "--views",
                     os.path.join(folder, "views.csv"), "--risk-aversion", "2.5", "--risk-free", "0.02")
            checks.append(("bl_max_sharpe", bl))
            for name, ours in checks:
                gap = max(abs(ours["weights"][s] - w) for s, w in zip(SYMBOLS, expected[name]))
                worst["weights"] = max(worst["weights"], gap)
                if gap > 2e-3:
                    print(f"seed {seed}: {name} weights differ by {gap:.2e}")
            gap = max(abs(bl["posterior_returns"][s] - r) / abs(r) for s, r in zip(SYMBOLS, expected["bl_returns"]))
            worst["bl_returns"] = max(worst["bl_returns"], gap)
            parity = run("risk-parity")
            contributions = parity["risk_contributions"].values()
            worst["risk_parity_spread"] = max(worst["risk_parity_spread"], max(contributions) - min(contributions))
    print(json.dumps(worst))
    if len(sys.argv) > 4:
        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
        from results_section import replace_section
        begin, end = "<!-- check-portfolio begin -->", "<!-- check-portfolio end -->"
        replace_section(sys.argv[4], begin, end, [
            begin, "## Portfolio optimisation against PyPortfolioOpt (`make check-portfolio`)", "",
            f"Checked {time.strftime('%Y-%m-%d')}: `trading portfolio optimize` on {seeds} seeded 6-asset price sets of 756 days "
            "(a one-factor market, not the tests' data) against PyPortfolioOpt 1.6 (cvxpy): the largest weight difference "
            f"over min-volatility, max-Sharpe (r_f 0.02), efficient-return, efficient-risk, HRP and Black-Litterman "
            f"max-Sharpe is {worst['weights']:.1e} (goal 2e-3); Black-Litterman posterior returns agree to "
            f"{worst['bl_returns']:.1e} relative (goal 1e-6); risk parity's contributions differ by at most "
            f"{worst['risk_parity_spread']:.1e} (goal equal to 1e-4).", end])


if __name__ == "__main__":
    main()
