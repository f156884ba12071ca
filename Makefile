# The two commands of the README:
#   make        build libtapio, run the C examples against each other, then
#               the short side-by-side benchmark table
#   make test   every test, under ASan+UBSan, on the epoll and poll backends
# Other targets: build, examples, bench, install (PREFIX=...), clean.

BUILD ?= build
PREFIX ?= /usr/local
PYTHON ?= python3
BENCH_ARGS ?= --quick

.PHONY: all deps build examples bench test install clean

all: examples bench

deps:
	@./scripts/install-deps.sh

build: deps
	cmake -S . -B $(BUILD) -G Ninja -DCMAKE_BUILD_TYPE=Release \
	      -DCMAKE_INSTALL_PREFIX=$(PREFIX) -DTAPIO_BUILD_EXAMPLES=ON \
	      -DTAPIO_BUILD_BENCH=ON -DBUILD_TESTING=OFF >/dev/null
	cmake --build $(BUILD)

examples: build
	./examples/c/run_examples.sh $(BUILD)

bench: build
	$(PYTHON) bench/run.py --build-dir $(BUILD) $(BENCH_ARGS)

test: deps
	./scripts/run-tests.sh

install: build
	cmake --install $(BUILD)

clean:
	rm -rf $(BUILD) build-sanitize
