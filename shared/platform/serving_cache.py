"""Which versions serve, and their loaded models, cached in the process.

Loaded models are kept by version id (a version's bytes never change). Which versions serve a
(kind, tenant) is re-read at most every `refresh_seconds`, so an activation reaches warm functions
within that time without a redeploy.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from shared.errors import ArtifactRejected, MlstackError
from shared.platform.registry import ModelVersion, Registry

Built = TypeVar("Built")


@dataclass(frozen=True)
class ServingChoice:
    """The fallback chain of a (kind, tenant): the tenant's own active version, then the global
    one; and the challenger and shadow candidates of the tenant's scope (else the global scope)."""

    champions: tuple[ModelVersion, ...]
    challenger: ModelVersion | None
    shadow: ModelVersion | None = None

    @property
    def champion(self) -> ModelVersion | None:
        return self.champions[0] if self.champions else None


class ServingModels:
    def __init__(
        self,
        registry: Registry,
        *,
        refresh_seconds: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
        max_loaded: int = 32,
    ) -> None:
        self._registry = registry
        self._refresh_seconds = refresh_seconds
        self._clock = clock
        self._max_loaded = max_loaded
        self._choices: dict[tuple[str, str | None], tuple[float, ServingChoice]] = {}
        self._loaded: OrderedDict[str, Any] = OrderedDict()
        self._failures: dict[str, tuple[float, MlstackError]] = {}
        self._lock = threading.Lock()

    def choice(self, kind: str, tenant_id: str | None) -> ServingChoice:
        key = (kind, tenant_id)
        now = self._clock()
        cached = self._choices.get(key)
        if cached is not None and now - cached[0] < self._refresh_seconds:
            return cached[1]
        scopes = [self._registry.in_scope(kind, tenant_id)] if tenant_id is not None else []
        scopes.append(self._registry.in_scope(kind, None))
        choice = ServingChoice(
            champions=tuple(s.active for s in scopes if s.active is not None),
            challenger=next((s.challenger for s in scopes if s.challenger is not None), None),
            shadow=next((s.shadow for s in scopes if s.shadow is not None), None),
        )
        self._choices[key] = (now, choice)
        return choice

    def load(self, version: ModelVersion, build: Callable[[bytes], Built], *, artifact_format: str = "json") -> Built:
        """The serving object of a version: fetched, verified, built once.

        A failure is remembered for refresh_seconds too: a tampered artifact is refused (and
        audited) once per interval, not once per request.
        """
        key = version.version_id
        now = self._clock()
        with self._lock:
            failed = self._failures.get(key)
            if failed is not None and now - failed[0] < self._refresh_seconds:
                raise failed[1]
            if key in self._loaded:
                self._loaded.move_to_end(key)
                return self._loaded[key]  # type: ignore[no-any-return]
        try:
            if version.artifact_format != artifact_format:
                raise ArtifactRejected(f"{version.label} is {version.artifact_format}, not a serving format")
            model = build(self._registry.load_verified_bytes(version))
        except Exception as exc:
            if isinstance(exc, MlstackError):
                with self._lock:
                    self._failures[key] = (now, exc)
                raise
            refused = ArtifactRejected(f"{version.label}: {exc}")
            with self._lock:
                self._failures[key] = (now, refused)
            raise refused from exc
        with self._lock:
            self._failures.pop(key, None)
            self._loaded[key] = model
            while len(self._loaded) > self._max_loaded:
                self._loaded.popitem(last=False)
        return model
