"""Every migration upgrades a populated catalog without losing or breaking a row."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import command

from catalog.db import (
    _alembic_config,
    create_engine,
    current_revisions,
    head_revisions,
    open_catalog,
)

ROWS = {
    "assets": 2,
    "generations": 3,
    "policy_decisions": 2,
    "verifications": 1,
}


def seed_first_revision(url: str) -> None:
    """A catalog as revision 0001 left it, with clips, a remix chain and records."""
    engine = create_engine(url)
    with engine.begin() as conn:
        command.upgrade(_alembic_config(conn), "0001")
    now = "2026-01-01 00:00:00"
    with engine.begin() as conn:
        for i, kind in enumerate(("image", "video")):
            sha = f"{i}" * 64
            conn.execute(
                sa.text(
                    "INSERT INTO assets (id, sha256, kind, mime, bytes, stored_path, created_at)"
                    " VALUES (:id, :sha, :kind, 'x/y', 1, :path, :now)"
                ),
                {
                    "id": ("img_" if kind == "image" else "vid_") + sha,
                    "sha": sha,
                    "kind": kind,
                    "path": f"p/{sha}",
                    "now": now,
                },
            )
        for i, parent in enumerate((None, "clip_0", "clip_1")):
            conn.execute(
                sa.text(
                    "INSERT INTO generations (id, backend, model, prompt, seconds, size,"
                    " parameters, status, progress, source_asset_id, parent_id, relation,"
                    " output_asset_id, details, created_at, updated_at) VALUES (:id, 'local',"
                    " 'local-motion', 'p', 4, '1280x720', '{}', 'completed', 100, :src, :parent,"
                    " :rel, :out, '{}', :now, :now)"
                ),
                {
                    "id": f"clip_{i}", "src": "img_" + "0" * 64, "parent": parent,
                    "rel": "remix_of" if parent else None, "out": "vid_" + "1" * 64, "now": now,
                },
            )  # fmt: skip
        for i in range(2):
            conn.execute(
                sa.text(
                    "INSERT INTO policy_decisions (generation_id, plugin, rule_id, outcome,"
                    " reason, created_at) VALUES (:g, 'p', 'r', 'allow', 'ok', :now)"
                ),
                {"g": f"clip_{i}", "now": now},
            )
        conn.execute(
            sa.text(
                "INSERT INTO verifications (asset_id, verifier, state, codes, details,"
                " checked_at) VALUES (:a, 'v', 'absent', '[]', '{}', :now)"
            ),
            {"a": "vid_" + "1" * 64, "now": now},
        )
    engine.dispose()


def test_a_populated_first_revision_catalog_upgrades_intact(db_url: str):
    seed_first_revision(db_url)
    engine = open_catalog(db_url)
    try:
        assert current_revisions(engine) == head_revisions()
        with engine.connect() as conn:
            counts = {
                table: conn.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar_one()
                for table in ROWS
            }
            chain = conn.execute(sa.text("SELECT id, parent_id FROM generations ORDER BY id")).all()
        assert counts == ROWS
        assert [tuple(r) for r in chain] == [
            ("clip_0", None), ("clip_1", "clip_0"), ("clip_2", "clip_1"),
        ]  # fmt: skip
    finally:
        engine.dispose()
