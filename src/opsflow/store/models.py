"""The whole schema's ``MetaData``: importing this module registers every table.

Alembic's environment and the "migrations equal models" test read `metadata` from here, so
every module that defines tables is imported below (the runtime adds its own line).
"""

from __future__ import annotations

import opsflow.store.agent_tokens
import opsflow.store.agents
import opsflow.store.analytics
import opsflow.store.approvals
import opsflow.store.chains
import opsflow.store.connections
import opsflow.store.deliveries
import opsflow.store.incidents
import opsflow.store.jobs
import opsflow.store.logs
import opsflow.store.metrics
import opsflow.store.runs
import opsflow.store.secrets
import opsflow.store.tables
import opsflow.store.tfstate
import opsflow.store.triggers  # noqa: F401  (each import registers its module's tables)
from opsflow.store.base import Base

metadata = Base.metadata
