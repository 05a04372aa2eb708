"""The `platograph` command (typer): run the system, load data, look at it, rebuild it."""

from __future__ import annotations

import signal
import threading
from pathlib import Path
from types import FrameType
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from platograph.urls import segment

app = typer.Typer(help="Platograph: a research knowledge graph.", no_args_is_help=True)
console = Console()
GatewayOpt = Annotated[str, typer.Option(envvar="PLATOGRAPH_GATEWAY", help="Gateway URL")]
KeyOpt = Annotated[
    str | None,
    typer.Option(
        "--key",
        envvar="PLATOGRAPH_KEY",
        show_envvar=True,
        help="API key (default: the admin key in the data directory)",
    ),
]
DEFAULT_GATEWAY = "http://127.0.0.1:8000"


@app.command()
def up(
    seed: Annotated[bool, typer.Option(help="Load seeds/ once the system is up")] = True,
) -> None:
    """Start everything (embedded Redis/Postgres unless REDIS_URL/DATABASE_URL are set); Ctrl-C stops it all."""
    from ops import loader
    from ops.supervisor import System, UpSettings
    from platograph.logs import configure_logging

    configure_logging("WARNING")
    system = System(UpSettings())
    stop = threading.Event()

    def _stop(_signum: int, _frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGINT, _stop)
    signal.signal(signal.SIGTERM, _stop)
    try:
        with console.status("starting Redis, Postgres and migrations"):
            system.start_infrastructure()
            system.plan()
        with console.status("starting services"):
            try:
                system.start_children()
            except RuntimeError as exc:
                console.print(f"[red]cannot start:[/] {exc}")
                raise typer.Exit(1) from exc
        if seed:
            for path in loader.seed_files():
                loader.import_file(system.gateway_url, path, key=system.admin_key)
        url = system.gateway_url
        console.print(f"[bold green]Platograph is up[/] at {url}")
        console.print(
            f"  admin key     {system.admin_key}  (kept for the CLI in {system.key_path()}; "
            "send it as Authorization: Bearer <key>)",
            soft_wrap=True,
        )
        console.print(f"  API docs      {url}/docs")
        console.print(f"  status page   {url}/")
        console.print(f"  seed entity   {url}/v1/entities/{loader.SEED_ENTITY}/neighborhood", soft_wrap=True)
        console.print(f"  logs          {system.settings.data_dir.resolve() / 'logs'}")
        console.print("Press Ctrl-C to stop.")
        system.supervise(stop.is_set)
    finally:
        with console.status("stopping"):
            system.stop()
        console.print("stopped.")


@app.command()
def seed(gateway: GatewayOpt = DEFAULT_GATEWAY, key: KeyOpt = None) -> None:
    """Load the sample data in seeds/ (loading it twice changes nothing)."""
    from ops import credentials, loader

    for path in loader.seed_files():
        totals = loader.import_file(gateway, path, key=credentials.cli_key(key))
        console.print(f"{path.name}: {totals['entity_count']} entities, {totals['edge_count']} edges")


@app.command("import")
def import_(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True, help="NDJSON file")],
    gateway: GatewayOpt = DEFAULT_GATEWAY,
    key: KeyOpt = None,
    wait_embedded: Annotated[
        bool, typer.Option("--wait-embedded", help="Then follow embedding, with a progress bar, until done")
    ] = False,
) -> None:
    """Import an NDJSON file of {"kind": "entity"|"edge", ...} lines, with a progress bar."""
    import httpx

    from ops import credentials, loader

    try:
        totals = loader.import_file(gateway, file, key=credentials.cli_key(key))
    except loader.LoadError as exc:
        console.print(f"[red]refused:[/] {exc}")
        raise typer.Exit(1) from exc
    console.print(f"{totals['entity_count']} entities, {totals['edge_count']} edges, position {totals['position']}")
    if wait_embedded:
        headers = credentials.headers(credentials.cli_key(key))
        with httpx.Client(base_url=gateway, timeout=60, headers=headers) as client:
            state = loader.wait_embedded(client)
        console.print(f"{state.done} entities embedded")


def _get(
    gateway: str,
    path: str,
    params: dict[str, str | int] | None = None,
    method: str = "GET",
    *,
    key: str | None = None,
    json: Any = None,
) -> Any:
    """A gateway answer as JSON; unreachable, or an error answer, is printed and exits 1."""
    import httpx

    from ops import credentials

    try:
        response = httpx.request(method, f"{gateway}{path}", params=params, json=json, timeout=60,
                                 headers=credentials.headers(credentials.cli_key(key)))  # fmt: skip
    except httpx.TransportError as exc:
        console.print(f"[red]gateway unreachable at {gateway}:[/] {exc}")
        raise typer.Exit(1) from exc
    if response.status_code not in (200, 201):
        console.print(f"[red]{response.status_code}:[/] {response.text}")
        raise typer.Exit(1)
    return response.json()


@app.command()
def status(gateway: GatewayOpt = DEFAULT_GATEWAY, key: KeyOpt = None) -> None:
    """Health of each service, counts and projector progress."""
    state = _get(gateway, "/v1/status", key=key)
    table = Table("what", "state")
    for name, value in state["services"].items():
        table.add_row(name, f"[green]{value}[/]" if value == "ok" else f"[red]{value}[/]")
    graph = state.get("graph") or {}
    for name, count in sorted((graph.get("entities") or {}).items()):
        table.add_row(f"entities: {name}", str(count))
    for key in ("edges", "journal_events", "stream_length", "pending", "lag", "dead_letters"):
        table.add_row(key, str(graph.get(key)))
    similarity = state.get("similarity") or {}
    table.add_row("model", f"{similarity.get('model')} ({similarity.get('indexed')} indexed)")
    job = (state.get("reembed") or {}).get("job")
    if job:
        table.add_row("re-embedding", f"{job['model']}: {job['status']} {job['done']}/{job['total']}, "
                      f"{job['rate']}/s, ETA {job['eta_s']:.0f} s")  # fmt: skip
    hooks = state.get("webhooks") or {}
    for name, count in sorted((hooks.get("deliveries") or {}).items()):
        table.add_row(f"webhook deliveries: {name}", str(count))
    console.print(table)
    if graph.get("dead_letters"):
        console.print("[yellow]Some entries were set aside:[/] `platograph dead-letters` lists them and why.")


@app.command("dead-letters")
def dead_letters(
    gateway: GatewayOpt = DEFAULT_GATEWAY,
    limit: Annotated[int, typer.Option(min=1, max=500, help="How many records")] = 50,
    cursor: Annotated[str | None, typer.Option(help="Start after this record (a page's next cursor)")] = None,
    replay: Annotated[str | None, typer.Option(help="Handle this record again in its group, then delete it")] = None,
    key: KeyOpt = None,
) -> None:
    """What the consumer groups set aside, oldest first, and why (GET /v1/dead-letters); with --replay ID,
    handle one again once its cause is fixed (POST /v1/dead-letters/ID/replay)."""
    if replay is not None:
        done = _get(gateway, f"/v1/dead-letters/{segment(replay)}/replay", method="POST", key=key)
        console.print(f"replayed {replay} (entry {done['replayed']['entry_id']}) in group {done['group']}: "
                      f"{done['result']}")  # fmt: skip
        return
    page = _get(gateway, "/v1/dead-letters", {"limit": limit} | ({"cursor": cursor} if cursor else {}), key=key)
    table = Table("at", "group", "stream entry", "reason")
    for item in page["items"]:
        entry = item["entry_id"] + ("" if item["index"] is None else f" (event {item['index']})")
        table.add_row(item["at"], item["group"], entry, item["reason"])
    console.print(table)
    more = f"; next page: --cursor {page['next_cursor']}" if page["next_cursor"] else ""
    console.print(f"{page['total']} in all{more}")


@app.command()
def rebuild(
    background: Annotated[bool, typer.Option(help="Enqueue as an RQ job instead of running here")] = False,
) -> None:
    """Recreate the read model from the journal (uses REDIS_URL / DATABASE_URL)."""
    from ops import workers
    from services.graph.entrypoints import jobs

    if background:
        from platograph.redis_clients import sync_redis
        from platograph.settings import CoreSettings

        connection = sync_redis(CoreSettings().rq_url)
        timeout = jobs.rebuild_timeout_s(jobs.journal_size())
        job = workers.queue(connection).enqueue(jobs.rebuild_read_model, job_timeout=timeout)
        console.print(f"enqueued {job.id} (time limit {timeout} s)")
        return
    with console.status("replaying the journal"):
        count = jobs.rebuild_read_model()
    console.print(f"rebuilt the read model from {count} events")


@app.command("eval")
def eval_(
    data: Annotated[Path, typer.Option(help="The evaluation data (SciFact, STS-B, PAWS)")] = Path("../shared/eval"),
    links_only: Annotated[bool, typer.Option(help="Only link recovery and thresholds (skip STS-B and PAWS)")] = False,
    gateway: GatewayOpt = DEFAULT_GATEWAY,
    key: KeyOpt = None,
) -> None:
    """Measure similarity quality on real data through the running system (see docs/similarity.md)."""
    import tempfile

    from ops import credentials, evaluation

    with tempfile.TemporaryDirectory() as work:
        report = evaluation.run(gateway, data, Path(work), links_only=links_only, key=credentials.cli_key(key))
    table = Table("measure", "value", title="similarity evaluation")
    for name, value in report.rows:
        table.add_row(name, value)
    console.print(table)


@app.command()
def migrate() -> None:
    """Bring the database (DATABASE_URL) to the newest schema; safe to repeat."""
    from ops import migrate as migrations
    from platograph.settings import DatabaseSettings

    migrations.upgrade_all(DatabaseSettings().database_url)
    console.print("database is at the newest schema")


@app.command("secrets")
def make_secrets(
    directory: Annotated[Path, typer.Argument(help="Where to write them")] = Path("deploy/secrets"),
) -> None:
    """Make the secret files deploy/docker-compose.yml mounts (passwords, URLs, token, webhook key; 0600)."""
    from ops.credentials import deploy_secrets

    written = deploy_secrets(directory)
    console.print(f"wrote {', '.join(written)} in {directory}" if written else f"{directory} already holds them all")


@app.command(hidden=True)
def projector() -> None:
    """Run one graph projector (a member of the stream's consumer group)."""
    from platograph.logs import configure_logging
    from services.graph.entrypoints import projector as entry

    configure_logging()
    entry.main()


@app.command(hidden=True)
def worker(
    queue: Annotated[str, typer.Option(help="The RQ queue to work")] = "platograph",
    simple: Annotated[bool, typer.Option(help="Run jobs in this process (no fork per job)")] = False,
    maintenance_s: Annotated[int, typer.Option(help="How often to requeue jobs of dead workers")] = 600,
    preload: Annotated[
        list[str] | None, typer.Option(help="Import this jobs module (and run its warm()) before the first job")
    ] = None,
) -> None:
    """Run an RQ worker."""
    from ops import workers
    from platograph.logs import configure_logging

    configure_logging()
    workers.work(queue, simple=simple, maintenance_s=maintenance_s, preload=preload or [])


@app.command()
def reembed(
    model: Annotated[
        str | None, typer.Option(help="Re-embed every entity with this model (see GET /v1/models)")
    ] = None,
    review: Annotated[bool, typer.Option(help="Wait for approval (the diff is shown) before switching")] = False,
    approve: Annotated[str | None, typer.Option(help="Approve a job that waits for review")] = None,
    rollback: Annotated[bool, typer.Option(help="Switch back to the model that answered before")] = False,
    cancel: Annotated[str | None, typer.Option(help="Stop a job before it switches")] = None,
    drop_previous: Annotated[bool, typer.Option(help="Delete the collection kept for a rollback")] = False,
    gateway: GatewayOpt = DEFAULT_GATEWAY,
    key: KeyOpt = None,
) -> None:
    """Re-embed the corpus with another model in the background, with a live progress bar; the site keeps
    answering with the old model until the switch."""
    import httpx

    from ops import credentials, reembed_cli

    client = httpx.Client(base_url=gateway, timeout=60, headers=credentials.headers(credentials.cli_key(key)))
    if rollback:
        reembed_cli.call(console, client, "POST", "/v1/reembed/rollback")
    elif cancel:
        console.print(
            f"re-embed {cancel}: {reembed_cli.call(console, client, 'POST', f'/v1/reembed/{cancel}/cancel')['status']}"
        )
    elif drop_previous:
        console.print(f"dropped {reembed_cli.call(console, client, 'DELETE', '/v1/reembed/previous')['dropped']}")
    elif approve:
        reembed_cli.follow(console, client, reembed_cli.call(console, client, "POST", f"/v1/reembed/{approve}/approve"))
    elif model:
        job = reembed_cli.call(console, client, "POST", "/v1/reembed", json={"model": model, "review": review})
        reembed_cli.follow(console, client, job)
    else:
        console.print("[red]give --model NAME, --approve JOB, --cancel JOB, --rollback or --drop-previous[/]")
        raise typer.Exit(2)


@app.command(hidden=True)
def coordinator() -> None:
    """Run the re-embedding coordinator."""
    from platograph.logs import configure_logging
    from services.similarity.entrypoints import reembed_jobs

    configure_logging()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    reembed_jobs.coordinate(stop)


@app.command(hidden=True)
def scheduler(
    queue: Annotated[list[str], typer.Option(help="A queue whose delayed jobs to enqueue (repeatable)")],
) -> None:
    """Run RQ's scheduler."""
    from ops import workers
    from platograph.logs import configure_logging

    configure_logging()
    workers.schedule(queue)


keys_app = typer.Typer(help="API keys: make, list, revoke (through the gateway, with an admin key).")
app.add_typer(keys_app, name="keys")


@keys_app.command("create")
def keys_create(
    name: Annotated[str, typer.Option(help="Who holds the key")],
    scopes: Annotated[str, typer.Option(help="Comma-separated: read, write, review, webhooks, admin")],
    owner: Annotated[str | None, typer.Option(help="Whose webhook subscriptions it manages (default: name)")] = None,
    gateway: GatewayOpt = DEFAULT_GATEWAY,
    key: KeyOpt = None,
) -> None:
    """Make a key and print it (this is the only time it is shown)."""
    body = {"name": name, "scopes": [s.strip() for s in scopes.split(",") if s.strip()], "owner": owner}
    made = _get(gateway, "/v1/keys", method="POST", key=key, json=body)
    console.print(f"{made['id']} ({made['name']}: {', '.join(made['scopes'])})")
    console.print(made["key"], soft_wrap=True)


@keys_app.command("list")
def keys_list(gateway: GatewayOpt = DEFAULT_GATEWAY, key: KeyOpt = None) -> None:
    """Every key: id, name, owner, scopes, made, revoked."""
    table = Table("name", "owner", "scopes", "made", "revoked")
    table.add_column("id", no_wrap=True, min_width=20)  # what `keys revoke` takes: never cut
    cursor: str | None = None
    while True:
        page = _get(gateway, "/v1/keys", {"limit": 500} | ({"cursor": cursor} if cursor else {}), key=key)
        for k in page["items"]:
            revoked = (k["revoked_at"] or "")[:10]
            table.add_row(k["name"], k["owner"], ", ".join(k["scopes"]), k["created_at"][:10], revoked, k["id"])
        cursor = page["next_cursor"]
        if not cursor:
            break
    console.print(table)


@keys_app.command("revoke")
def keys_revoke(
    key_id: Annotated[str, typer.Argument(help="The key's id (key_...)")],
    gateway: GatewayOpt = DEFAULT_GATEWAY,
    key: KeyOpt = None,
) -> None:
    """Revoke a key: every gateway refuses it within 5 seconds."""
    revoked = _get(gateway, f"/v1/keys/{segment(key_id)}/revoke", method="POST", key=key)
    console.print(f"revoked {revoked['id']} ({revoked['name']}) at {revoked['revoked_at']}")


@keys_app.command("bootstrap")
def keys_bootstrap(name: Annotated[str, typer.Option(help="Who holds the key")] = "admin") -> None:
    """Make an admin key straight in the database (DATABASE_URL): the first key of a deployment."""
    from platograph.api.access import KeyIn
    from platograph.settings import DatabaseSettings
    from services.access.bootstrap import bootstrap as access_bootstrap
    from services.access.service_layer import keys
    from services.access.settings import AccessSettings

    access = access_bootstrap(AccessSettings(database_url=DatabaseSettings().database_url))
    try:
        made = keys.create(access.engine, KeyIn(name=name, scopes=["admin"]))
    finally:
        access.close()
    console.print(f"{made.id} ({made.name}: admin)")
    console.print(made.key, soft_wrap=True)


if __name__ == "__main__":
    app()
