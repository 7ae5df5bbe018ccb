"""Which dependency versions the tests ran on (./dev test runs them twice: the dev pins, then the
lowest versions script.py's PEP 723 header allows, with EXPECT_VERSIONS set)."""

from __future__ import annotations

import importlib.metadata
import os
from pathlib import Path

import jsonschema
import requests
import urllib3


def test_the_versions_under_test_are_the_expected_ones() -> None:
    assert requests.__version__ == importlib.metadata.version("requests")
    assert urllib3.__version__ == importlib.metadata.version("urllib3")
    # the modules imported are the installed distributions' files, not a stray copy on sys.path
    for module in (requests, urllib3, jsonschema):
        installed = importlib.metadata.distribution(module.__name__).locate_file(f"{module.__name__}/__init__.py")
        assert Path(module.__file__).resolve() == Path(str(installed)).resolve(), module.__name__
    for pin in os.environ.get("EXPECT_VERSIONS", "").split():
        name, version = pin.split("==")
        assert importlib.metadata.version(name) == version, pin
