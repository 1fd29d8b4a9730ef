# greetd developer workflow: `make run`, `make test`, `make lint`, `make bench`.
# PYTHON picks the interpreter (make test PYTHON=pypy3); each gets its own venv.

PYTHON ?= python3
VENV ?= $(if $(filter python3,$(PYTHON)),.venv,.venv-$(notdir $(PYTHON)))
BIN := $(VENV)/bin
comma := ,

# What each command installs in the virtualenv, added as it is first needed:
# make run only what running needs (greetd and its TLS extra, for ssl: and
# tls: listeners), make test the test tools, make lint the linters, make docs
# Sphinx and pydoctor.  Linting and the docs run on CPython only (make test
# there adds the docs tools too: it checks the committed man pages against
# their sources); every interpreter is tested with TLS.
CPYTHON_DOCS := $(if $(filter python3,$(PYTHON)),$(comma)docs)
RUN_EXTRAS := tls
TEST_EXTRAS := tls$(comma)test$(CPYTHON_DOCS)
LINT_EXTRAS := tls$(comma)test$(comma)lint$(CPYTHON_DOCS)
DOCS_EXTRAS := tls$(comma)docs
INSTALL_EXTRAS ?= $(if $(filter python3,$(PYTHON)),$(LINT_EXTRAS),$(TEST_EXTRAS))

# Debian's PyPy (Python 3.9), for make test PYTHON=pypy3 and for the test
# that installs the wheel on PyPy.
DEBIAN_PYPY := pypy3=pypy3,pypy3-venv

# Outside tools the tests run for real: COMMAND=DEBIAN-PACKAGE.
DEBIAN_TOOLS := nc=netcat-openbsd haproxy=haproxy logrotate=logrotate openssl=openssl \
	systemd-socket-activate=systemd systemd-analyze=systemd \
	ip=iproute2 unshare=util-linux nsenter=util-linux setpriv=util-linux \
	man=man-db jq=jq curl=curl cc=gcc \
	nginx=nginx,libnginx-mod-stream \
	/usr/lib/nginx/modules/ngx_stream_module.so=libnginx-mod-stream \
	$(DEBIAN_PYPY)

.PHONY: run test lint install bench bench-micro bench-instructions debian-packages clean docs man

# An editable install (setup.cfg's package_dir makes it a .pth file putting
# the project root on sys.path, where Twisted's plugin scan finds
# twisted/plugins/greetd_plugin.py).
PACKAGING := pyproject.toml setup.cfg setup.py

$(BIN)/python:
	$(if $(filter pypy3,$(PYTHON)),tools/debian-packages $(DEBIAN_PYPY))
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# $(VENV)/.installed-EXTRAS: greetd installed editable with those extras.
$(VENV)/.installed-%: $(PACKAGING) | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[$*]'
	touch $@

install: $(VENV)/.installed-$(INSTALL_EXTRAS)

# The daemon in the foreground; PORT=N moves both services (TCP and UDP on
# 127.0.0.1) from 9999 to N, ARGS passes options.  Stopped by Ctrl-C or
# SIGTERM, twistd exits by that signal: the trap keeps the shell waiting for
# it, and such a stop is no error for make.
RUN := $(BIN)/twistd --nodaemon --pidfile= greetd $(if $(PORT),--tcp tcp:$(PORT):interface=127.0.0.1 --udp udp:$(PORT):interface=127.0.0.1) $(ARGS)

run: $(VENV)/.installed-$(RUN_EXTRAS)
	@echo '$(RUN)'
	@trap : INT TERM; $(RUN); status=$$?; \
	    [ $$status = 130 ] || [ $$status = 143 ] || exit $$status

debian-packages:
	tools/debian-packages $(DEBIAN_TOOLS)

# Each test runs once: the unit tests (trial's TestCases) under trial, the
# integration tests (pytest functions driving the real daemon) under pytest,
# PYTEST_WORKERS files at a time: they spend most of their time waiting on
# the daemons they start, and each holds on a busy machine.
PYTEST_WORKERS ?= 3
test: $(VENV)/.installed-$(TEST_EXTRAS) debian-packages
	$(BIN)/python -m twisted.trial --temp-directory=/tmp/greetd-trial-$(notdir $(VENV)) tests
	$(BIN)/python -m pytest -n $(PYTEST_WORKERS) --dist loadfile $(PYTEST_ARGS)

lint: $(VENV)/.installed-$(LINT_EXTRAS)
	$(BIN)/ruff check greetd tests bench twisted docs setup.py
	$(BIN)/ruff format --check greetd tests bench twisted docs setup.py
	$(BIN)/mypy --strict greetd
	$(BIN)/lint-imports

# The manual (HTML, with the API reference by pydoctor) and the man pages,
# from docs/, into build/docs; every warning an error, every reference
# checked (-n).  man: the committed man pages (man/), which the wheel
# installs, made afresh (tests/integration/test_manpages.py checks that
# they are current).
SPHINX := $(BIN)/sphinx-build -q -W --keep-going -n
docs: $(VENV)/.installed-$(DOCS_EXTRAS)
	$(SPHINX) -b html docs build/docs/html
	$(SPHINX) -b man docs build/docs/man

man: $(VENV)/.installed-$(DOCS_EXTRAS)
	$(SPHINX) -b man docs build/docs/man
	rm -rf man && mkdir -p man/man1 man/man8
	cp build/docs/man/man1/greet.1 man/man1/
	cp build/docs/man/man8/twisted-greetd.8 man/man8/

# The benchmark: greetd under CPython and, when pypy3 is installed, PyPy
# (its own venv), against the peers in bench/peers/.  BENCH_ARGS=--quick.
# Then the micro-benchmarks of greetd's steps (bench-micro alone).
bench: $(VENV)/.installed-$(LINT_EXTRAS)$(comma)bench
	@if command -v pypy3 >/dev/null; then \
		$(MAKE) install PYTHON=pypy3 || echo "make bench: no PyPy venv; greetd on PyPy is skipped"; \
	else echo "make bench: no pypy3; greetd on PyPy is skipped"; fi
	$(BIN)/python -m bench.run $(BENCH_ARGS)
	$(MAKE) bench-micro

bench-micro: $(VENV)/.installed-$(INSTALL_EXTRAS)
	$(BIN)/python -m bench.micro --json bench/results/micro.json --rst bench/results/micro.rst

# Instructions a connection of the churn path, greetd's and plain
# Twisted's, under valgrind: a figure a busy machine cannot blur.
bench-instructions: $(VENV)/.installed-$(INSTALL_EXTRAS)
	tools/debian-packages valgrind=valgrind
	$(BIN)/python -m bench.instructions

clean:
	rm -rf .venv .venv-* build dist *.egg-info twisted/plugins/dropin.cache
