"""Which `HookSource` reads each trigger type's deliveries on ``POST /hooks/{key}``.

One line per type: a type with a hook URL adds its module's source here, and the server's
composition root hands this table to the ingress route.
"""

from __future__ import annotations

from opsflow.spec.triggers import TriggerType
from opsflow.triggers import git, incident, webhook
from opsflow.triggers.ingress import HookSource


def hook_sources() -> dict[TriggerType, HookSource]:
    """Every trigger type that has a hook URL, and the source that reads its deliveries."""
    return {
        TriggerType.WEBHOOK: webhook.WebhookSource(),
        TriggerType.GIT: git.GitSource(),
        TriggerType.INCIDENT: incident.AlertmanagerSource(),
    }
