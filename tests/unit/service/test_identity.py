"""CPR checks, keyed pseudonyms, the identity vault and the key file."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from cryptography.exceptions import InvalidTag

from homediag.identity import Identity, InvalidCpr, check_cpr, open_identity, patient_key, seal_identity
from homediag.keys import KeyError_, KeyRing, load_keys, write_key_file
from homediag.settings import Settings

# Synthetic: 010190-2005 passes modulus 11 (weights 4 3 2 7 6 5 4 3 2 1: sum 77); 010190-2007 does not.
MOD11_OK = "0101902005"
MOD11_FAILS = "0101902007"


def test_cpr_with_a_valid_date_is_accepted_and_a_failed_modulus_11_is_only_a_warning() -> None:
    assert check_cpr(MOD11_OK).warnings == ()
    checked = check_cpr("010190-2007")
    assert checked.cpr == MOD11_FAILS
    assert "modulus-11" in checked.warnings[0]


@pytest.mark.parametrize("value", ["3102901234", "0013901234", "010190123", "01019O1234", ""])
def test_malformed_cpr_is_refused_without_repeating_it(value: str) -> None:
    with pytest.raises(InvalidCpr) as err:
        check_cpr(value)
    assert value == "" or value not in str(err.value)


def test_century_digit_decides_whether_29_february_exists() -> None:
    check_cpr("2902004000")  # 7th digit 4, year 00 -> 2000, a leap year
    with pytest.raises(InvalidCpr):
        check_cpr("2902001000")  # 7th digit 1 -> 1900, not a leap year


def test_patient_key_is_keyed_not_a_bare_hash() -> None:
    a, b = KeyRing.generate(), KeyRing.generate()
    assert patient_key(MOD11_OK, a.pseudonym) == patient_key(MOD11_OK, a.pseudonym)
    assert patient_key(MOD11_OK, a.pseudonym) != patient_key(MOD11_OK, b.pseudonym)
    assert MOD11_OK not in patient_key(MOD11_OK, a.pseudonym)


def test_vault_round_trips_and_binds_the_ciphertext_to_its_patient() -> None:
    ring = KeyRing.generate()
    pkey = patient_key(MOD11_OK, ring.pseudonym)
    sealed = seal_identity(Identity(MOD11_OK, {"family": "Syntesen"}), pkey, ring)
    assert MOD11_OK.encode() not in sealed.ciphertext
    assert sealed.kid == ring.vault.kid
    assert open_identity(sealed, pkey, ring) == Identity(MOD11_OK, {"family": "Syntesen"})
    other = patient_key(MOD11_FAILS, ring.pseudonym)
    with pytest.raises(InvalidTag):
        open_identity(sealed, other, ring)


def test_key_file_is_private_and_never_overwritten(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    ring = KeyRing.generate()
    write_key_file(path, ring)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_keys(Settings(key_file=path, _env_file=None)) == ring  # type: ignore[call-arg]
    with pytest.raises(KeyError_, match="exists"):
        write_key_file(path, KeyRing.generate())
    os.chmod(path, 0o644)
    with pytest.raises(KeyError_, match="readable by others"):
        load_keys(Settings(key_file=path, _env_file=None))  # type: ignore[call-arg]


def test_missing_key_file_says_how_to_make_one(tmp_path: Path) -> None:
    with pytest.raises(KeyError_, match="homediag keys init"):
        load_keys(Settings(key_file=tmp_path / "absent.json", _env_file=None))  # type: ignore[call-arg]


def test_keys_from_the_environment() -> None:
    ring = KeyRing.generate()
    assert load_keys(Settings(keys_json=ring.to_json(), _env_file=None)) == ring  # type: ignore[call-arg]
    with pytest.raises(KeyError_, match="HOMEDIAG_KEYS_JSON"):
        load_keys(Settings(keys_json='{"pseudonym": {}}', _env_file=None))  # type: ignore[call-arg]
