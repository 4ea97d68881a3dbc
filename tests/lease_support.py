"""Leases run out in tests by being set in the past, never by sleeping until they do.

A sleep just past an expiry is slow and flaky on a loaded machine (the sleeper may wake
before the database's clock has passed it); writing an expiry in the past is exact.
"""

from __future__ import annotations

from datetime import timedelta

from catalog.models import Generation
from catalog.queue import database_now
from core.host.app import Reelvault


def lapse_lease(app: Reelvault, generation_id: str) -> None:
    """What another worker sees when this job's holder stalls past its lease."""
    with app.session() as session:
        row = session.get(Generation, generation_id)
        assert row is not None and row.lease_owner is not None, "the job holds no lease"
        row.lease_expires_at = database_now(session) - timedelta(seconds=1)
