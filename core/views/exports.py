"""The catalog in standard formats: JSON Lines, CSV, and W3C PROV-JSON.

Exports stream: clips are read in batches through a read-only session (no write lock is
held, however long the export takes), and each batch is written before the next is read,
so memory stays flat on a catalog of any size.

PROV (https://www.w3.org/TR/prov-dm/) is built with the ``prov`` package, the reference
Python implementation: every stored file is an *entity*, every generation attempt an
*activity*, backends and models are *agents*. A clip's video ``wasGeneratedBy`` its
generation, which ``used`` the source still (and, for a remix, the parent's video) and
``wasAssociatedWith`` the backend and the model; the video ``wasDerivedFrom`` the still
and the parent's video. A PROV-JSON document is one JSON object with a section per kind
of record, so a streamed export writes each batch's records into per-section spool files
(spilling to disk past a few MB) and joins them at the end; every batch is serialised by
``prov`` itself, and relations carry explicit identifiers so batches never collide.
"""

from __future__ import annotations

import contextlib
import csv
import json
import shutil
import tempfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import IO, Any, TextIO

from prov.constants import XSD_LONG
from prov.model import PROV, Literal, Namespace, ProvDocument
from sqlmodel import Session

from catalog.exports import (
    backend_model_pairs,
    decisions_by_generation,
    generation_batches,
    parent_videos,
    referenced_asset_batches,
)
from catalog.lineage import LineageNode, clips_from_source, lineage
from catalog.models import Asset, Generation, PolicyDecisionRecord
from catalog.organise import Organised, organised_by_id
from catalog.queries import ClipFilter, assets_by_id, latest_states
from catalog.readonly import reading
from core.api.errors import RequestError
from core.api.types import Relation
from core.host.app import Reelvault
from core.views.report import ROLES, decision_dict, error_dict, files_dict, generation_summary

FORMATS = ("jsonl", "csv", "prov-json")
BATCH = 500
"""Clips (or files) read and written at a time."""
SPOOL_IN_MEMORY = 4 << 20

RV = Namespace("rv", "urn:reelvault:")
NAMESPACES = (
    RV,
    Namespace("rvbackend", "urn:reelvault:backend:"),
    Namespace("rvmodel", "urn:reelvault:model:"),
)
PROV_SECTIONS = (
    "agent",
    "entity",
    "activity",
    "wasGeneratedBy",
    "used",
    "wasDerivedFrom",
    "wasAssociatedWith",
)
CSV_COLUMNS = (
    "id",
    "created_at",
    "completed_at",
    "status",
    "backend",
    "model",
    "prompt",
    "seconds",
    "size",
    "parent_id",
    "relation",
    "source_asset_id",
    "source_sha256",
    "video_asset_id",
    "video_sha256",
    "thumbnail_sha256",
    "provenance",
    "policy",
    "error_code",
    "error_message",
    "title",
    "rating",
    "tags",
)


def export(app: Reelvault, fmt: str, filters: ClipFilter, out: TextIO) -> int:
    """Write every clip ``filters`` selects (the whole catalog by default); returns the count.

    The ``limit`` of ``filters`` is ignored: an export is never cut short.
    """
    if fmt not in FORMATS:
        raise RequestError(f"unknown export format {fmt!r} (choose {', '.join(FORMATS)})")
    with reading(app.engine) as session:
        if fmt == "prov-json":
            return write_prov_json(session, filters, out)
        records = clip_records(session, filters)
        return write_csv(records, out) if fmt == "csv" else write_jsonl(records, out)


# --- rows --------------------------------------------------------------------------------


def clip_records(session: Session, filters: ClipFilter) -> Iterator[dict[str, Any]]:
    """One self-contained record per clip: request, outcome, files, decisions, provenance.

    Records are portable: they hold no path on this machine (``files_dict`` gets no store).
    """
    for batch in generation_batches(session, filters, BATCH):
        ids = [g.id for g in batch]
        asset_ids = [getattr(g, column) for g in batch for _, column in ROLES]
        assets = assets_by_id(session, asset_ids)
        states = latest_states(session, asset_ids)
        decisions = decisions_by_generation(session, ids)
        extras = organised_by_id(session, ids, clips=True)
        for g in batch:
            yield _record(g, assets, states, decisions.get(g.id, []), extras[g.id])


def _record(
    g: Generation,
    assets: Mapping[str, Asset],
    states: Mapping[str, str],
    decisions: Sequence[PolicyDecisionRecord],
    extra: Organised,
) -> dict[str, Any]:
    """A clip's record; what a person added (tags, title, note, rating) travels with it,
    because a library moved elsewhere should not lose its organisation."""
    return {
        **generation_summary(g),
        "parameters": g.parameters,
        "remote_job_id": g.remote_job_id,
        "error": error_dict(g),
        "updated_at": g.updated_at.isoformat(),
        "completed_at": g.completed_at.isoformat() if g.completed_at else None,
        "provenance": states.get(g.output_asset_id or ""),
        **files_dict(g, assets, None, lambda asset: {"provenance": states.get(asset.id)}),
        "policy_decisions": [decision_dict(d) for d in decisions],
        **extra.as_dict(),
    }


def write_jsonl(records: Iterable[Mapping[str, Any]], out: TextIO) -> int:
    count = 0
    for record in records:
        out.write(json.dumps(record, ensure_ascii=False, sort_keys=True) + "\n")
        count += 1
    return count


FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_safe(value: Any) -> Any:
    """Text a spreadsheet would run as a formula (a prompt like ``=HYPERLINK(...)``) is
    prefixed with an apostrophe, so opening an export never executes what a user typed."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def write_csv(records: Iterable[Mapping[str, Any]], out: TextIO) -> int:
    """One row per clip, the columns a spreadsheet needs; JSONL has everything."""
    writer = csv.DictWriter(out, fieldnames=CSV_COLUMNS)
    writer.writeheader()
    count = 0
    for record in records:
        video, source, thumb = record["video"], record["source"], record["thumbnail"]
        error = record["error"] or {}
        policy = "; ".join(
            f"{d['outcome']} {d['plugin']}/{d['rule_id']}" for d in record["policy_decisions"]
        )
        row = {
            **{key: record[key] for key in CSV_COLUMNS if key in record},
            "source_sha256": source["sha256"] if source else None,
            "video_asset_id": video["id"] if video else None,
            "video_sha256": video["sha256"] if video else None,
            "thumbnail_sha256": thumb["sha256"] if thumb else None,
            "policy": policy,
            "error_code": error.get("code"),
            "error_message": error.get("message"),
            "tags": " ".join(record.get("tags") or ()),
        }
        writer.writerow({key: spreadsheet_safe(value) for key, value in row.items()})
        count += 1
    return count


# --- PROV ----------------------------------------------------------------------------------


def new_prov_document() -> ProvDocument:
    doc = ProvDocument()
    for namespace in NAMESPACES:
        doc.add_namespace(namespace)
    return doc


def _model_agent(backend: str, model: str) -> str:
    return f"rvmodel:{backend}.{model}"


def add_agents(doc: ProvDocument, pairs: Iterable[tuple[str, str]]) -> None:
    """Backends and their models, as software agents."""
    pairs = sorted({(backend, model) for backend, model in pairs})
    for backend in sorted({b for b, _ in pairs}):
        doc.agent(
            f"rvbackend:{backend}", {PROV["type"]: PROV["SoftwareAgent"], "prov:label": backend}
        )
    for backend, model in pairs:
        doc.agent(
            _model_agent(backend, model),
            {PROV["type"]: PROV["SoftwareAgent"], "prov:label": model, "rv:backend": backend},
        )


def add_asset(doc: ProvDocument, asset: Asset, state: str | None) -> None:
    """A stored file (or a placeholder known from credentials) as an entity."""
    attrs: dict[str, Any] = {
        "prov:type": RV[asset.kind],
        "prov:label": asset.original_name,
        "rv:sha256": asset.sha256,
        "rv:mime": asset.mime,
        # xsd:long, as prov would call any int an xsd:int and a file may pass 2 GiB
        "rv:bytes": Literal(str(asset.bytes), XSD_LONG) if asset.bytes is not None else None,
        "rv:width": asset.width,
        "rv:height": asset.height,
        "rv:duration": asset.duration,
        "rv:fps": asset.fps,
        "rv:frameCount": asset.frame_count,
        "rv:c2paManifest": asset.manifest_label,
        "rv:provenance": state,
        "rv:placeholder": True if asset.is_placeholder else None,
    }
    doc.entity(f"rv:{asset.id}", _present(attrs))


def add_generation(doc: ProvDocument, g: Generation, parent_video: str | None) -> None:
    """A generation attempt as an activity, with what it used, made and was run by."""
    me = f"rv:{g.id}"
    attrs = {
        "prov:type": RV["generation"],
        "prov:label": g.prompt,
        "rv:status": g.status,
        "rv:seconds": g.seconds,
        "rv:size": g.size,
        "rv:parameters": json.dumps(g.parameters, sort_keys=True) if g.parameters else None,
        "rv:relation": g.relation,
        "rv:errorCode": g.error_code,
    }
    doc.activity(me, g.created_at, g.completed_at, _present(attrs))
    doc.wasAssociatedWith(
        me,
        f"rvbackend:{g.backend}",
        identifier=f"{me}.backend",
        other_attributes={"prov:role": RV["backend"]},
    )
    doc.wasAssociatedWith(
        me,
        _model_agent(g.backend, g.model),
        identifier=f"{me}.model",
        other_attributes={"prov:role": RV["model"]},
    )
    # A variant's parent video is kin (the same shot by another model), not something used.
    derived = Relation.derives(g.relation)
    used = {
        "source": g.source_asset_id,
        "input": g.input_asset_id,
        "parent": parent_video if derived else None,
    }
    for role, asset_id in used.items():
        if asset_id:
            doc.used(
                me,
                f"rv:{asset_id}",
                g.created_at,
                identifier=f"{me}.used.{role}",
                other_attributes={"prov:role": RV[role]},
            )
    made = {
        "video": g.output_asset_id,
        "thumbnail": g.thumbnail_asset_id,
        "spritesheet": g.spritesheet_asset_id,
    }
    for variant, asset_id in made.items():
        if asset_id:
            doc.wasGeneratedBy(
                f"rv:{asset_id}", me, g.completed_at, identifier=f"{me}.generated.{variant}"
            )
    if g.input_asset_id and g.source_asset_id:  # the still reelvault fitted to the size
        doc.wasDerivedFrom(
            f"rv:{g.input_asset_id}", f"rv:{g.source_asset_id}", me, identifier=f"{me}.fitted"
        )
    if not g.output_asset_id:
        return
    video = f"rv:{g.output_asset_id}"
    if g.source_asset_id:
        doc.wasDerivedFrom(video, f"rv:{g.source_asset_id}", me, identifier=f"{me}.derived.source")
    if parent_video and not derived:
        doc.alternateOf(video, f"rv:{parent_video}")
    elif parent_video:
        doc.wasDerivedFrom(
            video,
            f"rv:{parent_video}",
            me,
            identifier=f"{me}.derived.parent",
            other_attributes={"prov:type": PROV["Revision"], "rv:relation": g.relation},
        )


def _present(attrs: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in attrs.items() if v is not None}


def prov_document(session: Session, generations: Sequence[Generation]) -> ProvDocument:
    """A whole PROV document for a few clips (a lineage), built in memory."""
    doc = new_prov_document()
    parents = parent_videos(session, generations)
    asset_ids = [getattr(g, column) for g in generations for _, column in ROLES]
    asset_ids += list(parents.values())
    states = latest_states(session, asset_ids)
    for asset in sorted(assets_by_id(session, asset_ids).values(), key=lambda a: a.id):
        add_asset(doc, asset, states.get(asset.id))
    add_agents(doc, [(g.backend, g.model) for g in generations])
    for g in generations:
        add_generation(doc, g, parents.get(g.parent_id or ""))
    return doc


def lineage_prov(session: Session, target: Generation | Asset) -> ProvDocument:
    """The PROV document of a clip's family (or of every clip made from a still)."""
    nodes: list[LineageNode] = (
        clips_from_source(session, target.id)
        if isinstance(target, Asset)
        else lineage(session, target.id)
    )
    return prov_document(session, [n.generation for n in nodes])


def prov_json(doc: ProvDocument) -> str:
    return _serialized(doc, indent=2)


def _serialized(doc: ProvDocument, **options: Any) -> str:
    """The document as PROV-JSON text (``serialize`` answers ``None`` only when given a
    destination to write to, which this never does)."""
    text = doc.serialize(format="json", **options)
    assert text is not None
    return text


class _Sections:
    """PROV-JSON sections written batch by batch, joined into one document at the end."""

    def __init__(self, files: contextlib.ExitStack) -> None:
        self._files = files
        self._spools: dict[str, IO[str]] = {}
        self.counts: dict[str, int] = {}
        self.prefix: dict[str, str] = {}

    def add(self, doc: ProvDocument) -> None:
        data = json.loads(_serialized(doc))
        self.prefix.update(data.pop("prefix", {}))
        for section, records in data.items():
            spool = self._spools.get(section)
            if spool is None:
                # closed by the caller's ExitStack, when the whole document is out
                spool = tempfile.SpooledTemporaryFile(SPOOL_IN_MEMORY, mode="w+", encoding="utf-8")  # noqa: SIM115
                spool = self._spools[section] = self._files.enter_context(spool)
            for key, value in records.items():
                separator = "," if self.counts.get(section) else ""
                spool.write(f"{separator}{json.dumps(key)}:{json.dumps(value, ensure_ascii=False)}")
                self.counts[section] = self.counts.get(section, 0) + 1

    def write(self, out: TextIO) -> None:
        out.write('{"prefix":' + json.dumps(self.prefix))
        order = [s for s in PROV_SECTIONS if s in self._spools]
        order += sorted(set(self._spools) - set(order))
        for section in order:
            spool = self._spools[section]
            spool.seek(0)
            out.write(f",{json.dumps(section)}:{{")
            shutil.copyfileobj(spool, out)
            out.write("}")
        out.write("}\n")


def write_prov_json(session: Session, filters: ClipFilter, out: TextIO) -> int:
    """The selected clips as one PROV-JSON document; returns how many activities it has.

    Files come from one pass over the distinct assets the clips (and their parents) refer
    to, so a still used by a thousand clips is one entity, and a remix whose parent is
    outside the selection still names the parent's video it was derived from.
    """
    with contextlib.ExitStack() as files:
        sections = _Sections(files)
        doc = new_prov_document()
        add_agents(doc, backend_model_pairs(session, filters))
        sections.add(doc)
        columns = [column for _, column in ROLES]
        for assets in referenced_asset_batches(session, filters, columns, BATCH):
            doc = new_prov_document()
            states = latest_states(session, [a.id for a in assets])
            for asset in assets:
                add_asset(doc, asset, states.get(asset.id))
            sections.add(doc)
        count = 0
        for batch in generation_batches(session, filters, BATCH):
            doc = new_prov_document()
            parents = parent_videos(session, batch)
            for g in batch:
                add_generation(doc, g, parents.get(g.parent_id or ""))
            sections.add(doc)
            count += len(batch)
        sections.write(out)
        return count
