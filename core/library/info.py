"""``reelvault info``: which home, catalog and store this command works on, and what is
in them, so that a typo in ``--home`` or ``--db`` shows before anything is written."""

from __future__ import annotations

from typing import Any

from catalog.db import masked_url
from catalog.removals import library_counts
from core.host.app import Reelvault
from core.provenance.signing import signing_status


def library_info(app: Reelvault) -> dict[str, Any]:
    """Where everything is, how much of it there is, and what signs and runs here."""
    settings = app.settings
    with app.session() as session:
        counts = library_counts(session)
    signing = signing_status(settings)
    return {
        "home": str(settings.home),
        "catalog": masked_url(settings.db_url),
        "media": app.store.url,
        **counts,
        "signing": {
            "configured": signing.configured,
            "subject": signing.subject,
            "trusted_here": signing.trusted_here,
            "problem": signing.problem,
        },
        "plugins": [
            {"name": p.name, "source": p.source, "version": p.version} for p in app.host.plugins()
        ],
        "failed_plugins": [failure.name for failure in app.host.failures],
    }
