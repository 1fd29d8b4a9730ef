# greetd developer workflow: `make run`, `make test`, `make lint`, `make bench`.
# PYTHON picks the interpreter (make test PYTHON=pypy3); each gets its own venv.

PYTHON ?= python3
VENV ?= $(if $(filter python3,$(PYTHON)),.venv,.venv-$(notdir $(PYTHON)))
BIN := $(VENV)/bin
# Linting runs on CPython only; other interpreters install what tests need.
# TLS (greetd[tls]) is tested, and served by make run, with every interpreter.
EXTRAS ?= $(if $(filter python3,$(PYTHON)),test$(comma)lint$(comma)tls,test$(comma)tls)
comma := ,
STAMP := $(VENV)/.installed

# Debian's PyPy (Python 3.9), for make test PYTHON=pypy3 and for the test
# that installs the wheel on PyPy.
DEBIAN_PYPY := pypy3=pypy3,pypy3-venv

# Outside tools the tests run for real: COMMAND=DEBIAN-PACKAGE.
DEBIAN_TOOLS := nc=netcat-openbsd haproxy=haproxy logrotate=logrotate openssl=openssl \
	systemd-socket-activate=systemd systemd-analyze=systemd \
	ip=iproute2 unshare=util-linux nsenter=util-linux setpriv=util-linux \
	nginx=nginx,libnginx-mod-stream \
	/usr/lib/nginx/modules/ngx_stream_module.so=libnginx-mod-stream \
	$(DEBIAN_PYPY)

.PHONY: run test lint install bench debian-packages clean

# An editable install (setup.cfg's package_dir makes it a .pth file putting
# the project root on sys.path, where Twisted's plugin scan finds
# twisted/plugins/greetd_plugin.py).
$(STAMP): pyproject.toml setup.cfg setup.py
	$(if $(filter pypy3,$(PYTHON)),tools/debian-packages $(DEBIAN_PYPY))
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[$(EXTRAS)]'
	touch $@

install: $(STAMP)

# PORT=N moves both services (TCP and UDP on 127.0.0.1) from 9999 to N.
run: $(STAMP)
	$(BIN)/twistd --nodaemon --pidfile= greetd $(if $(PORT),--tcp tcp:$(PORT):interface=127.0.0.1 --udp udp:$(PORT):interface=127.0.0.1) $(ARGS)

debian-packages:
	tools/debian-packages $(DEBIAN_TOOLS)

# Each test runs once: the unit tests (trial's TestCases) under trial, the
# integration tests (pytest functions driving the real daemon) under pytest,
# PYTEST_WORKERS files at a time: they spend most of their time waiting on
# the daemons they start, and each holds on a busy machine.
PYTEST_WORKERS ?= 3
test: $(STAMP) debian-packages
	$(BIN)/python -m twisted.trial --temp-directory=/tmp/greetd-trial tests
	$(BIN)/python -m pytest -n $(PYTEST_WORKERS) --dist loadfile $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check greetd tests bench twisted docs setup.py
	$(BIN)/ruff format --check greetd tests bench twisted docs setup.py
	$(BIN)/mypy --strict greetd
	$(BIN)/lint-imports

# The benchmark: greetd under CPython and, when pypy3 is installed, PyPy
# (its own venv), against the peers in bench/peers/.  BENCH_ARGS=--quick.
$(VENV)/.bench-installed: $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[test,lint,tls,bench]'
	touch $@

bench: $(VENV)/.bench-installed
	@if command -v pypy3 >/dev/null; then \
		$(MAKE) install PYTHON=pypy3 || echo "make bench: no PyPy venv; greetd on PyPy is skipped"; \
	else echo "make bench: no pypy3; greetd on PyPy is skipped"; fi
	$(BIN)/python -m bench.run $(BENCH_ARGS)

clean:
	rm -rf .venv .venv-* build dist *.egg-info twisted/plugins/dropin.cache
