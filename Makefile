# Shoal's two commands are `make demo` and `make test`; both install what they need first.
SHELL := /bin/bash
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
APT_PACKAGES := libzmq3-dev libopenblas-dev libpq-dev libsqlite3-dev libssl-dev pkg-config protobuf-compiler
SWIFT_FLAGS ?=
RELEASE := swift build -c release $(SWIFT_FLAGS)

.PHONY: all deps build test demo bench bench-tasks proto clean format

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
test: deps
	swift build --build-tests $(SWIFT_FLAGS)
	SHOAL_BIN_DIR=$$(swift build --show-bin-path) swift test --skip-build $(SWIFT_FLAGS)

## demo: a Monte Carlo option pricing map-reduce on an embedded local cluster (release build).
demo: deps
	$(RELEASE) --product trading
	$$(swift build -c release --show-bin-path)/trading demo

## bench: release microbenchmarks beside Ray on this machine; writes Benchmarks/RESULTS.md.
bench: deps
	$(RELEASE) --product cluster
	Benchmarks/run.sh

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
