"""Which versions serve, and their loaded models, cached in the process.

Loaded models are kept by version id. Which versions serve a (kind, tenant) is re-read at most
every `refresh_seconds`, so an activation reaches warm functions within that time without a
redeploy. A version's bytes should never change, but the object store is outside the registry's
control: on the same refresh, the stored object of every loaded version in use is fetched and
verified again (one GET, SHA-256 and HMAC per version and interval), so a tampered artifact stops
serving within the interval, not at the next cold start.
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
_MISSING = object()


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
        self._rejected: dict[str, ModelVersion] = {}
        self._lock = threading.Lock()
        self._building: dict[str, threading.Lock] = {}

    def choice(self, kind: str, tenant_id: str | None) -> ServingChoice:
        key = (kind, tenant_id)
        now = self._clock()
        cached = self._choices.get(key)
        if cached is not None and now - cached[0] < self._refresh_seconds:
            return cached[1]
        scopes = [self._registry.in_scope(kind, tenant_id)] if tenant_id is not None else []
        scopes.append(self._registry.in_scope(kind, None))
        # A challenger or shadow competes with the champion of its own scope: a tenant served by its
        # own version never gets the global scope's (with no champion anywhere, any scope's).
        answering = next((s for s in scopes if s.active is not None), None)
        candidates = [answering] if answering is not None else scopes
        choice = ServingChoice(
            champions=tuple(s.active for s in scopes if s.active is not None),
            challenger=next((s.challenger for s in candidates if s.challenger is not None), None),
            shadow=next((s.shadow for s in candidates if s.shadow is not None), None),
        )
        self._recheck_loaded(choice, now)
        self._choices[key] = (now, choice)
        return choice

    def _recheck_loaded(self, choice: ServingChoice, now: float) -> None:
        for version in (*choice.champions, choice.challenger, choice.shadow):
            if version is None or version.version_id not in self._loaded:
                continue
            try:
                # Logs security.artifact_rejected and audits it when the bytes no longer verify.
                self._registry.load_verified_bytes(version)
            except ArtifactRejected as exc:
                with self._lock:
                    self._loaded.pop(version.version_id, None)
                    self._failures[version.version_id] = (now, exc)
                    self._rejected[version.version_id] = version
            except MlstackError:
                pass  # the store is unreachable: the copy verified at load keeps serving

    def rejected(self) -> list[ModelVersion]:
        """Versions in use (chosen to serve) whose artifact was refused, for /health."""
        in_use = {
            version.version_id
            for _, choice in list(self._choices.values())
            for version in (*choice.champions, choice.challenger, choice.shadow)
            if version is not None
        }
        return [version for version_id, version in list(self._rejected.items()) if version_id in in_use]

    def load(self, version: ModelVersion, build: Callable[[bytes], Built], *, artifact_format: str = "json") -> Built:
        """The serving object of a version: fetched, verified, built once.

        A failure is remembered for refresh_seconds too: a tampered artifact is refused (and
        audited) once per interval, not once per request.
        """
        key = version.version_id
        found = self._cached(key)
        if found is not _MISSING:
            return found  # type: ignore[no-any-return]
        # One build per version: concurrent first requests wait for it rather than each fetching,
        # verifying and building the same artifact.
        with self._lock:
            building = self._building.setdefault(key, threading.Lock())
        with building:
            found = self._cached(key)  # built (or refused) while this thread waited
            if found is not _MISSING:
                return found  # type: ignore[no-any-return]
            return self._build(version, build, artifact_format)

    def _cached(self, key: str) -> Any:
        """The loaded model, or raises the failure remembered within refresh_seconds, or _MISSING."""
        with self._lock:
            failed = self._failures.get(key)
            if failed is not None and self._clock() - failed[0] < self._refresh_seconds:
                raise failed[1]
            if key in self._loaded:
                self._loaded.move_to_end(key)
                return self._loaded[key]
        return _MISSING

    def _build(self, version: ModelVersion, build: Callable[[bytes], Built], artifact_format: str) -> Built:
        key, now = version.version_id, self._clock()
        try:
            if version.artifact_format != artifact_format:
                raise ArtifactRejected(f"{version.label} is {version.artifact_format}, not a serving format")
            model = build(self._registry.load_verified_bytes(version))
        except Exception as exc:
            if isinstance(exc, MlstackError):
                with self._lock:
                    self._failures[key] = (now, exc)
                    if isinstance(exc, ArtifactRejected):
                        self._rejected[key] = version
                raise
            refused = ArtifactRejected(f"{version.label}: {exc}")
            with self._lock:
                self._failures[key] = (now, refused)
                self._rejected[key] = version
            raise refused from exc
        with self._lock:
            self._failures.pop(key, None)
            self._rejected.pop(key, None)
            self._loaded[key] = model
            while len(self._loaded) > self._max_loaded:
                self._loaded.popitem(last=False)
        return model
