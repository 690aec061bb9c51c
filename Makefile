# The README's two commands:
#   make demo   train the small CNN on the embedded digits, export TFLite float32,
#               TFLite int8 and ONNX float32, benchmark all three, print the table
#   make test   install what the tests need, lint (ruff) and run them (.ci/run calls this)
# Both create their own virtual environment in .venv from pyproject.toml.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
# Re-install whenever pyproject.toml changes.
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)
DEMO   ?= demo
PYTEST_ARGS ?=

.PHONY: demo test install clean figures

install: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[all,dev]"
	@rm -f $(VENV)/.installed-*
	@touch $@

demo: $(STAMP)
	$(BIN)/train-model --model small_cnn --dataset digits --output $(DEMO)/run --force
	$(BIN)/export-model $(DEMO)/run --format tflite --quantize none,int8 --output $(DEMO)/models --force
	$(BIN)/export-model $(DEMO)/run --format onnx --quantize none --output $(DEMO)/models --force
	$(BIN)/python benchmarks/compare.py $(DEMO)/models --dataset digits --out $(DEMO)/report --force

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# Re-measure every figure of the README and docs/ (long: trains on the shared photos, VGG16 latency, fuzzing),
# or one of them with ONLY=NAME (python scripts/figures.py list), then render the tables.
figures: $(STAMP)
	$(BIN)/python scripts/figures.py measure $(ONLY)

clean:
	rm -rf $(DEMO) .pytest_cache build dist *.egg-info
