"""Provenance commands: ``verify``, ``audit``, ``import``, ``trust`` and ``signing``.

Each one calls a library function (:mod:`core.provenance`: credentials, audit,
importer, trust, signing) and only prints what it returns.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from rich.tree import Tree

from core.api.errors import ReelvaultError
from core.api.types import VerificationResult, VerificationState
from core.cli.base import (
    Columns,
    cli,
    console,
    echo_err,
    get_app,
    json_option,
    parse_when,
    plain,
    print_json,
    print_rows,
    progress_bar,
    say,
    warn,
)
from core.provenance.credentials import VerifyReport, verify_target

# audit, import, trust and signing are imported by their commands: importing decodes
# media (PIL, PyAV), which ``verify`` never needs.

if TYPE_CHECKING:
    from rich.text import Text

    from core.provenance.trust import Anchor

ALARMING = (VerificationState.INVALID, VerificationState.UNREADABLE)
"""States shown in capitals: something is wrong with the file, not merely unknown."""


def state_text(state: VerificationState) -> str:
    """``valid: signed, signer not trusted; content matches``: the state and what it means."""
    name = state.value.upper() if state in ALARMING else state.value
    return f"{name}: {state.summary}"


# -- verify ----------------------------------------------------------------------------


@cli.command(name="verify")
@click.argument("target")
@click.option(
    "--require",
    type=click.Choice(["trusted", "valid"]),
    default="valid",
    show_default=True,
    help="Exit 0 only at this state (trusted also satisfies valid).",
)
@json_option
@click.pass_context
def verify_command(ctx: click.Context, target: str, require: str, as_json: bool) -> None:
    """Check the Content Credentials of a file (PATH) or a cataloged clip or asset (ID)."""
    report = verify_target(get_app(ctx), target)
    required = VerificationState(require)
    if as_json:
        print_json(_verify_json(report, required))
    else:
        _print_verify(report)
    if not report.meets(required):
        states = ", ".join(f"{r.state}" for r in report.results)
        name = report.generation_id or report.asset_id or report.path.name
        raise ReelvaultError(f"{name} is {states}; {require} required")


def _verify_json(report: VerifyReport, required: VerificationState) -> dict[str, Any]:
    return {
        "path": str(report.path),
        "mime": report.mime,
        "asset_id": report.asset_id,
        "generation_id": report.generation_id,
        "required": required.value,
        "ok": report.meets(required),
        "results": [
            {
                "verifier": r.verifier,
                "state": r.state.value,
                "codes": list(r.codes),
                "details": dict(r.details),
            }
            for r in report.results
        ],
    }


def _print_verify(report: VerifyReport) -> None:
    where = f"  ({report.generation_id or report.asset_id})" if report.asset_id else ""
    say(f"file      {report.path}{where}")
    for result in report.results:
        _print_result(result)


def _print_result(result: VerificationResult) -> None:
    lines = [
        f"verifier  {result.verifier}",
        f"state     {state_text(result.state)}",
    ]
    if result.codes:
        lines.append(f"codes     {', '.join(result.codes)}")
    if result.details.get("error"):
        lines.append(f"error     {result.details['error']}")
    say(*lines)
    manifest = result.details.get("manifest")
    if isinstance(manifest, dict):
        # Every label is plain Text: what a file's credentials say ("[/oops]" in a prompt or a
        # title) is shown as it is, never parsed as rich markup.
        tree = Tree(plain(f"manifest  {_manifest_line(manifest)}"))
        for line in _manifest_facts(manifest):
            tree.add(plain(line))
        _add_ingredients(tree, manifest)
        console().print(tree)


def _manifest_line(manifest: dict[str, Any]) -> str:
    parts = [manifest.get("label") or "?"]
    if manifest.get("claim_generator"):
        parts.append(f"by {manifest['claim_generator']}")
    return "  ".join(parts)


def _manifest_facts(manifest: dict[str, Any]) -> list[str]:
    facts = []
    if manifest.get("signer") or manifest.get("issuer"):
        facts.append(f"signer {manifest.get('signer')} (issuer {manifest.get('issuer')})")
    if manifest.get("signed_at"):
        facts.append(f"signed {manifest['signed_at']} (timestamped)")
    actions = [a.get("action") for a in manifest.get("actions") or [] if a.get("action")]
    if actions:
        source_type = (manifest.get("digital_source_type") or "").rsplit("/", 1)[-1]
        facts.append(f"actions {', '.join(actions)}" + (f" ({source_type})" if source_type else ""))
    generation = manifest.get("generation")
    if isinstance(generation, dict):
        made = f"{generation.get('backend')}/{generation.get('model')}"
        facts.append(f"made by reelvault {made}: {generation.get('prompt')!r}")
    return facts


def _add_ingredients(tree: Tree, manifest: dict[str, Any]) -> None:
    for ingredient in manifest.get("ingredients") or []:
        inner = ingredient.get("manifest")
        label = f"{ingredient.get('relationship')}  {ingredient.get('title')!r}"
        if ingredient.get("format"):
            label += f"  {ingredient['format']}"
        failed = [f.get("code") for f in ingredient.get("failures") or [] if f.get("code")]
        if failed:  # its own credentials failed when it was added: never hidden by its parent
            label += f"  FAILED {', '.join(dict.fromkeys(failed))}"
        if isinstance(inner, dict):
            branch = tree.add(plain(f"{label}  {_manifest_line(inner)}{_elided(inner)}"))
            for line in _manifest_facts(inner):
                branch.add(plain(line))
            _add_ingredients(branch, inner)
        else:
            tree.add(plain(f"{label}  (no credentials)"))


def _elided(manifest: dict[str, Any]) -> str:
    """Why a node of the verifier's tree shows no ingredients of its own."""
    if manifest.get("repeated"):
        return "  (shown in full elsewhere in this tree)"
    if manifest.get("truncated"):
        return "  (not shown: the tree is too large)"
    return "  (not in the file)" if manifest.get("missing") else ""


# -- audit -----------------------------------------------------------------------------


@cli.command(name="audit")
@click.option("--since", help="Only files added at or after: a date, a time, or an age like 7d.")
@json_option
@click.pass_context
def audit_command(ctx: click.Context, since: str | None, as_json: bool) -> None:
    """Re-hash every stored file, re-verify its credentials and check lineage against them."""
    from core.provenance.audit import audit, describe

    app = get_app(ctx)
    with progress_bar("auditing") as on_progress:
        report = audit(app, since=parse_when(since) if since else None, on_progress=on_progress)
    counts: list[tuple[str | Text, int]] = [
        ("files checked", report.checked),
        ("placeholders (no file)", report.placeholders),
        *((plain(f"credentials {state}"), n) for state, n in sorted(report.states.items())),
        *((kind.replace("_", " "), n) for kind, n in report.counts().items()),
    ]  # a verifier's state is shown as it is: plain text, never markup
    columns: Columns[tuple[str | Text, int]] = {
        "check": lambda r: r[0],
        "count": lambda r: str(r[1]),
    }
    print_rows(counts, columns, as_json=as_json, empty_message=None, json_document=report.to_json(),
               whole=(), numbers=("count",))  # fmt: skip
    if not as_json:
        for finding in report.findings:
            say(describe(finding))
        for note in report.notes:
            say(f"note: {describe(note)}")
    if not report.clean:
        raise ReelvaultError(f"audit found {len(report.findings)} problem(s)")


# -- import ----------------------------------------------------------------------------


@cli.command(name="import")
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--recursive", "-r", is_flag=True, help="Import what folders contain, at any depth.")
@json_option
@click.pass_context
def import_command(
    ctx: click.Context, paths: tuple[Path, ...], recursive: bool, as_json: bool
) -> None:
    """Catalog existing images and videos; rebuild lineage from their credentials."""
    from core.provenance.importer import import_paths

    app = get_app(ctx)
    with progress_bar("importing") as on_progress:
        report = import_paths(app, list(paths), recursive=recursive, on_progress=on_progress)
    if as_json:
        print_json({"counts": report.counts(), "files": [o.to_json() for o in report.outcomes]})
    else:
        for outcome in report.outcomes:
            line = f"{outcome.status:<9}{outcome.path}"
            if outcome.message:
                line += f"  {outcome.message}"
            if outcome.states:
                line += f"  [{'; '.join(outcome.states)}]"
            say(line, err=outcome.failed)
        if not report.outcomes:
            echo_err("no files found")
    if report.failed:
        raise ReelvaultError(
            f"{len(report.failed)} of {len(report.outcomes)} file(s) could not be imported"
        )


# -- trust -----------------------------------------------------------------------------


@cli.group(name="trust")
def trust_group() -> None:
    """Trust anchors: signers that chain to one verify as trusted, others as valid."""


@trust_group.command(name="add")
@click.argument("path", type=click.Path(path_type=Path))
@click.pass_context
def trust_add_command(ctx: click.Context, path: Path) -> None:
    """Trust the certificates in a PEM file (or a folder of PEM files)."""
    from core.provenance.trust import add_anchors

    for anchor in add_anchors(get_app(ctx).settings, path):
        click.echo(f"trusted  {anchor.short}  {anchor.subject}")


@trust_group.command(name="list")
@json_option
@click.pass_context
def trust_list_command(ctx: click.Context, as_json: bool) -> None:
    """Every trust anchor in use, where it comes from, and when it expires."""
    from core.provenance.trust import list_anchors

    anchors, problems = list_anchors(get_app(ctx, warn_failed_plugins=False).settings)
    document = {
        "anchors": [a.to_json() for a in anchors],
        "problems": [{"path": str(p.path), "problem": p.problem} for p in problems],
    }
    columns: Columns[Anchor] = {  # a certificate's subject is anyone's text: never markup
        "fingerprint": lambda anchor: anchor.short,
        "subject": lambda anchor: plain(anchor.subject),
        "expires": lambda anchor: anchor.not_after.date().isoformat(),
        "from": lambda anchor: plain("trust folder" if anchor.managed else str(anchor.path)),
    }
    print_rows(
        anchors,
        columns,
        as_json=as_json,
        empty_message="no trust anchors: signed files verify as valid (signed, signer not trusted)",
        json_document=document,
    )
    if as_json:
        return
    for problem in problems:
        warn(f"{problem.path}: {problem.problem}")


@trust_group.command(name="remove")
@click.argument("fingerprint")
@click.pass_context
def trust_remove_command(ctx: click.Context, fingerprint: str) -> None:
    """Stop trusting an anchor, given by fingerprint prefix (or exact subject)."""
    from core.provenance.trust import remove_anchor

    anchor = remove_anchor(get_app(ctx).settings, fingerprint)
    click.echo(f"removed  {anchor.short}  {anchor.subject}")


# -- signing ---------------------------------------------------------------------------


@cli.group(name="signing")
def signing_group() -> None:
    """The certificate the clips made here are signed with."""


@signing_group.command(name="init")
@click.option("--force", is_flag=True, help="Replace an existing development certificate.")
@click.pass_context
def signing_init_command(ctx: click.Context, force: bool) -> None:
    """Make a local development CA and signing certificate, and trust the CA."""
    from core.provenance.signing import init_signing

    setup = init_signing(get_app(ctx).settings, force=force)
    click.echo(f"chain    {setup.chain_path}")
    click.echo(f"key      {setup.key_path} (readable only by you)")
    click.echo(f"trusted  {setup.anchor.short}  {setup.anchor.subject}")
    if setup.overrides:
        warn("[signing] in config.toml names another certificate; it is used instead")


@signing_group.command(name="status")
@json_option
@click.pass_context
def signing_status_command(ctx: click.Context, as_json: bool) -> None:
    """What new clips will be signed with, and whether it is trusted here."""
    from core.provenance.signing import signing_status

    status = signing_status(get_app(ctx, warn_failed_plugins=False).settings)
    if as_json:
        print_json(status.to_json())
        return
    if status.problem:
        click.echo(f"not signing: {status.problem}")
    if status.subject is None:
        return
    click.echo(f"chain    {status.chain_path}")
    click.echo(f"signer   {status.subject}  (issuer {status.issuer})")
    click.echo(f"expires  {status.not_after.isoformat() if status.not_after else '?'}")
    click.echo(f"signs    clips of: {', '.join(status.backends)}")
    click.echo("trusted  " + ("yes, here" if status.trusted_here else "no (valid, not trusted)"))
