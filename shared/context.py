"""The process-wide objects a use case needs, created lazily on first use.

Handlers get them through `get_context()`; tests build their own `AppContext` from settings.
Nothing connects at import time, and a warm Lambda reuses the same connection and caches.
"""

from __future__ import annotations

from functools import cached_property, lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import quote

from shared.adapters.aws import aws_client, read_secret_json, read_secret_string
from shared.adapters.db import Database
from shared.adapters.objectstore import ObjectStore, open_object_store
from shared.adapters.signing import ArtifactSigner, signing_key_from_secret
from shared.platform.registry import Registry
from shared.platform.registry_repository import PostgresRegistryRepository
from shared.platform.serving_cache import ServingModels
from shared.platform.tenants_repository import TenantDirectory
from shared.settings import Settings, get_settings

# How long past statement_timeout a socket read waits before the server counts as unreachable.
SOCKET_GRACE_SECONDS = 5.0


class AppContext:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def aws(self, service: str) -> Any:
        return aws_client(
            service, endpoint_url=self.settings.aws_endpoint_url, region=self.settings.aws_region
        )

    @cached_property
    def database_url(self) -> str:
        if self.settings.database_url:
            return self.settings.database_url
        secret = read_secret_json(self.aws("secretsmanager"), self.settings.database_secret_id)
        # Quoted: a generated password may hold '@', ':' or '/'.
        return (
            f"postgresql://{quote(str(secret['username']), safe='')}:{quote(str(secret['password']), safe='')}"
            f"@{secret['host']}:{secret.get('port', 5432)}/{secret.get('dbname', 'mlstack')}"
            f"?sslmode={secret.get('sslmode', 'require')}"
        )

    @cached_property
    def database(self) -> Database:
        limit = self.settings.statement_timeout_seconds
        if limit > 0:
            # A server that has not answered a few seconds past its own statement limit is frozen
            # or gone (a stopped VM, a dropped route): a 503 then, not a wait for the 300 s that
            # jobs' long reads need.
            return Database(self.database_url, statement_timeout=limit, socket_timeout=limit + SOCKET_GRACE_SECONDS)
        return Database(self.database_url)

    def close_thread_connection(self) -> None:
        """End this thread's database session, if it opened one (a server thread about to end)."""
        built = self.__dict__.get("database")
        if isinstance(built, Database):
            built.close()

    @cached_property
    def object_store(self) -> ObjectStore:
        url = self.settings.object_store_url
        if url.startswith("s3://"):
            return open_object_store(url, self.aws("s3"))
        Path(url.removeprefix("file://")).mkdir(parents=True, exist_ok=True)
        return open_object_store(url)

    @cached_property
    def signer(self) -> ArtifactSigner:
        if self.settings.signing_key:
            return ArtifactSigner(bytes.fromhex(self.settings.signing_key))
        secret = read_secret_string(self.aws("secretsmanager"), self.settings.signing_key_secret_id)
        return ArtifactSigner(signing_key_from_secret(secret))

    @cached_property
    def registry(self) -> Registry:
        return Registry(PostgresRegistryRepository(self.database), self.object_store, self.signer)

    @cached_property
    def serving_models(self) -> ServingModels:
        return ServingModels(self.registry, refresh_seconds=self.settings.model_refresh_seconds)

    def loaded_serving_models(self) -> ServingModels | None:
        """The serving cache if this process built one (health must not build it: that may fetch
        the signing key from Secrets Manager)."""
        built = self.__dict__.get("serving_models")
        return built if isinstance(built, ServingModels) else None

    @cached_property
    def tenants(self) -> TenantDirectory:
        return TenantDirectory(self.database)


@lru_cache(maxsize=1)
def get_context() -> AppContext:
    return AppContext(get_settings())


def reset_context() -> None:
    """Forget the process-wide context (tests, or after settings change)."""
    get_settings.cache_clear()
    get_context.cache_clear()
