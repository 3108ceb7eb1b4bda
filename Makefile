# Kakehashi developer entry points. Every target sets up what it needs from nothing.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
export KAKEHASHI_TESTVECTORS ?= $(abspath ../shared/testvectors)

.PHONY: test run lint proto bench fuzz soak clean venv system-deps

venv: $(STAMP)

# Debian packages the tests need (a real MQTT broker). Skipped when already installed.
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
system-deps:
	@if ! command -v mosquitto >/dev/null 2>&1 && [ ! -x /usr/sbin/mosquitto ]; then \
		echo "installing mosquitto (Debian package)"; \
		$(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq mosquitto >/dev/null; \
	fi

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "Python >= 3.11 is required"'
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test,dev]'
	touch $(STAMP)

test: $(STAMP) system-deps
	@# In-process suites on both cores. Suites that run node and relayer processes mostly wait
	@# on block periods and timeouts, so two files run at once (whole files per worker: a
	@# file's fixtures share one testnet). The chaos soak injects timed faults: it runs alone.
	$(PY) -m pytest -q -p no:cacheprovider -n 2 tests/unit tests/conformance tests/vectors tests/fuzz
	$(PY) -m pytest -q -p no:cacheprovider -n 2 --dist loadfile tests/e2e tests/adversarial
	$(PY) -m pytest -q -p no:cacheprovider tests/chaos

# The main job: a local two-chain testnet (.testnet) with the relayer, demo traffic and a report.
# `make run PROVER=proxy`: the same through the proxy (SIMULATED enclave) in .testnet-proxy.
run: $(STAMP)
	$(PY) -m relayer.testnet.demo $(if $(PROVER),--prover $(PROVER),)

lint: $(STAMP)
	$(VENV)/bin/ruff check chains lightclients relayer tests bench scripts
	$(VENV)/bin/mypy chains lightclients relayer

proto: $(STAMP)
	$(PY) scripts/gen_proto.py --out .

# `make bench QUICK=1` runs the small sizes only.
bench: $(STAMP)
	$(PY) -m bench $(if $(QUICK),--quick,)

# Coverage-guided fuzzing under atheris (installed from the `fuzz` extra): every target in
# tests/fuzz/targets.py, 1,000,000 inputs in total by default (`make fuzz RUNS=N` for another
# total); prints inputs tried per target and keeps the corpus under tests/fuzz/corpus/.
FUZZ_STAMP := $(VENV)/.fuzz-installed
$(FUZZ_STAMP): pyproject.toml $(STAMP)
	$(PY) -m pip install --quiet -e '.[test,dev,fuzz]'
	touch $(FUZZ_STAMP)

fuzz: $(FUZZ_STAMP)
	$(PY) -m tests.fuzz.run $(if $(RUNS),--total $(RUNS),)

# The full chaos soak (tests/chaos/soak.py): 10,000 DvP trades and 10,000 transfers under >= 50
# seeded faults, judged from the chains; prints its seed and the faults table, exits 1 on any
# failed check. `make soak SEED=N` replays run N; TRADES/TRANSFERS/FAULTS override the size.
soak: $(STAMP) system-deps
	$(PY) -m tests.chaos.soak $(if $(SEED),--seed $(SEED),) $(if $(TRADES),--trades $(TRADES),) \
		$(if $(TRANSFERS),--transfers $(TRANSFERS),) $(if $(FAULTS),--faults $(FAULTS),)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis tests/fuzz/crashes
