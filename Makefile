# The README names these targets; .ci/run calls them.
VENV := .venv/bin

.PHONY: demo test lint bench bootstrap

bootstrap:
	@bash scripts/bootstrap.sh

demo: bootstrap  ## collector + broker + a simulated district (Ctrl-C stops)
	$(VENV)/anbu demo $(ARGS)

test: bootstrap  ## the whole test suite: real broker, databases, SMTP, HTTP, ALSA, gpiozero mocks
	$(VENV)/python -m pytest $(ARGS)

lint: bootstrap
	$(VENV)/ruff check .
	$(VENV)/ruff format --check firmware_config edge_agent collector anbu
	$(VENV)/mypy

bench: bootstrap  ## every benchmark; each prints one JSON line last
	$(VENV)/python bench/sos_latency.py
	$(VENV)/python bench/agent_idle.py
	$(VENV)/python bench/speech.py  # ~20 min; --quick for a small subset
