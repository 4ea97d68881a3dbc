"""The public C2PA test images (tests/data/c2pa, CC BY-SA 4.0, see its README and LICENSE)
read as their documentation says, through the CLI a user would run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import REPO

FILES = REPO / "tests" / "data" / "c2pa"
EXPECTED = {  # documented in tests/data/c2pa/README.md
    "A": ("absent", None),
    "I": ("absent", None),
    "C": ("valid", None),
    "CA": ("valid", None),
    "CAI": ("valid", None),
    "CAICAI": ("valid", None),
    "CIE-sig-CA": ("valid", "claimSignature.mismatch"),
    "E-dat-CA": ("invalid", "assertion.dataHash.mismatch"),
    "E-sig-CA": ("invalid", "claimSignature.mismatch"),
    "XCA": ("invalid", "assertion.dataHash.mismatch"),
}


def public_file(code: str) -> Path:
    return FILES / f"adobe-20220124-{code}.jpg"


def test_every_file_in_the_folder_is_covered_and_licensed():
    assert sorted(p.name for p in FILES.glob("*.jpg")) == sorted(
        public_file(code).name for code in EXPECTED
    )
    assert "CC BY-SA 4.0" in (FILES / "README.md").read_text(encoding="utf-8")
    assert "Attribution-ShareAlike 4.0" in (FILES / "LICENSE").read_text(encoding="utf-8")


@pytest.mark.parametrize("code", sorted(EXPECTED))
def test_each_public_file_verifies_as_documented(run, code: str):
    state, failure = EXPECTED[code]
    expect = 0 if state == "valid" else 1
    data = json.loads(run("verify", public_file(code), "--json", expect=expect).stdout)
    [result] = data["results"]
    assert result["state"] == state
    if state == "valid":  # intact, but the test signer is on no trust list here
        assert "signingCredential.untrusted" in result["codes"]
    if failure:
        assert failure in result["codes"]


def test_an_ingredient_whose_signature_fails_shows_in_verify(run):
    """CIE-sig-CA is intact itself; its E-sig-CA ingredient's claim signature is not."""
    path = public_file("CIE-sig-CA")
    text = run("verify", path).output
    assert "claimSignature.mismatch" in text.split("manifest", 1)[0]  # in the codes line
    [line] = [line for line in text.splitlines() if "'E-sig-CA.jpg'" in line]
    assert "componentOf" in line and "FAILED" in line and "claimSignature.mismatch" in line
    [result] = json.loads(run("verify", path, "--json").stdout)["results"]
    [ingredient] = result["details"]["manifest"]["ingredients"]
    assert "claimSignature.mismatch" in [f["code"] for f in ingredient["failures"]]
    assert {"code": "claimSignature.mismatch", "ingredient": "E-sig-CA.jpg"}.items() <= next(
        f for f in result["details"]["failures"] if f["code"] == "claimSignature.mismatch"
    ).items()


def test_an_intact_ingredient_shows_no_failure(run):
    text = run("verify", public_file("CAICAI")).output
    assert "FAILED" not in text
    assert "claimSignature.mismatch" not in text
