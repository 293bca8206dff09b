#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# Runs the Python binding's tests for ctest: pip-installs the package into a venv, then pytest.
#
# Usage: run.sh pytest    SOURCE_DIR WORK_DIR PYTHON BROKER_BINARY
#        run.sh sdist     SOURCE_DIR WORK_DIR PYTHON
#        run.sh typecheck SOURCE_DIR WORK_DIR PYTHON
# The pytest suite needs root (it makes a network namespace for the broker):
# without it this exits 77, which ctest reports as skipped.
set -eu

mode=$1 src=$2 work=$3 python=$4

# A venv with pytest and build; made once, then reused (pip caches wheels).
tools_venv() {
    venv=$work/venv
    if ! "$venv/bin/python" -c 'import pytest, build, mypy' 2>/dev/null; then
        rm -rf "$venv"
        "$python" -m venv "$venv" || {
            echo "cannot make a venv with $python (Debian: apt-get install python3-venv)" >&2
            exit 1
        }
        "$venv/bin/python" -m pip install -q --disable-pip-version-check \
            pytest build mypy
    fi
}

case $mode in
pytest)
    broker=$5
    if [ "$(id -u)" -ne 0 ]; then
        echo "skipped: the Python tests need root (they start the broker in a" \
            "private network namespace and make bridges)"
        exit 77
    fi
    tools_venv
    # The checkout, as `pip install .` would (scikit-build-core and swig
    # come from PyPI into pip's isolated build environment).
    "$venv/bin/python" -m pip install -q --disable-pip-version-check \
        --force-reinstall --no-deps "$src"
    cd "$work"
    VMNET_BROKER_BIN=$broker exec "$venv/bin/python" -m pytest -p no:cacheprovider \
        -q -rs "$src/bindings/python/tests"
    ;;
sdist)
    tools_venv
    rm -rf "$work/sdist" "$work/sdist-venv"
    "$venv/bin/python" -m build --sdist --outdir "$work/sdist" "$src"
    # A new venv each time: nothing but the sdist and what it asks PyPI for.
    "$python" -m venv "$work/sdist-venv"
    "$work/sdist-venv/bin/python" -m pip install -q --disable-pip-version-check \
        "$work"/sdist/vmnet_broker-*.tar.gz
    # Outside the checkout, so the installed package is the one imported.
    cd "$work"
    exec "$work/sdist-venv/bin/python" - <<'PY'
import importlib.metadata as metadata
import vmnet_broker

version = metadata.version("vmnet-broker")
assert vmnet_broker.__version__ == version, (vmnet_broker.__version__, version)
assert "site-packages" in vmnet_broker._native.__file__, vmnet_broker._native.__file__
plugins = [e.value for e in metadata.entry_points(group="pytest11")]
assert "vmnet_broker.pytest_plugin" in plugins, plugins
assert vmnet_broker.strerror(vmnet_broker.NOT_FOUND) == str(vmnet_broker.NotFoundError())
print("sdist", version, "installs and imports:", vmnet_broker._native.__file__)
PY
    ;;
typecheck)
    # The package as users import it: its hints (py.typed) checked strictly,
    # the installed copy, so the compiled module's stub is what mypy sees.
    tools_venv
    "$venv/bin/python" -m pip install -q --disable-pip-version-check \
        --force-reinstall --no-deps "$src"
    cd "$work"
    exec "$venv/bin/python" -m mypy --strict --no-incremental -p vmnet_broker
    ;;
*)
    echo "usage: run.sh pytest|sdist|typecheck SOURCE_DIR WORK_DIR PYTHON [BROKER]" >&2
    exit 2
    ;;
esac
