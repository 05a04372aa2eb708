"""Re-embedding jobs, their batches and the model alias, kept in Redis (durable with AOF) so that any
worker, the coordinator and the similarity service can pick a job up after a crash.

Each change of a job's status is also appended to the event stream (`reembed.changed`, in the same
transaction as the change), so the journal in Postgres keeps every job's record: a Redis that lost its
data gets the records back from there (service_layer/reembed.restore)."""

from __future__ import annotations

import time
import uuid
from typing import Any

import orjson
import redis
from redis.lock import Lock

from platograph.contracts import ReembedChanged, encode_entry, new_envelopes
from services.similarity.domain.candidates import PRODUCER

TERMINAL = ("done", "failed", "cancelled", "rolled_back")
LOCK_S = 60  # a lock's lease: a holder that died frees it after this
REWOUND_S = 3600  # how long a rewind's mark keeps other replicas from rewinding an index still empty
# Delete a key only if it still holds the value read: one script, so it works on a cluster (no WATCH).
CLEAR_IF = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0"


class ReembedStore:
    def __init__(self, client: redis.Redis, stream: str) -> None:
        self.client, self.stream = client, stream
        self.prefix = f"{stream}:reembed"
        self.alias_key = f"{stream}:similarity:alias"

    # The alias readers use: which model's collection answers, and the one kept for a rollback.
    def alias(self) -> dict[str, str]:
        raw = self.client.hgetall(self.alias_key)
        return {k.decode(): v.decode() for k, v in raw.items()}  # type: ignore[union-attr]

    def set_alias(self, active: str, previous: str | None) -> None:
        with self.client.pipeline() as pipe:
            pipe.hset(self.alias_key, "active", active)
            if previous:
                pipe.hset(self.alias_key, "previous", previous)
            else:
                pipe.hdel(self.alias_key, "previous")
            pipe.execute()

    def _job_key(self, job_id: str) -> str:
        return f"{self.prefix}:{job_id}"

    def create(
        self, model: str, from_model: str, review: bool, batches: list[dict[str, Any]], started_by: str = ""
    ) -> str:
        job_id = uuid.uuid4().hex[:12]
        total = sum(b["count"] for b in batches)
        now = time.time()
        job = {"id": job_id, "model": model, "from_model": from_model, "status": "running", "review": int(review),
               "total": total, "batches": len(batches), "created_at": now, "started_at": now,
               "started_by": started_by}  # fmt: skip
        with self.client.pipeline() as pipe:
            pipe.hset(self._job_key(job_id), mapping={k: str(v) for k, v in job.items()})
            self._journal(pipe, job | {"done": 0})
            if batches:
                pipe.hset(
                    f"{self._job_key(job_id)}:plan", mapping={str(i): orjson.dumps(b) for i, b in enumerate(batches)}
                )
            pipe.set(f"{self.prefix}:current", job_id)
            pipe.execute()
        return job_id

    def note(self, job_id: str, field: str, value: str) -> None:
        """Record something about a job (who approved or cancelled it)."""
        self.client.hset(self._job_key(job_id), field, value)

    def has(self, job_id: str) -> bool:
        return bool(self.client.exists(self._job_key(job_id)))

    def current(self) -> str | None:
        value = self.client.get(f"{self.prefix}:current")
        return value.decode() if isinstance(value, bytes) else None

    def job(self, job_id: str) -> dict[str, Any] | None:
        raw = self.client.hgetall(self._job_key(job_id))
        if not raw:
            return None
        job: dict[str, Any] = {k.decode(): v.decode() for k, v in raw.items()}  # type: ignore[union-attr]
        for key in ("total", "batches", "review"):
            job[key] = int(job[key])
        for key in ("created_at", "started_at", "finished_at"):
            if key in job:
                job[key] = float(job[key])
        job["diff"] = orjson.loads(job["diff"]) if "diff" in job else None
        # What the switch did to the candidates, once they have followed it (similarity.follow).
        job["candidates"] = orjson.loads(job["candidates"]) if "candidates" in job else None
        key = self._job_key(job_id)
        job["done_batches"] = int(self.client.scard(f"{key}:done"))
        job["done"] = int(self.client.get(f"{key}:entities") or 0)
        job["diffed_batches"] = int(self.client.scard(f"{key}:diffed"))
        failed = self.client.hgetall(f"{key}:failed")
        job["failed_batches"] = {k.decode(): v.decode() for k, v in failed.items()}  # type: ignore[union-attr]
        return job

    def batch(self, job_id: str, n: int) -> dict[str, Any]:
        raw = self.client.hget(f"{self._job_key(job_id)}:plan", str(n))
        if raw is None:
            raise KeyError(f"job {job_id} has no batch {n}")
        return dict(orjson.loads(raw))

    def pending_batches(self, job_id: str, batches: int) -> list[int]:
        key = self._job_key(job_id)
        done = {int(n) for n in self.client.smembers(f"{key}:done")}
        failed = {int(n) for n in self.client.hkeys(f"{key}:failed")}
        return [n for n in range(batches) if n not in done and n not in failed]

    def mark_done(self, job_id: str, n: int, entities: int) -> bool:
        """Record a finished batch once; a batch redone after a crash does not count twice."""
        key = self._job_key(job_id)
        if self.client.sadd(f"{key}:done", n):
            self.client.incrby(f"{key}:entities", entities)
            return True
        return False

    def mark_diffed(self, job_id: str, n: int) -> None:
        """Record that range `n`'s pairs are staged for the job's diff (service_layer/reembed_diff)."""
        self.client.sadd(f"{self._job_key(job_id)}:diffed", n)

    def pending_diff(self, job_id: str, batches: int) -> list[int]:
        done = {int(n) for n in self.client.smembers(f"{self._job_key(job_id)}:diffed")}
        return [n for n in range(batches) if n not in done]

    def mark_fresh(self, job_id: str, entity_ids: list[str]) -> None:
        """Entities the consumer wrote (or removed) in the new collection while the job runs: a batch read
        earlier must not overwrite them."""
        if entity_ids:
            self.client.sadd(f"{self._job_key(job_id)}:fresh", *entity_ids)

    def fresh(self, job_id: str, entity_ids: list[str]) -> set[str]:
        if not entity_ids:
            return set()
        flags = self.client.smismember(f"{self._job_key(job_id)}:fresh", entity_ids)
        return {e for e, flag in zip(entity_ids, flags, strict=True) if flag}

    def mark_failed(self, job_id: str, n: int, error: str) -> None:
        self.client.hset(f"{self._job_key(job_id)}:failed", str(n), error[:500])

    def rewind_lock(self) -> Lock:
        """Held by a replica deciding, at start-up, whether the index was lost and the group must rewind."""
        return Lock(self.client, f"{self.stream}:similarity:rewind-lock", timeout=LOCK_S, blocking_timeout=LOCK_S)

    def mark_indexed(self) -> None:
        """The group has put entities in an index: finding it empty later means it was lost."""
        self.client.set(f"{self.stream}:similarity:indexed", int(time.time()))

    def has_indexed(self) -> bool:
        return bool(self.client.exists(f"{self.stream}:similarity:indexed"))

    def rewound(self, model_key: str) -> bool:
        return bool(self.client.exists(f"{self.stream}:similarity:rewound:{model_key}"))

    def mark_rewound(self, model_key: str) -> None:
        self.client.set(f"{self.stream}:similarity:rewound:{model_key}", int(time.time()), ex=REWOUND_S)

    def forget_rewind(self, model_key: str) -> None:
        self.client.delete(f"{self.stream}:similarity:rewound:{model_key}")

    def follow_lock(self) -> Lock:
        """Held by the replica running the candidates' pass after a switch (extended as it goes)."""
        return Lock(self.client, f"{self.prefix}:follow-lock", timeout=LOCK_S)

    def fresh_lock(self, job_id: str) -> Lock:
        """Held while the consumer writes to a job's collection and marks what it wrote, and while a batch
        checks those marks and writes: the two may run on different replicas."""
        return Lock(self.client, f"{self._job_key(job_id)}:fresh-lock", timeout=LOCK_S, blocking_timeout=LOCK_S)

    def follow_candidates(self, tag: str) -> None:
        """Mark that candidates must follow a model switch (set before the switch: see similarity.follow)."""
        self.client.set(f"{self.prefix}:follow", tag)

    def candidates_to_follow(self) -> str | None:
        value = self.client.get(f"{self.prefix}:follow")
        return value.decode() if isinstance(value, bytes) else None

    def follow_progress(self, tag: str, last_id: str) -> None:
        """The last entity a follow pass has proposed for (a pass that restarts goes on after it)."""
        self.client.set(f"{self.prefix}:follow-after:{tag}", last_id, ex=7 * 24 * 3600)

    def follow_cursor(self, tag: str) -> str | None:
        value = self.client.get(f"{self.prefix}:follow-after:{tag}")
        return value.decode() if isinstance(value, bytes) else None

    def candidates_followed(self, tag: str, counts: dict[str, int]) -> None:
        """Clear the mark (unless a later switch set another) and note the counts on the job, if it is one."""
        if self.client.exists(self._job_key(tag)):
            self.client.hset(self._job_key(tag), "candidates", orjson.dumps(counts))
        self.client.eval(CLEAR_IF, 1, f"{self.prefix}:follow", tag)  # a later switch's mark stays
        self.client.delete(f"{self.prefix}:follow-after:{tag}")

    def update(self, job_id: str, **fields: Any) -> None:
        """Change a job's fields; a change of status is journaled with it."""
        values = {k: orjson.dumps(v).decode() if k == "diff" else str(v) for k, v in fields.items()}
        job = self.job(job_id) if "status" in fields else None
        with self.client.pipeline() as pipe:
            pipe.hset(self._job_key(job_id), mapping=values)  # type: ignore[arg-type]
            if job is not None:
                self._journal(pipe, job | fields)
            pipe.execute()

    def _journal(self, pipe: redis.client.Pipeline, job: dict[str, Any]) -> None:
        fields = set(ReembedChanged.model_fields)
        known = {k: v for k, v in job.items() if k in fields and v is not None}
        payload = ReembedChanged.model_validate(known | {"review": bool(int(job.get("review", 0)))})
        pipe.xadd(self.stream, encode_entry(new_envelopes([payload], producer=PRODUCER)))  # type: ignore[arg-type]

    def restore(self, record: dict[str, Any]) -> None:
        """Put back a job's record (from the journal) into a Redis that lost it; not journaled again."""
        values = {k: str(int(v) if isinstance(v, bool) else v) for k, v in record.items() if v is not None}
        with self.client.pipeline() as pipe:
            pipe.hset(self._job_key(record["id"]), mapping=values)  # type: ignore[arg-type]
            pipe.set(f"{self._job_key(record['id'])}:entities", int(record.get("done", 0)))
            pipe.execute()

    def finish(self, job_id: str, status: str, **fields: Any) -> None:
        self.update(job_id, status=status, finished_at=time.time(), **fields)
        if self.current() == job_id:
            self.client.delete(f"{self.prefix}:current")
