# greetd developer workflow: `make run`, `make test`, `make lint`, `make bench`.
# PYTHON picks the interpreter (make test PYTHON=pypy3); each gets its own venv.

PYTHON ?= python3
VENV ?= $(if $(filter python3,$(PYTHON)),.venv,.venv-$(notdir $(PYTHON)))
BIN := $(VENV)/bin
# Linting runs on CPython only; other interpreters install what tests need.
EXTRAS ?= $(if $(filter python3,$(PYTHON)),test$(comma)lint,test)
comma := ,
STAMP := $(VENV)/.installed

# Outside tools the tests run for real: COMMAND=DEBIAN-PACKAGE.
DEBIAN_TOOLS := nc=netcat-openbsd haproxy=haproxy \
	systemd-socket-activate=systemd systemd-analyze=systemd \
	nginx=nginx,libnginx-mod-stream \
	/usr/lib/nginx/modules/ngx_stream_module.so=libnginx-mod-stream

# Debian's PyPy (Python 3.9), for make test PYTHON=pypy3.
DEBIAN_PYPY := pypy3=pypy3,pypy3-venv

.PHONY: run test lint install bench debian-packages clean

# Editable installs must use compat mode: Twisted finds plugins by scanning
# sys.path for twisted/plugins, which setuptools' default editable finder hides.
$(STAMP): setup.cfg setup.py
	$(if $(filter pypy3,$(PYTHON)),tools/debian-packages $(DEBIAN_PYPY))
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet --config-settings editable_mode=compat -e '.[$(EXTRAS)]'
	touch $@

install: $(STAMP)

run: $(STAMP)
	$(BIN)/twistd --nodaemon --pidfile= greetd $(ARGS)

debian-packages:
	tools/debian-packages $(DEBIAN_TOOLS)

test: $(STAMP) debian-packages
	$(BIN)/python -m twisted.trial --temp-directory=/tmp/greetd-trial tests
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check greetd tests bench twisted setup.py
	$(BIN)/ruff format --check greetd tests bench twisted setup.py
	$(BIN)/mypy --strict greetd

# The benchmark: greetd under CPython and, when pypy3 is installed, PyPy
# (its own venv), against the peers in bench/peers/.  BENCH_ARGS=--quick.
$(VENV)/.bench-installed: $(STAMP)
	$(BIN)/python -m pip install --quiet --config-settings editable_mode=compat -e '.[test,lint,bench]'
	touch $@

bench: $(VENV)/.bench-installed
	@if command -v pypy3 >/dev/null; then \
		$(MAKE) install PYTHON=pypy3 || echo "make bench: no PyPy venv; greetd on PyPy is skipped"; \
	else echo "make bench: no pypy3; greetd on PyPy is skipped"; fi
	$(BIN)/python -m bench.run $(BENCH_ARGS)

clean:
	rm -rf .venv .venv-* build *.egg-info
