"""Claiming queued work: one job to one worker, and abandoned leases taken over."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
import time_machine

from catalog.db import open_catalog, session_scope
from catalog.models import Generation, utcnow
from catalog.queue import (
    begin_submit,
    claim_finish,
    claim_next,
    database_now,
    hand_back,
    release,
    renew,
)
from catalog.records import lock_generation
from catalog.statuses import ENDED, RUNNING, UNFINISHED
from core.api.types import GenerationStatus, JobState

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


def test_leases_follow_the_database_clock_not_the_machines(db_url: str):
    """A worker whose clock runs an hour fast must not see live leases as run out, and
    one whose clock runs an hour slow must still take over a lease that did run out."""
    engine = open_catalog(db_url)
    live, lapsed = add_jobs(engine, 2)
    with session_scope(engine) as s:
        assert claim_next(s, "w1", LEASE).id == live
        # the second lease has already run out, in the database's time
        assert claim_next(s, "w1", timedelta(seconds=-1)).id == lapsed
    with time_machine.travel(datetime.now(UTC) + timedelta(hours=1), tick=True):
        with session_scope(engine) as s:
            taken = claim_next(s, "fast", LEASE)
            assert taken is not None and taken.id == lapsed  # never the live one
        with session_scope(engine) as s:
            assert claim_next(s, "fast", LEASE) is None
            assert renew(s, "w1", [live], LEASE) == {live}
            expires = s.get(Generation, live).lease_expires_at
            now = database_now(s)
    assert timedelta(seconds=25) < expires - now <= LEASE  # set in the database's time
    with session_scope(engine) as s:
        hand_back(s, "fast", lapsed)  # the fast worker stops: its job is free at once
    slow_clock = time_machine.travel(datetime.now(UTC) - timedelta(hours=1), tick=True)
    with slow_clock, session_scope(engine) as s:
        slow = claim_next(s, "slow", LEASE)
        assert slow is not None and slow.id == lapsed and slow.attempts == 3
    engine.dispose()


def test_the_database_time_is_utc_and_comparable_with_stored_times(db_url: str):
    engine = open_catalog(db_url)
    (job_id,) = add_jobs(engine, 1, status="in_progress")
    with session_scope(engine) as s:
        now = database_now(s)
        row = s.get(Generation, job_id)
        row.lease_owner, row.lease_expires_at = "w1", now + timedelta(seconds=5)
    assert now.tzinfo is not None and abs(now - utcnow()) < timedelta(seconds=5)
    with session_scope(engine) as s:
        assert claim_next(s, "w2", LEASE) is None  # still live, with seconds to go
    with session_scope(engine) as s:  # run out a moment ago, in the database's time
        s.get(Generation, job_id).lease_expires_at = database_now(s) - timedelta(milliseconds=100)
    with session_scope(engine) as s:
        assert claim_next(s, "w2", LEASE).id == job_id
    engine.dispose()


def test_a_worker_sends_only_while_its_lease_holds(db_url: str):
    engine = open_catalog(db_url)
    ids = add_jobs(engine, 3)
    with session_scope(engine) as s:
        for _ in ids:
            claim_next(s, "w1", LEASE)
        s.get(Generation, ids[1]).lease_owner = "w2"  # taken over meanwhile
        s.get(Generation, ids[2]).lease_expires_at = database_now(s) - timedelta(seconds=1)
    with session_scope(engine) as s:
        assert begin_submit(s, "w1", ids[0], LEASE)
        assert not begin_submit(s, "w1", ids[1], LEASE)
        assert not begin_submit(s, "w1", ids[2], LEASE)  # lapsed: another may hold it now
    with session_scope(engine) as s:
        assert [s.get(Generation, i).status for i in ids] == ["submitting", "claimed", "claimed"]
    engine.dispose()


def test_handing_back_frees_jobs_at_once_and_unsent_ones_are_pending_again(db_url: str):
    engine = open_catalog(db_url)
    unsent, sent = add_jobs(engine, 2)
    with session_scope(engine) as s:
        claim_next(s, "w1", LEASE)
        claim_next(s, "w1", LEASE)
        s.get(Generation, sent).status = "in_progress"
    with session_scope(engine) as s:
        hand_back(s, "w1", unsent)
        hand_back(s, "w1", sent)
        hand_back(s, "w2", sent)  # not w2's: changes nothing
    with session_scope(engine) as s:
        row = s.get(Generation, unsent)
        assert (row.status, row.lease_owner) == ("pending", None)
        assert s.get(Generation, sent).lease_owner == "w1"
    with session_scope(engine) as s:
        assert [claim_next(s, "w2", LEASE).id for _ in range(2)] == [unsent, sent]
    engine.dispose()


def test_one_finishing_claim_at_a_time_until_it_lapses(db_url: str):
    engine = open_catalog(db_url)
    (job_id,) = add_jobs(engine, 1, status="in_progress")
    with session_scope(engine) as s:
        row = lock_generation(s, job_id)
        assert claim_finish(s, row, "poller", timedelta(seconds=0.3))
        assert row.status == "finishing"
    with session_scope(engine) as s:
        row = lock_generation(s, job_id)
        assert not claim_finish(s, row, "webhook", LEASE)
        assert not claim_finish(s, row, "poller", LEASE)  # a second thread of the same one
        row.lease_expires_at = database_now(s) - timedelta(seconds=1)  # the poller died
    with session_scope(engine) as s:
        assert claim_finish(s, lock_generation(s, job_id), "webhook", LEASE)
        lock_generation(s, job_id).lease_expires_at = database_now(s) - timedelta(seconds=1)
    with session_scope(engine) as s:
        taken = claim_next(s, "worker", LEASE)  # a dead finisher's job: finishing starts over
        assert (taken.id, taken.status, taken.lease_owner) == (job_id, "in_progress", "worker")
    with session_scope(engine) as s:
        assert not claim_finish(s, lock_generation(s, job_id), "webhook", LEASE)  # the worker's
        assert claim_finish(s, lock_generation(s, job_id), "worker", LEASE)
    with session_scope(engine) as s:
        row = lock_generation(s, job_id)
        row.status = "completed"
    with session_scope(engine) as s:
        assert not claim_finish(s, lock_generation(s, job_id), "late", LEASE)
    engine.dispose()


def test_one_status_vocabulary_stores_the_same_strings(db_url: str):
    """Every status a generation row can hold is one GenerationStatus member, a backend's
    JobState included, and the database keeps exactly the strings it always had."""
    assert {s.value for s in GenerationStatus} == {
        "pending", "claimed", "submitting", "queued", "in_progress", "finishing",
        "remote", "imported", "completed", "failed", "rejected",
    }  # fmt: skip
    assert all(state.status == state.value for state in JobState)
    assert ENDED.isdisjoint(UNFINISHED) and {GenerationStatus.PENDING, *RUNNING} == UNFINISHED
    engine = open_catalog(db_url)
    (job_id,) = add_jobs(engine, 1, status=GenerationStatus.PENDING)
    with session_scope(engine) as s:
        claimed = claim_next(s, "w1", LEASE)
        assert claimed is not None and claimed.status is GenerationStatus.CLAIMED
    with engine.connect() as conn:
        stored = conn.execute(
            sa.text("SELECT status FROM generations WHERE id = :id"), {"id": job_id}
        ).scalar_one()
    assert type(stored) is str and stored == "claimed"
    engine.dispose()
