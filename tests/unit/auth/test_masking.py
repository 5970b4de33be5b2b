"""The masker hides a secret and the ways scripts re-print it, fast enough for whole logs."""

from __future__ import annotations

import base64
import json
import random
import re
import string
import time
from collections.abc import Callable
from urllib.parse import quote, quote_plus

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from opsflow.auth.masking import MASK, Masker, literal_variants
from tests.timing import collector_held

SECRET = "s3cr3t/Pa$$w0rd+ü"
PEM = (
    "-----BEGIN OPENSSH PRIVATE KEY-----\n"
    "b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW\n"
    "QyNTUxOQAAACBx5t7c0rN9yZ3k0e8Yl1q0Wm2bQm7mTn2i9l5o4S1x8AAAAJgm8Fj+JvBY\n"
    "-----END OPENSSH PRIVATE KEY-----\n"
)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode()


# Each way a script may print a value, as (name, function of the value).
ENCODINGS: list[tuple[str, Callable[[str], str]]] = [
    ("plain", lambda v: v),
    ("base64", lambda v: _b64(v.encode())),
    ("base64 unpadded", lambda v: _b64(v.encode()).rstrip("=")),
    ("base64url", lambda v: _b64url(v.encode())),
    ("base64url unpadded", lambda v: _b64url(v.encode()).rstrip("=")),
    ("hex", lambda v: v.encode().hex()),
    ("HEX", lambda v: v.encode().hex().upper()),
    ("quote", lambda v: quote(v, safe="")),
    ("quote keeping /", lambda v: quote(v)),
    ("quote_plus", lambda v: quote_plus(v)),
    ("json", lambda v: json.dumps(v)[1:-1]),
    ("json utf-8", lambda v: json.dumps(v, ensure_ascii=False)[1:-1]),
    ("literal \\n", lambda v: v.replace("\n", "\\n")),
]


def _recoverable_from_base64(text: str, secret: str) -> bool:
    """Whether decoding any base64 run in ``text``, at any alignment, yields the secret."""
    wanted = secret.encode()
    for alphabet, decode in (
        (r"[A-Za-z0-9+/]+", base64.b64decode),
        (r"[A-Za-z0-9_-]+", base64.urlsafe_b64decode),
    ):
        for run in re.findall(alphabet, text):
            for shift in range(4):
                chunk = run[shift:]
                chunk = chunk[: len(chunk) // 4 * 4]
                if chunk and wanted in decode(chunk):
                    return True
    return False


def test_every_listed_encoding_of_a_secret_is_masked_inside_a_line() -> None:
    masker = Masker([SECRET])
    for name, encode in ENCODINGS:
        line = f"step says: [{encode(SECRET)}] done"
        assert masker.mask(line) == f"step says: [{MASK}] done", name


def test_base64_of_a_longer_text_holding_the_secret_is_masked_at_every_alignment() -> None:
    masker = Masker([SECRET])
    for prefix in ("", "u", "us", "user:", "admin:"):
        for encode in (_b64, _b64url):
            encoded = encode(f"{prefix}{SECRET}@db.internal".encode())
            masked = masker.mask(f"Authorization: Basic {encoded}")
            assert MASK in masked, (prefix, encoded)
            assert not _recoverable_from_base64(masked, SECRET), (prefix, masked)


def test_base64_padding_is_masked_with_the_value() -> None:
    # lengths 8 and 10 bytes end in one and two ``=`` of padding; the padding would tell the
    # value's length modulo 3
    padded = 0
    for value in ("hunter22", "abcdefghij"):
        masker = Masker([value])
        for encode in (_b64, _b64url):
            for prefix in ("", "u", "us", "user:"):
                encoded = encode(f"{prefix}{value}".encode())
                if not encoded.endswith("="):
                    continue
                padded += 1
                masked = masker.mask(f"b64 {encoded} done")
                assert masked.endswith(f"{MASK} done"), (prefix, masked)
    assert padded >= 8
    # padding is masked only where it follows a masked base64 text
    masker = Masker(["hunter22"])
    assert masker.mask("key==value ==") == "key==value =="


def test_a_pem_key_printed_line_by_line_shows_none_of_its_lines() -> None:
    masker = Masker([PEM])
    for line in PEM.splitlines():
        assert masker.mask(line) == MASK
        assert masker.mask(f"  {line}  ") == f"  {MASK}  "
    assert masker.mask(json.dumps({"key": PEM})) == '{"key": "***"}'


def test_echo_piped_to_base64_and_wrapped_shows_no_line_of_it() -> None:
    value = "x" * 40 + "-very-long-secret-value-" + "y" * 40
    masker = Masker([value])
    for columns in (76, 64):
        # `echo "$SECRET" | base64` adds a newline and wraps; PEM wraps at 64
        wrapped = _b64(f"{value}\n".encode())
        lines = [wrapped[i : i + columns] for i in range(0, len(wrapped), columns)]
        masked = [masker.mask(line) for line in lines]
        assert len(lines) >= 2
        assert masked[:-1] == [MASK] * (len(lines) - 1)
        # what is left of the last line encodes the newline, not the value
        assert masked[-1] == f"{MASK}K"
        assert not _recoverable_from_base64("".join(masked), value[-8:])


def test_short_values_are_masked_only_as_a_whole_line() -> None:
    masker = Masker(["abc", "x"])
    assert masker.mask("abc") == MASK
    assert masker.mask("x") == MASK
    assert masker.mask("abcdef and x") == "abcdef and x"
    assert literal_variants("abc") == set()


def test_blank_lines_of_a_multi_line_secret_do_not_mask_indentation() -> None:
    masker = Masker(["first-line\n        \nsecond-line"])
    assert masker.mask("        indented code") == "        indented code"
    assert masker.mask("  first-line") == f"  {MASK}"


def test_text_without_secrets_is_returned_unchanged() -> None:
    masker = Masker([SECRET, PEM])
    line = "2026-11-25 INFO applied 3 resources; token=<redacted>; base64: aGVsbG8gd29ybGQ="
    assert masker.mask(line) is line
    assert Masker([]).mask(line) is line
    assert not Masker([])
    assert Masker([SECRET])


def test_overlapping_secrets_are_both_covered() -> None:
    masker = Masker(["abcdefgh", "efghijklmnop"])
    assert masker.mask("<abcdefghijklmnop>") == f"<{MASK}>"
    assert masker.mask("<abcdefgh|efghijklmnop>") == f"<{MASK}|{MASK}>"


def test_the_longest_match_wins_so_no_tail_is_left_visible() -> None:
    masker = Masker(["password", "password-with-suffix"])
    assert masker.mask("a password-with-suffix b") == f"a {MASK} b"


def test_mask_value_masks_nested_outputs() -> None:
    masker = Masker([SECRET, "123456789"])
    outputs = {
        "body": {"token": SECRET, "list": [f"x{SECRET}y", 3, None, True]},
        SECRET: ("a", SECRET),
        "number": 123456789,
        "other": 42,
    }
    assert masker.mask_value(outputs) == {
        "body": {"token": MASK, "list": [f"x{MASK}y", 3, None, True]},
        MASK: ("a", MASK),
        "number": MASK,
        "other": 42,
    }


def test_masking_ten_thousand_lines_with_twenty_secrets_is_fast() -> None:
    rng = random.Random(5)
    alphabet = string.ascii_letters + string.digits + "!$%&/+="
    secrets = ["".join(rng.choices(alphabet, k=rng.randint(8, 40))) for _ in range(20)]
    secrets.append(PEM)
    lines = [
        f"2026-11-25T10:{i % 60:02d}:00Z INFO task {i} ok changed=1 value={rng.random():.6f} "
        "host=web-01.example.internal elapsed=0.25s"
        for i in range(10_000)
    ]
    for i in range(0, len(lines), 50):
        lines[i] += f" secret={secrets[i % 20]} b64={_b64(secrets[(i + 1) % 20].encode())}"

    # CPU time of this process, so that other work on a shared machine does not fail the test;
    # the collector is held off so that a collection of the whole session's heap is not counted.
    with collector_held():
        started, wall = time.process_time(), time.perf_counter()
        masker = Masker(secrets)
        built, built_wall = time.process_time() - started, time.perf_counter() - wall
        started, wall = time.process_time(), time.perf_counter()
        masked = [masker.mask(line) for line in lines]
        elapsed, elapsed_wall = time.process_time() - started, time.perf_counter() - wall
    size = sum(len(line) + 1 for line in lines)

    print(
        f"\nmasker built in {built * 1000:.1f} ms CPU ({built_wall * 1000:.1f} ms wall); "
        f"masked {len(lines)} lines ({size} bytes) with {len(secrets)} secrets in "
        f"{elapsed * 1000:.1f} ms CPU ({elapsed_wall * 1000:.1f} ms wall)"
    )
    assert elapsed < 0.5
    assert built < 0.5
    assert sum(line.count(MASK) for line in masked) == 2 * len(lines) // 50
    assert not any(s in line for s in secrets[:20] for line in masked)


printable = st.text(
    st.characters(categories=("L", "N", "P", "S"), exclude_characters="*"),
    min_size=4,
    max_size=40,
)
surrounding = st.text(st.characters(categories=("L", "N", "P", "S", "Zs")), max_size=30)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    secret=printable,
    before=surrounding,
    after=surrounding,
    encoding=st.sampled_from(ENCODINGS),
)
def test_no_listed_encoding_survives_masking(
    secret: str, before: str, after: str, encoding: tuple[str, Callable[[str], str]]
) -> None:
    # A secret containing "*" could be re-formed by "***" and its neighbours; none is excluded
    # otherwise.
    masker = Masker([secret])
    masked = masker.mask(before + encoding[1](secret) + after)
    for name, encode in ENCODINGS:
        assert encode(secret) not in masked, (encoding[0], name, masked)


@settings(max_examples=300, deadline=None)
@given(
    secret=printable,
    prefix=st.binary(max_size=7),
    suffix=st.binary(max_size=7),
    url_safe=st.booleans(),
    before=surrounding,
    after=surrounding,
)
def test_a_secret_inside_longer_base64_cannot_be_decoded_back(
    secret: str, prefix: bytes, suffix: bytes, url_safe: bool, before: str, after: str
) -> None:
    encode = _b64url if url_safe else _b64
    text = before + encode(prefix + secret.encode() + suffix) + after
    masked = Masker([secret]).mask(text)
    assert not _recoverable_from_base64(masked, secret), masked


@settings(max_examples=300, deadline=None)
@given(
    secrets=st.lists(printable, min_size=1, max_size=3),
    lines=st.lists(st.text(max_size=30), max_size=12),
    planted=st.lists(
        st.tuples(st.integers(0, 11), st.integers(0, 2), st.sampled_from(ENCODINGS)), max_size=3
    ),
    whole=st.booleans(),
)
def test_masking_a_batch_masks_each_line_as_masking_it_alone(
    secrets: list[str],
    lines: list[str],
    planted: list[tuple[int, int, tuple[str, Callable[[str], str]]]],
    whole: bool,
) -> None:
    """`mask_all` (one scan over a batch first) gives exactly `mask` of each line: with secrets
    planted in some lines in any listed encoding, as a whole line, or not at all; and hands
    back the very list when nothing was masked."""
    batch = list(lines)
    for index, which, (_, encode) in planted:
        if batch:
            secret = secrets[which % len(secrets)]
            at = index % len(batch)
            batch[at] = secret if whole else batch[at] + encode(secret)
    masker = Masker(secrets)
    expected = [masker.mask(line) for line in batch]
    got = masker.mask_all(batch)
    assert got == expected
    if expected == batch:
        assert got is batch


def test_a_batch_of_clean_lines_is_one_scan_and_a_short_secret_still_masks_its_line() -> None:
    masker = Masker(["s3cr3t-token-value", "abc"])  # "abc": shorter than MIN_LENGTH
    clean = [str(n) for n in range(5000)]
    assert masker.mask_all(clean) is clean
    assert masker.mask_all(["x", "abc", "y s3cr3t-token-value"]) == ["x", MASK, f"y {MASK}"]
