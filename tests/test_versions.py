"""Which dependency versions the tests ran on (./dev test runs them twice: the dev pins, then the
lowest versions script.py's PEP 723 header allows, with EXPECT_VERSIONS set)."""

from __future__ import annotations

import importlib.metadata
import os

import jsonschema
import requests
import urllib3


def test_the_versions_under_test_are_the_expected_ones() -> None:
    assert requests.__version__ == importlib.metadata.version("requests")
    assert urllib3.__version__ == importlib.metadata.version("urllib3")
    assert jsonschema.validators  # imported from the same place
    for pin in os.environ.get("EXPECT_VERSIONS", "").split():
        name, version = pin.split("==")
        assert importlib.metadata.version(name) == version, pin
