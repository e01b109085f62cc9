# Shoal's two commands are `make demo` and `make test`; both install what they need first.
SHELL := /bin/bash
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
APT_PACKAGES := iproute2 libzmq3-dev libopenblas-dev libpq-dev libsqlite3-dev libssl-dev zlib1g-dev pkg-config protobuf-compiler \
  openssh-client openssh-server postgresql chromium
SWIFT_FLAGS ?=
RELEASE := swift build -c release $(SWIFT_FLAGS)

.PHONY: all deps build test demo bench bench-train bench-jobs bench-registry bench-features bench-model bench-rl bench-ppo-seeds bench-rollouts bench-tune check-metrics check-portfolio bench-backtest bench-tasks proto clean format container

all: build

## deps: install the Debian packages Shoal builds against, only those missing.
deps:
	@missing=""; for package in $(APT_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$package 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$package"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "Installing Debian packages:$$missing"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing >/dev/null; \
	fi

build: deps
	swift build $(SWIFT_FLAGS)

## test: build everything (debug) and run the whole suite, integration tests included.
## The storage tests run against a real PostgreSQL server started here (scripts/test-postgres.sh).
test: deps
	swift build --build-tests $(SWIFT_FLAGS)
	scripts/build-user-package.sh >/dev/null
	# The PostgreSQL server started here is stopped again, whether the suite passes or not; one
	# that was already running is left as it was.
	@started=""; if ! scripts/test-postgres.sh running; then scripts/test-postgres.sh start; started=1; fi; \
	SHOAL_BIN_DIR=$$(swift build --show-bin-path) SHOAL_TEST_POSTGRES=$$(scripts/test-postgres.sh url) \
	  SHOAL_USER_PACKAGE_BIN=$$(scripts/build-user-package.sh --print-path) \
	  SHOAL_USER_PACKAGE_DIR=$${TMPDIR:-/tmp}/shoal-user-package swift test --skip-build $(SWIFT_FLAGS); status=$$?; \
	if [ -n "$$started" ]; then scripts/test-postgres.sh stop; fi; exit $$status

## demo: a Monte Carlo option pricing map-reduce on an embedded local cluster (release build).
demo: deps
	$(RELEASE) --product trading
	$$(swift build -c release --show-bin-path)/trading demo

## bench: release microbenchmarks beside Ray on this machine; writes Benchmarks/RESULTS.md.
bench: deps
	$(MAKE) bench-tasks
	$(MAKE) bench-jobs
	$(MAKE) bench-registry
	$(MAKE) bench-features
	$(MAKE) bench-model
	$(MAKE) bench-rl
	$(MAKE) bench-ppo-seeds
	$(MAKE) bench-train
	$(MAKE) bench-rollouts
	$(MAKE) bench-backtest

## bench-tasks: tasks, actors and objects beside Ray (and Shoal over ZeroMQ only); rewrites the top of RESULTS.md.
bench-tasks: deps
	$(RELEASE) --product cluster
	$(RELEASE) --product trading
	Benchmarks/run.sh

## bench-train: data-parallel training beside gloo and Ray Train (all-reduce, throughput, submit to first step); updates RESULTS.md.
bench-train: deps
	$(RELEASE) --product cluster
	$(RELEASE) --product trading
	python3 -c 'import torch, ray.train' 2>/dev/null || pip install -q torch "ray[default,train]==2.60.0"
	mkdir -p Benchmarks/out
	cd Benchmarks && python3 train_bench.py $$(cd .. && swift build -c release --show-bin-path) out/train.json RESULTS.md

## bench-rollouts: PPO with rollout workers beside RLlib (steps/s, time to 475), and 2 workers vs one process over 30 seeds; updates RESULTS.md.
bench-rollouts: deps
	$(RELEASE) --product cluster
	$(RELEASE) --product trading
	python3 -c 'import ray.rllib, torch, gymnasium' 2>/dev/null || pip install -q torch "ray[rllib]==2.60.0"
	mkdir -p Benchmarks/out/rollouts
	env -u OPENBLAS_CORETYPE python3 Benchmarks/rollouts_bench.py $$(swift build -c release --show-bin-path) Benchmarks/out/rollouts \
	  Benchmarks/RESULTS.md

## bench-tune: trading tune beside Ray Tune 2.60 (200 trivial trials, FIFO and ASHA, with and without
## reuse_actors) and Optuna 5's TPE (Branin, Hartmann-6, Styblinski-Tang; 20 seeds), and ASHA against
## FIFO on the hybrid trainable; updates RESULTS.md.
bench-tune: deps
	$(RELEASE) --product trading
	python3 -c 'import ray.tune, optuna, scipy' 2>/dev/null || pip install -q "ray[default,tune]==2.60.0" "optuna>=5,<6" scipy
	mkdir -p Benchmarks/out/tune
	env -u OPENBLAS_CORETYPE python3 Benchmarks/tune_bench.py $$(swift build -c release --show-bin-path) Benchmarks/out/tune \
	  Benchmarks/RESULTS.md

## bench-backtest: an SMA crossover over 1,000,000 bars x 4 assets and a 10-asset monthly portfolio over 20 years,
## beside vectorbt and backtrader with the same costs (same final equity and fills); updates RESULTS.md.
bench-backtest: deps
	$(RELEASE) --product trading
	python3 -c 'import vectorbt, backtrader' 2>/dev/null || pip install -q "vectorbt==1.2.*" "backtrader==1.9.78.123"
	mkdir -p Benchmarks/out/backtest
	python3 Benchmarks/backtest_bench.py $$(swift build -c release --show-bin-path) Benchmarks/out/backtest Benchmarks/RESULTS.md \
	  $(if $(QUICK),--quick)

## check-metrics: trading backtest metrics against empyrical on data other than the tests'; updates RESULTS.md.
check-metrics: deps
	$(RELEASE) --product trading
	python3 -c 'import empyrical, scipy' 2>/dev/null || pip install -q empyrical-reloaded scipy
	python3 Benchmarks/metrics_reference.py check $$(swift build -c release --show-bin-path)/trading 20 Benchmarks/RESULTS.md

## check-portfolio: trading portfolio optimize against PyPortfolioOpt 1.6 on data other than the tests'; updates RESULTS.md.
check-portfolio: deps
	$(RELEASE) --product trading
	python3 -c 'import pypfopt, sklearn' 2>/dev/null || pip install -q "pyportfolioopt==1.6.*" scikit-learn
	python3 Benchmarks/portfolio_reference.py check $$(swift build -c release --show-bin-path)/trading 10 Benchmarks/RESULTS.md

## bench-model: the hybrid model beside PyTorch (1 and 2 threads) and the parity check; updates RESULTS.md.
bench-model: deps
	$(RELEASE) --product trading
	python3 -c 'import torch, safetensors' 2>/dev/null || pip install -q torch safetensors
	mkdir -p Benchmarks/out
	python3 Benchmarks/hybrid_reference.py $$(swift build -c release --show-bin-path) | tee Benchmarks/out/parity.txt
	# OPENBLAS_CORETYPE unset: `trading` picks the processor's kernels (a value set by the machine would win).
	for threads in 1 2; do \
	  env -u OPENBLAS_CORETYPE $$(swift build -c release --show-bin-path)/trading model bench --threads $$threads \
	    --json Benchmarks/out/shoal_model_$$threads.json; \
	  (cd Benchmarks && python3 hybrid_bench_torch.py out/torch_model_$$threads.json --threads $$threads); \
	done
	python3 Benchmarks/model_report.py Benchmarks/out Benchmarks/RESULTS.md

## bench-rl: PPO, Rainbow, SAC, TD3 (3 seeds each) and the ensemble beside Stable-Baselines3, one thread; updates RESULTS.md.
bench-rl: deps
	$(RELEASE) --product trading
	python3 -c 'import stable_baselines3, gymnasium' 2>/dev/null || pip install -q "stable-baselines3==2.9.*" "gymnasium==1.4.*"
	mkdir -p Benchmarks/out/rl
	env -u OPENBLAS_CORETYPE python3 Benchmarks/rl_shoal.py $$(swift build -c release --show-bin-path) Benchmarks/out/rl
	python3 Benchmarks/rl_sb3.py Benchmarks/out/rl/sb3_rl.json
	python3 Benchmarks/rl_report.py Benchmarks/out/rl Benchmarks/RESULTS.md

## bench-ppo-seeds: PPO's steps to 475 on CartPole over 30 seeds, Shoal beside Stable-Baselines3, with a rank test.
bench-ppo-seeds: deps
	$(RELEASE) --product trading
	python3 -c 'import stable_baselines3, gymnasium' 2>/dev/null || pip install -q "stable-baselines3==2.9.*" "gymnasium==1.4.*"
	mkdir -p Benchmarks/out/rl
	env -u OPENBLAS_CORETYPE python3 Benchmarks/ppo_seeds.py $$(swift build -c release --show-bin-path) Benchmarks/out/ppo-seeds \
	  Benchmarks/RESULTS.md

## bench-features: the standard features on 1,000,000 bars x 4 assets beside pandas; updates its section of RESULTS.md.
bench-features: deps
	$(RELEASE) --product trading
	python3 -c "import pandas, numpy, talib" 2>/dev/null || pip install -q "pandas==3.1.*" "numpy==2.4.*" "TA-Lib==0.8.*"
	mkdir -p Benchmarks/out
	$$(swift build -c release --show-bin-path)/trading data bench --json Benchmarks/out/shoal_features.json
	python3 Benchmarks/features_pandas.py Benchmarks/out/pandas_features.json
	python3 Benchmarks/features_crosscheck.py $$(swift build -c release --show-bin-path) | tee Benchmarks/out/features_crosscheck.txt
	python3 Benchmarks/features_report.py Benchmarks/out/shoal_features.json Benchmarks/out/pandas_features.json Benchmarks/RESULTS.md \
	  Benchmarks/out/features_crosscheck.txt

## bench-registry: the model registry beside MLflow, in rounds; updates its section of Benchmarks/RESULTS.md.
bench-registry: deps
	$(RELEASE) --product cluster
	python3 -c 'import mlflow' 2>/dev/null || pip install -q mlflow
	mkdir -p Benchmarks/out
	# Every system's files stay until all have run: on ext4 without a journal, files removed in the last minutes
	# make new ones slower to create, and whichever ran next would pay for the one before.
	rm -rf Benchmarks/out/registry-scratch
	cd Benchmarks && python3 registry_bench.py $$(cd .. && swift build -c release --show-bin-path)/cluster \
	  out/registry_rounds.json --folder out/registry-scratch --rounds 4 --shoal-count 100 --mlflow-count 15 \
	  --mlflow-server-count 8
	rm -rf Benchmarks/out/registry-scratch
	cd Benchmarks && python3 registry_report.py out/registry_rounds.json RESULTS.md

## bench-jobs: `cluster submit` beside `ray job submit`; updates the Jobs section of Benchmarks/RESULTS.md.
bench-jobs: deps
	$(RELEASE) --product cluster
	$(RELEASE) --product trading
	python3 -c 'import ray, aiohttp' 2>/dev/null || pip install -q "ray[default]==2.60.0"
	mkdir -p Benchmarks/out
	python3 Benchmarks/jobs.py $$(swift build -c release --show-bin-path) Benchmarks/out/jobs.json
	python3 Benchmarks/jobs_report.py Benchmarks/out/jobs.json Benchmarks/RESULTS.md

## container: the Shoal image (Deploy/Containerfile) from static release binaries.
container: deps
	swift build -c release --static-swift-stdlib --product cluster $(SWIFT_FLAGS)
	swift build -c release --static-swift-stdlib --product trading $(SWIFT_FLAGS)
	rm -rf Deploy/container && mkdir -p Deploy/container/bin
	cp $$(swift build -c release --show-bin-path)/{cluster,trading} Deploy/container/bin/
	cp Deploy/container-entrypoint.sh Deploy/container/
	docker build -t shoal -f Deploy/Containerfile Deploy/container

## proto: regenerate Sources/ShoalWire/Generated from Protos/ (builds protoc-gen-swift once).
proto: deps
	swift package resolve
	cd .build/checkouts/swift-protobuf && swift build -c release --product protoc-gen-swift
	protoc --plugin=protoc-gen-swift=.build/checkouts/swift-protobuf/.build/release/protoc-gen-swift \
	  --swift_opt=Visibility=Public --swift_out=Sources/ShoalWire/Generated -I Protos Protos/*.proto

## format: apply .swift-format to the sources (generated code excluded).
format:
	swift format -i $$(find Sources Tests -name '*.swift' -not -path '*/Generated/*')

clean:
	swift package clean
