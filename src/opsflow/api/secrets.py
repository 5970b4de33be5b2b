"""Secrets: admins set, replace and delete them; nobody reads a value back.

Every route needs ``secrets:manage``. Responses carry `SecretOut`, built from `SecretMeta`,
which has no value field: the value goes in through ``PUT`` and only comes out inside a job,
masked in everything that job prints.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response
from pydantic import BaseModel, Field

from opsflow.api.problems import error_responses
from opsflow.api.security import require
from opsflow.api.services import services_of
from opsflow.auth.credentials import Principal
from opsflow.auth.masking import MIN_LENGTH
from opsflow.auth.permissions import Permission
from opsflow.auth.secrets import SecretVault, check_secret_name
from opsflow.store import secrets as store
from opsflow.store.secrets import SecretMeta

router = APIRouter(tags=["secrets"])

Manager = Annotated[Principal, Depends(require(Permission.SECRETS_MANAGE))]
VAULT_KEY = "secrets"  # services.extra[VAULT_KEY] is the server's SecretVault


class SecretOut(BaseModel):
    """A secret as the API shows it: never its value."""

    name: str
    description: str
    version: int = Field(description="1 when created, +1 each time the value is replaced.")
    reference: str = Field(description="How a workflow uses it, e.g. in a step's env.")
    created_at: datetime
    updated_at: datetime
    created_by: str
    updated_by: str

    @classmethod
    def of(cls, meta: SecretMeta) -> SecretOut:
        return cls(
            name=meta.name,
            description=meta.description,
            version=meta.version,
            reference=f"{{{{ secrets.{meta.name} }}}}",
            created_at=meta.created_at,
            updated_at=meta.updated_at,
            created_by=meta.created_by,
            updated_by=meta.updated_by,
        )


class SecretSet(SecretOut):
    """The answer to ``PUT``: the metadata, whether it was created, and any warning."""

    created: bool
    warnings: list[str]


class SecretPut(BaseModel):
    value: str = Field(description="The value; write-only: no response ever includes it.")
    description: str | None = Field(
        None, max_length=1000, description="Leave out to keep the current description."
    )


def _vault(request: Request) -> SecretVault:
    vault: SecretVault = services_of(request).extra[VAULT_KEY]
    return vault


@router.get("/secrets", response_model=list[SecretOut], responses=error_responses(401, 403))
def list_secrets(request: Request, _principal: Manager) -> list[SecretOut]:
    """Every secret's name and metadata, by name."""
    with services_of(request).session() as session:
        return [SecretOut.of(meta) for meta in store.list_secrets(session)]


@router.get(
    "/secrets/{name}", response_model=SecretOut, responses=error_responses(401, 403, 404, 422)
)
def get_secret(request: Request, name: str, _principal: Manager) -> SecretOut:
    """One secret's metadata (never its value)."""
    check_secret_name(name)
    with services_of(request).session() as session:
        return SecretOut.of(store.get_secret_meta(session, name))


@router.put(
    "/secrets/{name}",
    response_model=SecretSet,
    responses={201: {"model": SecretSet}, **error_responses(401, 403, 409, 422)},
)
def put_secret(
    request: Request, response: Response, name: str, body: SecretPut, principal: Manager
) -> SecretSet:
    """Create the secret (201) or replace its value (200). The value is never returned."""
    meta = _vault(request).set(name, body.value, principal.name, body.description)
    warnings = []
    if len(body.value) < MIN_LENGTH:
        warnings.append(
            f"the value is shorter than {MIN_LENGTH} characters: logs mask it only where it is "
            "a whole line, not inside longer text"
        )
    response.status_code = 201 if meta.created else 200
    return SecretSet(**SecretOut.of(meta).model_dump(), created=meta.created, warnings=warnings)


@router.delete(
    "/secrets/{name}", response_model=SecretOut, responses=error_responses(401, 403, 404, 422)
)
def delete_secret(request: Request, name: str, principal: Manager) -> SecretOut:
    """Delete the secret; workflows that use it fail to render from now on."""
    check_secret_name(name)
    return SecretOut.of(_vault(request).delete(name, principal.name))
