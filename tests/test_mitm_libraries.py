"""The protocol libraries the proxy reports in `proxy_start`, and the warning for old ones."""

from __future__ import annotations

import logging

import pytest

from aupgate.mitm import libraries


def test_versions_names_every_library_installed_here() -> None:
    found = libraries.versions()
    assert set(found) == set(libraries.LIBRARIES)
    assert found["h11"] == "0.16.0" and found["h2"] == "4.3.0", found


@pytest.mark.parametrize(("found", "old"), [
    ({"h11": "0.16.0", "h2": "4.3.0"}, []),
    ({"h11": "0.17.1", "h2": "5.0.0"}, []),
    ({"h11": "0.14.0", "h2": "4.3.0"}, ["h11 0.14.0 (fixed in 0.16.0)"]),
    ({"h11": "0.16.0", "h2": "4.1.0"}, ["h2 4.1.0 (fixed in 4.3.0)"]),
    ({"h11": "0.16.0rc1", "h2": "4.3.0.dev1"}, []),
    ({"h11": "0.15.9", "h2": "4.2.99"}, ["h11 0.15.9 (fixed in 0.16.0)",
                                         "h2 4.2.99 (fixed in 4.3.0)"]),
    ({"h11": "not installed", "h2": "4.3.0"}, ["h11 not installed (fixed in 0.16.0)"]),
    ({"h2": "4.3.0"}, ["h11 not installed (fixed in 0.16.0)"]),
    ({"h11": "", "h2": "garbage"}, ["h11  (fixed in 0.16.0)", "h2 garbage (fixed in 4.3.0)"]),
])
def test_outdated_compares_releases_not_strings(found: dict[str, str], old: list[str]) -> None:
    assert libraries.outdated(found) == old


def test_an_outdated_library_is_warned_about(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="aupgate.mitm.libraries"):
        libraries.warn_if_outdated({"h11": "0.14.0", "h2": "4.3.0"})
    assert "h11 0.14.0 (fixed in 0.16.0)" in caplog.text
    assert "known request-smuggling flaws" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="aupgate.mitm.libraries"):
        libraries.warn_if_outdated(libraries.versions())
    assert caplog.text == ""
