"""The policy's `help_desk`: every value checked with file, line and field; logos embedded."""

from __future__ import annotations

import shutil
from datetime import date
from pathlib import Path

import pytest

from aupgate.policy.loader import load_policy
from aupgate.policy.logo import MAX_LOGO_BYTES, image_type, logo_data_uri

LAB = Path(__file__).resolve().parent / "e2e" / "fixtures" / "policies"
PNG = (LAB / "lab-logo.png").read_bytes()


def with_desk(tmp_path: Path, desk: str) -> tuple[object, list[str]]:
    shutil.copy(LAB / "lab-logo.png", tmp_path / "lab-logo.png")
    text = (LAB / "lab.yaml").read_text()
    start = text.index("help_desk:")
    end = text.index("timezone:")
    (tmp_path / "lab.yaml").write_text(text[:start] + desk + text[end:])
    policy, problems = load_policy(tmp_path / "lab.yaml", today=date(2026, 11, 24))
    return policy, [str(p) for p in problems]


@pytest.mark.parametrize(
    ("desk", "expected"),
    [
        ("help_desk:\n  phone: 555\n", "help_desk: missing required key 'name'"),
        ("help_desk:\n  name: Desk\n  link: javascript:alert(1)\n", "help_desk.link"),
        ("help_desk:\n  name: Desk\n  link: https://\n", "names no host"),
        ("help_desk:\n  name: Desk\n  phone: call us <b>\n", "help_desk.phone"),
        ("help_desk:\n  name: Desk\n  logo: http://x.example/a.png\n", "not http:"),
        ("help_desk:\n  name: Desk\n  logo: data:image/svg+xml,<svg/>\n", "not data:"),
        ("help_desk:\n  name: Desk\n  logo: logo.svg\n", "SVG is not accepted"),
        ("help_desk:\n  name: Desk\n  logo: missing.png\n", "cannot read the logo"),
        ("help_desk:\n  name: Desk\n  logo: lab-logo.png\n  colour: red\n", "colour"),
        ("help_desk:\n  name: " + "x" * 81 + "\n", "at most 80 characters"),
    ],
)
def test_bad_help_desk_is_located(tmp_path: Path, desk: str, expected: str) -> None:
    policy, problems = with_desk(tmp_path, desk)
    assert policy is None
    assert any(expected in p and str(tmp_path / "lab.yaml") in p for p in problems), problems
    line = next(p for p in problems if expected in p)
    assert ":9" in line or ":10" in line or ":11" in line or ":12" in line, line  # its line


def test_good_help_desk(tmp_path: Path) -> None:
    policy, problems = with_desk(tmp_path, "help_desk:\n  name: Desk\n  phone: +1 (555) 010-0100"
                                           " ext. 12\n  link: mailto:desk@agency.example\n"
                                           "  logo: https://agency.example/logo.png\n")
    assert problems == [] and policy is not None
    desk = policy.help_desk  # type: ignore[attr-defined]
    assert desk.link == "mailto:desk@agency.example"
    assert desk.logo == "https://agency.example/logo.png"


def test_logo_type_and_size_are_checked(tmp_path: Path) -> None:
    (tmp_path / "fake.png").write_bytes(b"<svg onload=alert(1)>")
    with pytest.raises(ValueError, match="not a PNG"):
        logo_data_uri("fake.png", tmp_path)
    (tmp_path / "jpeg.png").write_bytes(b"\xff\xd8\xff" + b"\0" * 10)
    with pytest.raises(ValueError, match="not a PNG"):
        logo_data_uri("jpeg.png", tmp_path)
    (tmp_path / "big.png").write_bytes(PNG + b"\0" * MAX_LOGO_BYTES)
    with pytest.raises(ValueError, match="at most"):
        logo_data_uri("big.png", tmp_path)
    (tmp_path / "ok.png").write_bytes(PNG)
    assert logo_data_uri("ok.png", tmp_path).startswith("data:image/png;base64,iVBOR")
    assert image_type(b"RIFF\0\0\0\0WEBPVP8 ") == "image/webp"
    assert image_type(b"<?xml") is None
