"""`revledger serve`: the HTTP API for billing systems (canonical events, Stripe webhooks)."""

from __future__ import annotations

import logging
import os

import click


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on.")
@click.option("--port", default=8080, show_default=True, type=click.IntRange(0, 65535),
              help="TCP port.")
@click.option("--no-auth", is_flag=True,
              help="Accept POST /v1/events without a token (never on a shared network).")
@click.pass_obj
def serve(db: str, host: str, port: int, no_auth: bool) -> None:
    """Serve the ledger over HTTP: POST /v1/events (Bearer REVLEDGER_API_TOKEN),
    POST /v1/webhooks/stripe (signed with REVLEDGER_STRIPE_WEBHOOK_SECRET), GET /v1/health.

    Logs one line per request on stderr (status, outcome, event ids, latency), rejected
    signatures and a clock drifting from Stripe's; never a header, body or secret.
    """
    token = os.environ.get("REVLEDGER_API_TOKEN") or None
    if token is None and not no_auth:
        raise click.UsageError("set REVLEDGER_API_TOKEN, or pass --no-auth to accept events "
                               "without one")
    from api.app import create_app
    from api.server import server
    from services.sources import webhooks

    secrets = {}  # each signed source's secret, from its environment variable
    for hook in webhooks():
        secrets[hook.name] = os.environ.get(hook.secret_env or "") or None
        if secrets[hook.name] is None:
            click.echo(f"revledger: {hook.secret_env} is not set: {hook.title} webhooks "
                       "will be refused (503)", err=True)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")
    logging.getLogger("revledger").setLevel(logging.INFO)  # its request lines, no others'
    click.echo(f"revledger: serving on http://{host}:{port}", err=True)
    server(create_app(db, None if no_auth else token, secrets), host, port).run()
