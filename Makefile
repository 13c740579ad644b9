# parc — convenience wrapper around CMake.  `make help` lists the targets.
#
# Every target that builds first installs missing Debian packages
# (scripts/install-deps.sh, a no-op when all are present).

# SANITIZE=address (ASan+UBSan) or thread (TSan) builds in its own build-$(SANITIZE).
SANITIZE   ?=
BUILD_DIR  ?= build$(if $(SANITIZE),-$(SANITIZE))
PREFIX     ?= /usr/local
BUILD_TYPE ?= RelWithDebInfo
JOBS       ?= $(shell nproc 2>/dev/null || echo 2)
# Debian's python3; the `python3` on PATH may be a pyenv interpreter that cannot
# see the python3-* packages.
PYTHON     ?= /usr/bin/python3
# parc is pinned to MPICH; `mpiexec` may point at Open MPI (python3-mpi4py).
MPIEXEC    := mpiexec.mpich
DEMO_RANKS ?= 4
CMAKE      ?= cmake
CTEST      ?= ctest
CTEST_ARGS ?=
CMAKE_ARGS ?=
CLANG_FORMAT ?= clang-format

# cmake --build runs make too; keep its output free of "Entering directory" noise.
MAKEFLAGS += --no-print-directory

# Folders whose *.hpp / *.cpp files `make format` rewrites (missing ones are skipped).
FORMAT_DIRS := $(wildcard include exceptions comm closures managers python tests examples bench fuzz)

.DEFAULT_GOAL := help
.PHONY: help deps deps-bench deps-format configure build test demo install bench \
        format format-check fuzz clean FORCE

help:
	@echo "parc — targets:"
	@echo "  make deps        install missing Debian packages (scripts/install-deps.sh)"
	@echo "  make configure   configure CMake in \$$(BUILD_DIR) (only when needed)"
	@echo "  make build       build everything"
	@echo "  make test        build and run the whole test suite (ctest)"
	@echo "  make demo        run the pi examples (C++, then Python) serially and on $(DEMO_RANKS) ranks"
	@echo "  make install     install into \$$(PREFIX) (default /usr/local)"
	@echo "  make bench       install benchmark peers, build, run bench/run.sh and bench/python/run.sh"
	@echo "  make format      clang-format -i the C++ sources"
	@echo "  make format-check  report formatting differences, change nothing"
	@echo "  make fuzz        build the libFuzzer targets (clang 14) and run each FUZZ_SECONDS=$(FUZZ_SECONDS)"
	@echo "  make clean       remove \$$(BUILD_DIR)"
	@echo "variables: BUILD_DIR=$(BUILD_DIR) PREFIX=$(PREFIX) BUILD_TYPE=$(BUILD_TYPE)"
	@echo "           SANITIZE=$(SANITIZE) (address | thread: sanitized build and tests)"
	@echo "           JOBS=$(JOBS) CMAKE_ARGS='$(CMAKE_ARGS)' CTEST_ARGS='$(CTEST_ARGS)'"

deps:
	@bash scripts/install-deps.sh

deps-bench:
	@bash scripts/install-deps.sh bench

deps-format:
	@bash scripts/install-deps.sh format

# --- configure: only when there is no cache yet, when BUILD_TYPE or SANITIZE changed, when
# CMAKE_ARGS are given, or when the last configure failed.
# (Edits to CMakeLists.txt are picked up by CMake itself during the build.)
CACHE := $(BUILD_DIR)/CMakeCache.txt
CACHED_BUILD_TYPE := $(shell sed -n 's/^CMAKE_BUILD_TYPE:[A-Z]*=//p' $(CACHE) 2>/dev/null)
CACHED_SANITIZE := $(shell sed -n 's/^PARC_SANITIZE:[A-Z]*=//p' $(CACHE) 2>/dev/null)
ifneq ($(wildcard $(CACHE)),)
ifneq ($(CACHED_BUILD_TYPE),$(BUILD_TYPE))
$(CACHE): FORCE
endif
ifneq ($(CACHED_SANITIZE),$(strip $(SANITIZE)))
$(CACHE): FORCE
endif
# A previous configure that failed leaves a cache but no build system.
ifeq ($(wildcard $(BUILD_DIR)/Makefile $(BUILD_DIR)/build.ninja),)
$(CACHE): FORCE
endif
# Extra CMake options given on the command line always reconfigure.
ifneq ($(strip $(CMAKE_ARGS)),)
$(CACHE): FORCE
endif
endif

$(CACHE): | deps
	$(CMAKE) -S . -B $(BUILD_DIR) -DCMAKE_BUILD_TYPE=$(BUILD_TYPE) \
	    -DPython_EXECUTABLE=$(PYTHON) -DPARC_SANITIZE=$(strip $(SANITIZE)) $(CMAKE_ARGS)

configure: $(CACHE)

build: configure
	$(CMAKE) --build $(BUILD_DIR) -j$(JOBS)

test: build
	$(CTEST) --test-dir $(BUILD_DIR) --output-on-failure --no-tests=error $(CTEST_ARGS)

demo: build
	@echo "== pi_farm, serial (one process) =="
	$(BUILD_DIR)/examples/pi_farm
	@echo "== pi_farm, $(DEMO_RANKS) ranks =="
	$(MPIEXEC) -n $(DEMO_RANKS) $(BUILD_DIR)/examples/pi_farm
	@echo "== examples/python/pi.py, serial (one process) =="
	PYTHONPATH=$(BUILD_DIR)/python $(PYTHON) examples/python/pi.py
	@echo "== examples/python/pi.py, $(DEMO_RANKS) ranks =="
	PYTHONPATH=$(BUILD_DIR)/python $(MPIEXEC) -n $(DEMO_RANKS) $(PYTHON) examples/python/pi.py

install: build
	$(CMAKE) --install $(BUILD_DIR) --prefix $(PREFIX)

# deps-bench first, then build in a sub-make so that the two never run apt
# concurrently under `make -j`.
bench: deps-bench
	@$(MAKE) --no-print-directory build
	bash bench/run.sh $(BUILD_DIR)
	PYTHON=$(PYTHON) bash bench/python/run.sh $(BUILD_DIR)
	PYTHON=$(PYTHON) bash bench/cannon.sh $(BUILD_DIR)

FORMAT_FILES = $(shell find $(FORMAT_DIRS) -type f \( -name '*.hpp' -o -name '*.cpp' \
                 -o -name '*.h' -o -name '*.cc' \) -not -path '*/build*' 2>/dev/null)

format: deps-format
	@if [ -n "$(strip $(FORMAT_FILES))" ]; then \
	    echo "clang-format -i on $(words $(FORMAT_FILES)) files"; \
	    $(CLANG_FORMAT) -i $(FORMAT_FILES); \
	else echo "nothing to format"; fi

format-check: deps-format
	@if [ -n "$(strip $(FORMAT_FILES))" ]; then \
	    $(CLANG_FORMAT) --dry-run -Werror $(FORMAT_FILES); \
	fi

# --- fuzz: every decoder of messages from other ranks, under libFuzzer, ASan and UBSan
# (fuzz/, docs/security.md), in its own clang build.
FUZZ_DIR     ?= build-fuzz
FUZZ_SECONDS ?= 60
FUZZ_TARGETS ?= frame task_batch result_batch region control proxy error_info closure_table values

fuzz:
	@bash scripts/install-deps.sh fuzz
	$(CMAKE) -S . -B $(FUZZ_DIR) -DCMAKE_BUILD_TYPE=RelWithDebInfo \
	    -DCMAKE_C_COMPILER=clang-14 -DCMAKE_CXX_COMPILER=clang++-14 -DPARC_BUILD_FUZZ=ON \
	    -DBUILD_SHARED_LIBS=OFF -DPARC_BUILD_TESTS=OFF -DPARC_BUILD_EXAMPLES=OFF \
	    -DPARC_BUILD_BENCH=OFF -DPARC_BUILD_PYTHON=OFF
	$(CMAKE) --build $(FUZZ_DIR) -j$(JOBS) --target $(FUZZ_TARGETS:%=%_fuzz)
	bash fuzz/run.sh $(FUZZ_DIR) $(FUZZ_SECONDS) $(FUZZ_TARGETS)

clean:
	rm -rf $(BUILD_DIR)

FORCE:
