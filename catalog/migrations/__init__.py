"""The catalog's Alembic migrations (``versions/``), and the revisions they lead to.

:data:`HEADS` lets every command check a catalog's schema by reading its version table,
without importing Alembic (a tenth of a second of start-up) to find the heads in the
scripts. A new migration changes the heads: update :data:`HEADS` with it
(tests/test_startup.py checks the two agree).
"""

HEADS: frozenset[str] = frozenset({"0008_removals", "0010_asset_relations", "0012_lineage_indexes"})
"""The newest revision of every migration branch, as Alembic's ``heads`` finds them."""
