"""PostgreSQL adapter on pg8000 (pure Python: nothing to compile for Lambda).

One connection per thread, reused across warm invocations and re-opened after a failure; one
transaction per use case through `Database.transaction()`.
"""

from __future__ import annotations

import io
import os
import re
import ssl
import threading
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, TypeVar
from urllib.parse import parse_qs, unquote, urlparse

import pg8000.native
from pg8000.exceptions import DatabaseError, InterfaceError

from shared.errors import Conflict, DependencyUnavailable, InvalidInput, SchemaMissing, TransientConflict

T = TypeVar("T")

UNIQUE_VIOLATION = "23505"
DATA_EXCEPTION_CLASS = "22"
UNDEFINED_TABLE = "42P01"
QUERY_CANCELED = "57014"  # statement_timeout, or a cancel from outside
# A transaction PostgreSQL rolled back for colliding with a concurrent one: run again, it succeeds.
DEADLOCK_DETECTED, SERIALIZATION_FAILURE = "40P01", "40001"
# The server cannot serve now, through no fault of the request: connection exceptions (08),
# insufficient resources (53, e.g. too many connections), operator intervention (57P, e.g. a
# shutdown terminating the session), and a statement cut short by statement_timeout.
UNAVAILABLE_CLASSES = ("08", "53", "57P", QUERY_CANCELED)


@dataclass(frozen=True)
class ConnectionParameters:
    host: str
    port: int
    user: str
    password: str | None
    database: str
    unix_socket: str | None = None
    # libpq's sslmode: disable (default), require (encrypted, unverified), verify-full.
    sslmode: str = "disable"

    @classmethod
    def from_url(cls, url: str) -> ConnectionParameters:
        parsed = urlparse(url)
        query = parse_qs(parsed.query)
        socket_dir = query.get("host", [None])[0]
        return cls(
            host=parsed.hostname or "127.0.0.1",
            port=parsed.port or 5432,
            user=unquote(parsed.username or "postgres"),
            password=unquote(parsed.password) if parsed.password else None,
            database=(parsed.path or "/postgres").lstrip("/") or "postgres",
            unix_socket=f"{socket_dir}/.s.PGSQL.{parsed.port or 5432}" if socket_dir else None,
            sslmode=query.get("sslmode", ["disable"])[0],
        )

    def ssl_context(self) -> ssl.SSLContext | bool | None:
        """pg8000's ssl_context: False never asks for SSL; None asks and takes plain text when the
        server has none (prefer). Asking builds a default context, which loads the system's
        certificates: about 45 ms of CPU on every connection, so `disable` must not ask."""
        if self.sslmode == "disable":
            return False
        if self.sslmode in ("allow", "prefer"):
            return None
        context = ssl.create_default_context(cafile=os.environ.get("MLSTACK_DATABASE_CA_FILE") or None)
        if self.sslmode in ("require", "verify-ca"):
            # require: encrypted but unverified, as libpq does; verify-full checks the host too.
            context.check_hostname = False
            if self.sslmode == "require":
                context.verify_mode = ssl.CERT_NONE
        return context


# What PostgreSQL's uuid input takes and Python's uuid.UUID also would: 32 hex digits, hyphenated
# in the standard places or not at all. uuid.UUID alone is wider (`urn:uuid:…`, braces, hyphens
# anywhere), and such an id reached SQL and came back as a 400 with the database's message.
_UUID_TEXT = re.compile(r"[0-9a-fA-F]{8}(-?)[0-9a-fA-F]{4}\1[0-9a-fA-F]{4}\1[0-9a-fA-F]{4}\1[0-9a-fA-F]{12}")


def is_uuid(value: str) -> bool:
    """Ids from URLs and the CLI are checked before they reach SQL: a malformed one is simply not
    found (and a uuid column compared as uuid keeps its index)."""
    return _UUID_TEXT.fullmatch(str(value)) is not None


def sql_state(exc: BaseException) -> str | None:
    """The SQLSTATE of a server error, e.g. '23505' for a unique violation."""
    if isinstance(exc, DatabaseError) and exc.args and isinstance(exc.args[0], dict):
        return exc.args[0].get("C")
    return None


def _is_unavailable(exc: BaseException) -> bool:
    state = sql_state(exc)
    return state is not None and state.startswith(UNAVAILABLE_CLASSES)


def _raise_domain_error(exc: BaseException) -> None:
    """Server errors that say something about the input or the deployment get a domain type."""
    state = sql_state(exc)
    if state is None:
        return
    detail = exc.args[0] if exc.args and isinstance(exc.args[0], dict) else {}
    if state == UNIQUE_VIOLATION:
        raise Conflict(f"already exists: {detail.get('D', '')}") from exc
    if state in (DEADLOCK_DETECTED, SERIALIZATION_FAILURE):
        raise TransientConflict(f"rolled back for a concurrent transaction ({state}): {detail.get('M', '')}") from exc
    if state.startswith(DATA_EXCEPTION_CLASS):
        # A value PostgreSQL cannot store (e.g. a NUL character in text): the request's fault.
        raise InvalidInput(f"a value was refused: {detail.get('M', '')}") from exc
    if state == UNDEFINED_TABLE:
        raise SchemaMissing("database schema missing: run `mlstack db migrate`") from exc
    if _is_unavailable(exc):
        raise DependencyUnavailable(f"database unavailable ({state}): {detail.get('M', '')}") from exc


# pg8000 turns `:name` parameters into `$n` by scanning the SQL text character by character on
# every run: for the feature query that was half of a warm prediction's time. The conversion
# depends on the text alone, so it is done once per distinct statement.
_to_statement: Callable[[str], tuple[str, Callable[[Any], tuple[Any, ...]]]] = lru_cache(maxsize=512)(
    pg8000.native.to_statement
)


class _Connection(pg8000.native.Connection):  # type: ignore[misc]
    """pg8000's native connection with the parameter conversion cached (the rest is its run())."""

    def run(self, sql: str, stream: Any = None, types: Any = None, **params: Any) -> Any:
        if not params and stream is None:
            return super().run(sql)
        statement, make_vals = _to_statement(sql)
        oids = () if types is None else make_vals(defaultdict(lambda: None, types))
        self._context = self.execute_unnamed(statement, make_vals(params), oids=oids, stream=stream)
        return self._context.rows


# Statements prepared per connection; the text of some depends on a model version, so the
# oldest are closed past this many.
PREPARED_PER_CONNECTION = 64


def _run_prepared(connection: pg8000.native.Connection, sql: str, params: dict[str, Any]) -> list[dict[str, Any]]:
    """Run `sql` through a statement prepared once per connection: a hot statement is parsed and
    planned once instead of on every run. Every parameter needs an explicit CAST in the SQL."""
    cache: dict[str, Any] = connection.__dict__.setdefault("_mlstack_prepared", {})
    statement = cache.get(sql)
    if statement is None:
        if len(cache) >= PREPARED_PER_CONNECTION:
            cache.pop(next(iter(cache))).close()
        statement = cache[sql] = pg8000.native.PreparedStatement(connection, sql)
    rows = statement.run(**params) or []
    names = [column["name"] for column in statement.columns or []]
    return [dict(zip(names, row, strict=True)) for row in rows]


class Transaction:
    """What a use case sees: run statements inside one open transaction."""

    def fetch_prepared(self, sql: str, **params: Any) -> list[dict[str, Any]]:
        """Like fetch_all, through a statement prepared once per connection (planning was most
        of a prediction's feature query). Every parameter needs an explicit CAST in the SQL."""
        return _run_prepared(self._connection, sql, params)

    def __init__(self, connection: pg8000.native.Connection) -> None:
        self._connection = connection

    def once_per_connection(self, name: str, compute: Callable[[Transaction], T]) -> T:
        """compute(self) the first time `name` is asked on this connection, then the value it gave:
        for facts about the server that do not change while connected."""
        known: dict[str, Any] = self._connection.__dict__.setdefault("_mlstack_once", {})
        if name not in known:
            known[name] = compute(self)
        return known[name]  # type: ignore[no-any-return]

    def execute(self, sql: str, **params: Any) -> int:
        self._connection.run(sql, **params)
        return self._connection.row_count

    def fetch_all(self, sql: str, **params: Any) -> list[dict[str, Any]]:
        rows = self._connection.run(sql, **params) or []
        names = [column["name"] for column in self._connection.columns or []]
        return [dict(zip(names, row, strict=True)) for row in rows]

    def fetch_one(self, sql: str, **params: Any) -> dict[str, Any] | None:
        rows = self.fetch_all(sql, **params)
        return rows[0] if rows else None

    def fetch_value(self, sql: str, **params: Any) -> Any:
        rows = self._connection.run(sql, **params) or []
        return rows[0][0] if rows else None

    def advisory_lock(self, name: str) -> None:
        """Wait for the transaction-scoped advisory lock on `name`, held until commit or rollback: a
        check and the write it allows (a count against a cap) become one step for concurrent requests."""
        self._connection.run("SELECT pg_advisory_xact_lock(hashtextextended(:name, 7340203))", name=name)

    def execute_script(self, sql: str) -> None:
        """Several statements at once (simple query protocol), for migrations."""
        self._connection.execute_simple(sql)

    def copy_in(self, sql: str, stream: Any) -> int:
        self._connection.run(sql, stream=stream)
        return self._connection.row_count

    def copy_out_row(self, query: str, **settings: str | None) -> list[bytes | None]:
        """The one row of `query` through COPY ... TO STDOUT (FORMAT binary): each value as
        PostgreSQL's binary form, with no text encoding either way (a bytea travels as itself, not
        as hex text twice its size). COPY takes no bind parameters: `settings` become
        transaction-local settings (set_config; None as '') that the query reads with
        current_setting, so no value is ever spliced into SQL text."""
        if settings:
            values = list(settings.items())
            self.fetch_value("SELECT " + ", ".join(
                f"set_config(CAST(:n{i} AS text), CAST(:v{i} AS text), true)" for i in range(len(values))),
                **{f"n{i}": name for i, (name, _) in enumerate(values)},
                **{f"v{i}": "" if value is None else value for i, (_, value) in enumerate(values)})
        sink = io.BytesIO()
        self._connection.run(f"COPY ({query}) TO STDOUT (FORMAT binary)", stream=sink)
        return _binary_copy_row(sink.getvalue())


_COPY_HEADER = b"PGCOPY\n\xff\r\n\x00"


def _binary_copy_row(data: bytes) -> list[bytes | None]:
    """The values of the first row of a binary COPY (header, then per row a field count and each
    field as a length, -1 for NULL, and its bytes)."""
    if not data.startswith(_COPY_HEADER):
        raise ValueError("not a binary COPY stream")
    at = len(_COPY_HEADER) + 4
    at += 4 + int.from_bytes(data[at:at + 4], "big")  # header extension
    fields = int.from_bytes(data[at:at + 2], "big", signed=True)
    at += 2
    values: list[bytes | None] = []
    for _ in range(max(fields, 0)):
        length = int.from_bytes(data[at:at + 4], "big", signed=True)
        at += 4
        values.append(None if length < 0 else data[at:at + length])
        at += max(length, 0)
    return values


class Database:
    """A lazily opened connection per thread. Nothing connects at import time."""

    # pg8000's timeout bounds every socket read, not only the connect: it must outlast the
    # longest query (a training extraction), while still ending a read from a dead server.
    # statement_timeout (seconds, 0: none) is set on the session at connect: a request against a
    # stalled database then fails in bounded time (a 503) instead of hanging until the socket
    # timeout.
    def __init__(
        self, url: str, *, socket_timeout: float = 300.0, application_name: str = "mlstack",
        statement_timeout: float = 0.0,
    ):
        self._parameters = ConnectionParameters.from_url(url)
        self._socket_timeout = socket_timeout
        self._application_name = application_name
        # Every session reads times in UTC: date_trunc('day', ...) of a timestamptz follows the session's
        # zone, which a server otherwise takes from its host (initdb) or a role's or database's setting.
        self._startup_params = {"TimeZone": "UTC"}
        if statement_timeout > 0:
            self._startup_params["statement_timeout"] = str(int(statement_timeout * 1000))
        self._local = threading.local()

    def _connect(self) -> pg8000.native.Connection:
        p = self._parameters
        try:
            return _Connection(
                user=p.user,
                password=p.password,
                host=p.host,
                port=p.port,
                database=p.database,
                unix_sock=p.unix_socket,
                ssl_context=p.ssl_context(),
                timeout=self._socket_timeout,
                application_name=self._application_name,
                startup_params=self._startup_params,
            )
        except (InterfaceError, OSError, DatabaseError) as exc:
            raise DependencyUnavailable(f"database unreachable: {exc}") from exc

    def _connection(self) -> pg8000.native.Connection:
        connection = getattr(self._local, "connection", None)
        if connection is None:
            connection = self._connect()
            self._local.connection = connection
        return connection

    def _discard_connection(self) -> None:
        connection = getattr(self._local, "connection", None)
        self._local.connection = None
        if connection is not None:
            try:
                connection.close()
            except Exception:  # noqa: BLE001 - the connection is already broken
                pass

    def _begin(self, begin: str = "BEGIN") -> pg8000.native.Connection:
        # A connection cached by a warm function may have died since; nothing has run yet, so
        # reconnecting once is safe.
        for attempt in (1, 2):
            connection = self._connection()
            try:
                connection.run(begin)
                return connection
            except (InterfaceError, OSError, DatabaseError) as exc:
                # A restarted server first answers a cached session with FATAL 57P01: same case.
                if isinstance(exc, DatabaseError) and not _is_unavailable(exc):
                    raise
                self._discard_connection()
                if attempt == 2:
                    raise DependencyUnavailable(f"database unreachable: {exc}") from exc
        raise AssertionError("unreachable")

    @contextmanager
    def transaction(self) -> Iterator[Transaction]:
        with self._transaction("BEGIN") as tx:
            yield tx

    @contextmanager
    def _transaction(self, begin: str) -> Iterator[Transaction]:
        connection = self._begin(begin)
        try:
            yield Transaction(connection)
            connection.run("COMMIT")
        except (InterfaceError, OSError) as exc:
            self._discard_connection()
            raise DependencyUnavailable(f"database connection lost: {exc}") from exc
        except BaseException as exc:
            try:
                connection.run("ROLLBACK")
            except (InterfaceError, OSError):
                self._discard_connection()
            _raise_domain_error(exc)
            raise

    def single_statement(self, sql: str, **params: Any) -> list[dict[str, Any]]:
        """One prepared statement as its own transaction: one round trip, no BEGIN or COMMIT.
        When it returns, what it wrote is committed (durable with synchronous_commit on); when it
        raises, nothing it wrote is, unless the connection broke after the commit. A connection
        found dead (a server that ended the session, FATAL 57P01; a closed socket) is replaced and
        the statement run once more: so a write is never lost between them, and at worst (a break
        after the commit) done twice."""
        for attempt in (1, 2):
            connection = self._connection()
            try:
                return _run_prepared(connection, sql, params)
            except (InterfaceError, OSError, DatabaseError) as exc:
                dead = not isinstance(exc, DatabaseError) or _is_unavailable(exc)
                if dead:
                    self._discard_connection()
                if dead and attempt == 1 and sql_state(exc) != QUERY_CANCELED:
                    continue
                if not dead:
                    _raise_domain_error(exc)
                    raise
                raise DependencyUnavailable(f"database unavailable: {exc}") from exc
        raise AssertionError("unreachable")

    def run_outside_transaction(self, sql: str, **params: Any) -> list[Sequence[Any]]:
        """For statements PostgreSQL refuses inside a transaction, and for advisory session locks."""
        try:
            return self._connection().run(sql, **params) or []
        except (InterfaceError, OSError) as exc:
            self._discard_connection()
            raise DependencyUnavailable(f"database connection lost: {exc}") from exc

    @contextmanager
    def session_lock(self, name: str) -> Iterator[bool]:
        """A session-level advisory lock on `name`, tried without waiting: yields whether it was
        taken, and releases it on exit. Held across transactions (a retrain spans several)."""
        key = "SELECT hashtextextended(:name, 7340201)"
        taken = bool(self.run_outside_transaction(f"SELECT pg_try_advisory_lock(({key}))", name=name)[0][0])
        try:
            yield taken
        finally:
            if taken:
                self.run_outside_transaction(f"SELECT pg_advisory_unlock(({key}))", name=name)

    def ping(self) -> None:
        with self.transaction() as tx:
            tx.fetch_value("SELECT 1")

    def close(self) -> None:
        self._discard_connection()
