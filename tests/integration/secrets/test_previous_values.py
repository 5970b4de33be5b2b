"""A secret's previous values are kept for masking only: the last few, never handed to a job,
gone with the secret."""

from __future__ import annotations

from opsflow.auth.secrets import SecretBox, SecretVault
from opsflow.store.db import Database
from opsflow.store.secrets import PREVIOUS_VALUES_KEPT


def test_masking_covers_current_and_kept_previous_values_only(database: Database) -> None:
    learned: list[str] = []
    vault = SecretVault(database, SecretBox(b"k" * 32), learn=learned.extend)
    values = [f"door-value-{n:02d}" for n in range(PREVIOUS_VALUES_KEPT + 3)]
    for value in values:
        vault.set("DOOR", value, actor="admin")
    vault.set("OTHER", "other-value", actor="admin")
    with database.session() as session:
        assert vault.reveal(session, ["DOOR"]) == {"DOOR": values[-1]}  # jobs get the current
        masked = vault.masking_values(session, ["DOOR"])
    # The current value and the last PREVIOUS_VALUES_KEPT before it; older ones are dropped.
    assert masked == set(values[-1 - PREVIOUS_VALUES_KEPT :])
    assert "other-value" not in masked
    assert set(values) | {"other-value"} <= set(learned)  # the log filter heard every one

    vault.delete("DOOR", actor="admin")
    vault.set("DOOR", "a-fresh-start", actor="admin")
    with database.session() as session:
        assert vault.masking_values(session, ["DOOR"]) == {"a-fresh-start"}
