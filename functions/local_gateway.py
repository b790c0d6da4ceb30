"""`chalice local` with API Gateway's gateway responses as deployed (functions/gateway_responses.py).

Chalice's local gateway answers a missing key, a denied key and an unknown route with bodies of
its own, and an authorizer that raises (the database is down) closes the connection without an
answer. This gateway answers each as API Gateway does with infra/template.yaml, in the one error
shape with X-Request-Id, and logs a request line for it. Used by scripts/run.sh, the end-to-end
tests and the in-process test client; never imported by app.py (chalice.local is not deployed).

    python -m functions.local_gateway --port 8000 [--stage local]
"""

from __future__ import annotations

import argparse
import logging
import os
import time
import uuid
from typing import Any

from chalice.app import Chalice
from chalice.config import Config
from chalice.local import (
    ChaliceRequestHandler,
    ForbiddenError,
    LocalDevServer,
    LocalGateway,
    LocalGatewayException,
    NotAuthorizedError,
    create_local_server,
)

from functions.gateway_responses import GATEWAY_RESPONSES
from functions.http import MAX_BODY_BYTES
from shared.context import get_context
from shared.logs import configure_logging, log_event


def gateway_answer(kind: str, request_id: str) -> dict[str, Any]:
    answer = GATEWAY_RESPONSES[kind]
    headers = {"Content-Type": "application/json", "X-Request-Id": request_id}
    if answer.retry_after is not None:
        headers["Retry-After"] = str(answer.retry_after)
    return {"statusCode": answer.status, "headers": headers, "multiValueHeaders": {}, "body": answer.body()}


def _kind_of(error: LocalGatewayException) -> str:
    if isinstance(error, NotAuthorizedError):
        return "UNAUTHORIZED"
    if isinstance(error, ForbiddenError):
        return "MISSING_AUTHENTICATION_TOKEN" if b"Missing Authentication Token" in (error.body or b"") \
            or b"Credential" in (error.body or b"") else "ACCESS_DENIED"
    return "AUTHORIZER_CONFIGURATION_ERROR"


class ShapedLocalGateway(LocalGateway):
    def handle_request(
        self, method: str, path: str, headers: dict[str, Any], body: bytes | None
    ) -> dict[str, Any]:
        started = time.perf_counter()
        try:
            return super().handle_request(method, path, headers, body)  # type: ignore[no-any-return]
        except LocalGatewayException as error:
            kind = _kind_of(error)
        except Exception:  # noqa: BLE001 - only the authorizer can raise here: the app answers its own
            logging.getLogger("mlstack_errors").error("authorizer failed", exc_info=True)
            kind = "AUTHORIZER_FAILURE"
        request_id = uuid.uuid4().hex
        response = gateway_answer(kind, request_id)
        configure_logging()
        log_event(
            "request", request_id=request_id, method=method, route=path.split("?")[0], tenant_id=None,
            status=response["statusCode"], gateway_response=kind,
            latency_ms=round((time.perf_counter() - started) * 1000, 2),
        )
        return response


def _handler(app_object: Chalice, config: Config) -> Any:
    class Handler(ChaliceRequestHandler):
        # Headers and body go out as two writes; with Nagle on, a keep-alive client waits for the
        # delayed ACK (about 40 ms) on every request.
        disable_nagle_algorithm = True

        def __init__(self, request: Any, client_address: Any, server: Any) -> None:
            self.local_gateway = ShapedLocalGateway(app_object, config)
            # BaseHTTPRequestHandler handles the request inside __init__: the gateway must be set.
            try:
                super(ChaliceRequestHandler, self).__init__(request, client_address, server)
            finally:
                # The server runs each client connection in a thread of its own, which ends here;
                # its PostgreSQL session would otherwise stay open until the collector found it
                # (a client opening a connection per request ran the server out of sessions).
                get_context().close_thread_connection()

    return Handler


def local_server(app_object: Chalice, config: Config, host: str, port: int) -> LocalDevServer:
    server = create_local_server(app_object, config, host, port)  # makes the app thread-local
    server.server.RequestHandlerClass = _handler(app_object, config)
    return server


def local_test_client(app_object: Chalice, stage_name: str = "local") -> Any:
    """chalice.test.Client whose HTTP requests go through this gateway, as `scripts/run.sh` serves."""
    from chalice.test import Client

    client = Client(app_object, stage_name=stage_name)
    client.http._local_gateway = ShapedLocalGateway(app_object, client.http._config)
    return client


def wsgi_app(app_object: Chalice, config: Config) -> Any:
    """The same gateway as a WSGI application: the contract test drives the app in-process with it."""
    from http import HTTPStatus

    gateway = ShapedLocalGateway(app_object, config)

    def application(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        path = environ.get("RAW_URI") or environ.get("REQUEST_URI") or environ.get("PATH_INFO", "/")
        if "?" not in path and environ.get("QUERY_STRING"):
            path = f"{path}?{environ['QUERY_STRING']}"
        headers = {
            name[5:].replace("_", "-").lower(): value for name, value in environ.items() if name.startswith("HTTP_")
        }
        if environ.get("CONTENT_TYPE"):
            headers["content-type"] = environ["CONTENT_TYPE"]
        length = int(environ.get("CONTENT_LENGTH") or 0)
        # At most one byte past the limit: enough for the app's 400, never a huge body in memory.
        body = environ["wsgi.input"].read(min(length, MAX_BODY_BYTES + 1)) if length else None
        response = gateway.handle_request(environ["REQUEST_METHOD"], path, headers, body)
        payload = response.get("body") or b""
        if isinstance(payload, str):
            payload = payload.encode()
        status = int(response["statusCode"])
        pairs = [(k, str(v)) for k, v in response["headers"].items()]
        pairs += [(k, str(v)) for k, values in response.get("multiValueHeaders", {}).items() for v in values]
        start_response(f"{status} {HTTPStatus(status).phrase}", pairs)
        return [payload]

    return application


def main() -> int:
    from chalice.cli.factory import CLIFactory

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--stage", default="local")
    args = parser.parse_args()
    project_dir = os.getcwd()
    factory = CLIFactory(project_dir, environ=os.environ)
    config = factory.create_config_obj(chalice_stage_name=args.stage)
    server = local_server(config.chalice_app, config, args.host, args.port)
    print(f"Serving on http://{args.host}:{args.port}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
