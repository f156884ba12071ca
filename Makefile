# The two commands of the README:
#   make        build libtapio and the tapio Python package, run the
#               documentation's examples (C and Python, on tapio), then the
#               short side-by-side benchmark table
#   make test   every test: C under ASan+UBSan on both backends; on every
#               CPython 3.11+ on the machine, the Python suite on tapio and
#               asyncio and CPython's test_asyncio on tapio
#   make fuzz   the libFuzzer targets (tests/fuzz, clang), FUZZ_SECONDS each
#               (default 60), from their seed corpus
#   make docs   the HTML documentation (Doxygen: docs/*.md and the C API
#               reference from include/tapio.h) into $(BUILD)-docs/html;
#               any Doxygen warning fails it
# Other targets: build, examples, bench (the tables, their numbers as JSON in
# $(BUILD)/bench-results/ and charts of them in docs/charts/), install
# (PREFIX=...), clean.
# PYTHON=... chooses the interpreter `make` builds for; PYTHONS="..." the
# ones `make test` runs (default: scripts/find-pythons.sh).

BUILD ?= build
PREFIX ?= /usr/local
PYTHON ?= python3
BENCH_ARGS ?= --quick
FUZZ_SECONDS ?= 60
BENCH_RESULTS = $(BUILD)/bench-results
# The charts need matplotlib, which Debian's python3 has.
CHARTS_PYTHON ?= /usr/bin/python3

.PHONY: all deps build examples bench docs test fuzz install clean

all: examples bench

deps:
	@./scripts/install-deps.sh

build: deps
	cmake -S . -B $(BUILD) -G Ninja -DCMAKE_BUILD_TYPE=Release \
	      -DCMAKE_INSTALL_PREFIX=$(PREFIX) -DTAPIO_BUILD_EXAMPLES=ON \
	      -DTAPIO_BUILD_BENCH=ON -DBUILD_TESTING=OFF -DTAPIO_BUILD_PYTHON=ON \
	      -DPython3_EXECUTABLE=$$(command -v $(PYTHON)) >/dev/null
	cmake --build $(BUILD)

examples: build
	./examples/c/run_examples.sh $(BUILD)
	PYTHONPATH=python $(PYTHON) -m unittest -v tests.python.test_doc_examples

bench: build
	mkdir -p $(BENCH_RESULTS)
	$(PYTHON) bench/run.py --build-dir $(BUILD) $(BENCH_ARGS) --json $(BENCH_RESULTS)/echo.json
	$(PYTHON) bench/udp_run.py --build-dir $(BUILD) $(BENCH_ARGS) --json $(BENCH_RESULTS)/udp.json
	$(PYTHON) bench/tls_run.py --build-dir $(BUILD) $(BENCH_ARGS) --json $(BENCH_RESULTS)/tls.json
	$(PYTHON) bench/http_run.py --build-dir $(BUILD) $(BENCH_ARGS) --json $(BENCH_RESULTS)/http.json
	$(CHARTS_PYTHON) bench/charts.py --out docs/charts $(BENCH_RESULTS)/*.json

docs: deps
	BUILD=$(BUILD) ./scripts/build-docs.sh

test: deps
	PYTHON=$(PYTHON) BUILD=$(BUILD) ./scripts/run-tests.sh

fuzz: deps
	FUZZ_SECONDS=$(FUZZ_SECONDS) ./scripts/run-fuzzers.sh

install: build
	cmake --install $(BUILD)

clean:
	rm -rf $(BUILD) $(BUILD)-docs build-sanitize build-tsan build-fuzz
