# The README names these targets; .ci/run calls them.
VENV := .venv/bin
# A real home's log for bench/silence.py; never copied into the repository (licence).
SILENCE_LOG ?= ../shared/data/ordonez-a/OrdonezA_Sensors.txt

.PHONY: demo test lint audit bench bootstrap

bootstrap:
	@bash scripts/bootstrap.sh

demo: bootstrap  ## collector + broker + a simulated district (Ctrl-C stops)
	$(VENV)/anbu demo $(ARGS)

# Test processes (pytest-xdist): most tests wait on servers they start, so 3 on 2 cores halves
# the wall time; TEST_WORKERS=0 runs them in one process.
TEST_WORKERS ?= 3

test: bootstrap  ## the whole test suite: real broker, databases, SMTP, HTTP, ALSA, gpiozero mocks
	$(VENV)/python -m pytest -n $(TEST_WORKERS) $(ARGS)

lint: bootstrap
	$(VENV)/ruff check .
	$(VENV)/ruff format --check firmware_config edge_agent collector anbu bench tests
	$(VENV)/mypy

audit: bootstrap  ## pip-audit of the installed packages (fails on a known vulnerability)
	$(VENV)/python scripts/pip_audit.py

bench: bootstrap  ## every benchmark; each prints one JSON line last
	$(VENV)/python bench/sos_latency.py
	$(VENV)/python bench/agent_idle.py
	$(VENV)/python bench/api_load.py
	$(VENV)/python bench/seed.py
	$(VENV)/python bench/silence.py --log $(SILENCE_LOG) --format ordonez --learn-days 10
	$(VENV)/python bench/silence_scale.py --homes 1000000
	$(VENV)/python bench/faults.py
	$(VENV)/python bench/pages.py
	$(VENV)/python bench/telemetry_sink.py
	$(VENV)/python bench/sim_load.py
	$(VENV)/python bench/speech.py  # ~20 min; --quick for a small subset
