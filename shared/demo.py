"""The demo tenant for the local run command: created once, its keys printed once."""

from __future__ import annotations

from shared.context import AppContext
from shared.errors import NotFound
from shared.migrate import migrate

DEMO_SLUG = "demo"


def ensure_demo(context: AppContext, *, with_models: bool = True) -> list[str]:
    """Make the local deployment usable; returns lines to show the person who started it."""
    lines = []
    applied = migrate(context.database)
    if applied:
        lines.append(f"mlstack: applied migrations {', '.join(applied)}")
    try:
        tenant = context.tenants.find_tenant(DEMO_SLUG)
        lines.append(
            f"mlstack: demo tenant {tenant.tenant_id} exists; its keys were printed when it was created"
            f" (new one: .venv/bin/mlstack --env-file .mlstack/local.env keys create --tenant demo --role client)"
        )
    except NotFound:
        tenant = context.tenants.create_tenant(DEMO_SLUG, "Demo tenant")
        client = context.tenants.create_key(tenant.tenant_id, "client", "demo client")
        staff = context.tenants.create_key(tenant.tenant_id, "staff", "demo staff")
        lines += [
            f"mlstack: created demo tenant {tenant.tenant_id}; keys are shown once, store them now:",
            f"  client key: {client.secret}",
            f"  staff key:  {staff.secret}",
        ]
    return lines
