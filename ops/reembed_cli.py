"""What `platograph reembed` shows: a live progress bar, then the candidate diff."""

from __future__ import annotations

import time
from typing import Any

import httpx
import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

POLL_S = 1.0


def call(console: Console, client: httpx.Client, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
    response = client.request(method, path, **kwargs)
    if response.status_code >= 400:
        detail = response.json().get("detail")
        msg = "; ".join(d["msg"] for d in detail) if isinstance(detail, list) else str(detail)
        console.print(f"[red]{response.status_code}:[/] {msg}")
        raise typer.Exit(1)
    body: dict[str, Any] = response.json()
    if "active" in body:
        console.print(f"active model: [bold]{body['active']}[/] (previous: {body.get('previous')})")
    return body


def follow(console: Console, client: httpx.Client, job: dict[str, Any]) -> None:
    """Poll the job until it is done, waits for review, or failed."""
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[rate]}"),
               TimeRemainingColumn())  # fmt: skip
    with Progress(*columns, console=console) as bar:
        task = bar.add_task(f"re-embedding with {job['model']}", total=job["total"], rate="")
        diffing = None  # once every entity is embedded: the candidate diff, an id range at a time
        while job["status"] == "running":
            time.sleep(POLL_S)
            job = call(console, client, "GET", f"/v1/reembed/{job['id']}")
            bar.update(task, completed=job["done"], rate=f"{job['rate']}/s")
            if diffing is None and job["done"] >= job["total"] and job.get("batches"):
                diffing = bar.add_task("comparing candidates (id ranges)", total=job["batches"], rate="")
            if diffing is not None:
                bar.update(diffing, completed=job.get("diffed_batches", 0))
        bar.update(task, completed=job["done"])
    diff = job.get("diff")
    if diff:
        table = Table("type pair", "gained", "lost", "re-scored", title=f"{diff['from_model']} → {diff['to_model']}")
        for pair, counts in diff["by_type_pair"].items():
            table.add_row(pair, *(str(counts.get(k, 0)) for k in ("gained", "lost", "rescored")))
        table.add_row("all", str(diff["gained"]), str(diff["lost"]), str(diff["rescored"]))
        console.print(table)
    failed = job.get("failed_batches") or {}
    if failed:
        console.print(f"[yellow]{len(failed)} batches failed for good[/]: {', '.join(sorted(failed))}")
    messages = {"ready": f"waiting for review: platograph reembed --approve {job['id']}",
                "done": f"{job['model']} now answers (platograph reembed --rollback to go back)"}  # fmt: skip
    console.print(messages.get(job["status"], f"re-embed {job['id']} is {job['status']}: {job.get('error', '')}"))
