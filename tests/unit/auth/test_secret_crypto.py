"""Secret values at rest: AES-256-GCM per value, bound to the secret's name and to the key."""

from __future__ import annotations

import base64

import pytest

from opsflow.auth.secrets import (
    SecretBox,
    SecretKeyInvalid,
    SecretUndecryptable,
    check_secret_name,
    check_secret_value,
    key_id,
)
from opsflow.errors import InvalidInput

KEY = bytes(range(32))
OTHER_KEY = bytes(range(1, 33))
VALUE = "correct horse battery staple ✓"


def test_a_value_round_trips_and_is_not_readable_in_its_stored_form() -> None:
    box = SecretBox(KEY)
    blob = box.encrypt("DB_PASSWORD", VALUE)

    assert box.decrypt("DB_PASSWORD", blob) == VALUE
    assert VALUE.encode() not in blob
    assert base64.b64encode(VALUE.encode()) not in blob
    assert blob[0] == 1 and blob[1:5].hex() == box.key_id == key_id(KEY)


def test_each_encryption_uses_a_fresh_nonce() -> None:
    box = SecretBox(KEY)
    first, second = box.encrypt("A", VALUE), box.encrypt("A", VALUE)
    assert first != second
    assert first[5:17] != second[5:17]


def test_a_blob_moved_to_another_name_does_not_decrypt() -> None:
    box = SecretBox(KEY)
    blob = box.encrypt("STAGING_TOKEN", VALUE)
    with pytest.raises(SecretUndecryptable) as caught:
        box.decrypt("PRODUCTION_TOKEN", blob)
    assert caught.value.message == (
        "secret 'PRODUCTION_TOKEN' failed its integrity check: the stored value was altered or "
        "copied from another secret; set it again"
    )


def test_a_tampered_blob_does_not_decrypt() -> None:
    box = SecretBox(KEY)
    blob = bytearray(box.encrypt("A", VALUE))
    blob[-1] ^= 1
    with pytest.raises(SecretUndecryptable, match="integrity check"):
        box.decrypt("A", bytes(blob))


def test_the_wrong_key_is_named_instead_of_a_bare_decryption_failure() -> None:
    blob = SecretBox(KEY).encrypt("A", VALUE)
    with pytest.raises(SecretUndecryptable) as caught:
        SecretBox(OTHER_KEY).decrypt("A", blob)
    assert caught.value.message == (
        f"secret 'A' was encrypted under key {key_id(KEY)}, but this server's key is "
        f"{key_id(OTHER_KEY)}: start the server with the OPSFLOW_SECRET_KEY (or the data dir's "
        "secret-key file) it had when the secret was set, or set the secret again"
    )
    assert caught.value.status_code == 500


def test_a_rotated_box_reads_old_values_and_writes_under_the_new_key() -> None:
    old_blob = SecretBox(KEY).encrypt("A", VALUE)
    rotated = SecretBox(OTHER_KEY, previous=[KEY])
    assert rotated.decrypt("A", old_blob) == VALUE
    assert rotated.encrypt("A", VALUE)[1:5].hex() == key_id(OTHER_KEY)


def test_unknown_formats_and_short_blobs_are_refused_clearly() -> None:
    box = SecretBox(KEY)
    for blob in (b"", b"\x01abc", b"\x02" + box.encrypt("A", VALUE)[1:]):
        with pytest.raises(SecretUndecryptable, match="not in a format this opsflow version"):
            box.decrypt("A", blob)


def test_a_key_must_be_32_bytes() -> None:
    with pytest.raises(SecretKeyInvalid, match="must be 32 bytes"):
        SecretBox(b"short")


@pytest.mark.parametrize("name", ["DB_PASSWORD", "_x", "a1", "A" * 128])
def test_identifier_names_are_accepted(name: str) -> None:
    check_secret_name(name)


@pytest.mark.parametrize("name", ["", "1ABC", "db-password", "a.b", "ü", "A" * 129, "A B"])
def test_other_names_are_refused_at_name(name: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        check_secret_name(name)
    assert [p.loc for p in caught.value.problems] == ["name"]
    assert caught.value.message.startswith(f"invalid secret name {name!r}: use letters, digits")


def test_empty_huge_and_broken_values_are_refused_without_quoting_them() -> None:
    for value, words in (
        ("", "empty"),
        ("x" * (64 * 1024 + 1), "larger than 65536 bytes"),
        ("bad \ud800 text", "lone surrogate"),
    ):
        with pytest.raises(InvalidInput) as caught:
            check_secret_value(value)
        assert words in caught.value.message
        assert [p.loc for p in caught.value.problems] == ["value"]
        if value:
            assert value not in caught.value.message
