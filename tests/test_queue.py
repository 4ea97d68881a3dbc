"""Claiming queued work: one job to one worker, and abandoned leases taken over."""

from __future__ import annotations

import threading
from datetime import timedelta

import sqlalchemy as sa

from catalog.db import open_catalog, session_scope
from catalog.models import Generation, utcnow
from catalog.queue import claim_next, release, renew

LEASE = timedelta(seconds=30)


def add_jobs(engine: sa.Engine, count: int, status: str = "pending") -> list[str]:
    ids = [f"clip_job{i:04d}" for i in range(count)]
    with session_scope(engine) as s:
        for i, job_id in enumerate(ids):
            s.add(
                Generation(
                    id=job_id, backend="local", model="local-motion", prompt="p", seconds=1,
                    size="640x360", status=status,
                    created_at=utcnow() - timedelta(seconds=count - i),
                )
            )  # fmt: skip
    return ids


def test_claims_go_oldest_first_and_never_twice(db_url: str):
    engine = open_catalog(db_url)
    ids = add_jobs(engine, 3)
    with session_scope(engine) as s:
        first = claim_next(s, "w1", LEASE)
    with session_scope(engine) as s:
        second = claim_next(s, "w2", LEASE)
    with session_scope(engine) as s:
        third = claim_next(s, "w1", LEASE)
    assert [first.id, second.id, third.id] == ids
    assert {first.status, second.status, third.status} == {"claimed"}
    with session_scope(engine) as s:
        assert claim_next(s, "w3", LEASE) is None
    engine.dispose()


def test_concurrent_claimers_split_the_work(db_url: str):
    engine = open_catalog(db_url)
    ids = add_jobs(engine, 40)
    taken: dict[str, list[str]] = {f"w{i}": [] for i in range(4)}
    errors: list[BaseException] = []

    def work(worker: str) -> None:
        try:
            while True:
                with session_scope(engine) as s:
                    job = claim_next(s, worker, LEASE)
                    if job is None:
                        return
                    taken[worker].append(job.id)
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(w,)) for w in taken]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    claimed = [job for jobs in taken.values() for job in jobs]
    assert sorted(claimed) == ids  # every job once, none twice
    engine.dispose()


def test_an_expired_lease_is_taken_over_and_renewal_reports_the_loss(db_url: str):
    engine = open_catalog(db_url)
    (job_id,) = add_jobs(engine, 1)
    with session_scope(engine) as s:
        job = claim_next(s, "dead", timedelta(seconds=-1))  # a lease already run out
        job.status, job.remote_job_id = "in_progress", "local_x"
    with session_scope(engine) as s:
        taken = claim_next(s, "alive", LEASE)
        assert taken.id == job_id and taken.remote_job_id == "local_x" and taken.attempts == 2
    with session_scope(engine) as s:
        assert renew(s, "dead", [job_id], LEASE) == set()
        assert renew(s, "alive", [job_id], LEASE) == {job_id}
    with session_scope(engine) as s:
        release(s, "alive", job_id)
    with session_scope(engine) as s:
        row = s.get(Generation, job_id)
        assert row.lease_owner is None and row.lease_expires_at is None
        assert claim_next(s, "other", LEASE) is None  # running, no lease: not claimable
    engine.dispose()
