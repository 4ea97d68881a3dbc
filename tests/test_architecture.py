"""The package layout is a contract, and these tests keep it one.

``core.api`` is the only door into the host for plugins and the catalog; the service
subpackages never reach up into the command line or the web app; core subpackages do not
import each other both ways; modules stay small enough to read. A failure names the
offending module and import, so the fix is where the message points.

Known exceptions live in explicit allow-lists below. They exist to shrink: an entry that
no longer needs to be there fails too, so it is removed the moment it is fixed.
"""

from __future__ import annotations

import ast
import dataclasses
import itertools
import re
from collections.abc import Iterator
from pathlib import Path

import grimp
import pytest

from core.api.types import GenerationStatus
from tests.conftest import REPO

TOP_LEVEL_PACKAGES = ("core", "plugins", "catalog")
PUBLIC_API = "core.api"
SERVICE_PACKAGES = (
    "core.generation",
    "core.provenance",
    "core.remote",
    "core.views",
    "core.library",
    "core.media",
    "core.host",
)
FRONT_ENDS = ("core.cli", "core.web")

# Pairs of core subpackages that import each other today. Empty: keep it so. Should a cycle
# ever have to be tolerated for a while, name it here as ("core.a", "core.b"), sorted.
KNOWN_CYCLES: frozenset[tuple[str, str]] = frozenset()

MAX_MODULE_LINES = 500
# Modules over the limit today, each being split into smaller modules. Remove an entry as
# soon as its module is under the limit (the stale-entry test insists).
OVERSIZED_MODULES: frozenset[str] = frozenset()


@pytest.fixture(scope="module")
def graph() -> grimp.ImportGraph:
    """The import graph of all three packages, including imports under ``TYPE_CHECKING``
    and inside functions: a deferred import is still a dependency."""
    return grimp.build_graph(*TOP_LEVEL_PACKAGES, cache_dir=None)


def _modules_in(graph: grimp.ImportGraph, package: str) -> set[str]:
    return {package} | graph.find_descendants(package)


def _in_package(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def _project_imports(graph: grimp.ImportGraph, package: str) -> Iterator[tuple[str, str]]:
    """Every (importer, imported) pair from ``package`` into one of the project's packages."""
    for importer in sorted(_modules_in(graph, package)):
        for imported in sorted(graph.find_modules_directly_imported_by(importer)):
            if imported.split(".")[0] in TOP_LEVEL_PACKAGES:
                yield importer, imported


def _describe(pairs: list[tuple[str, str]]) -> str:
    return "\n".join(f"  {importer} imports {imported}" for importer, imported in pairs)


def _own_plugin(module: str) -> str:
    """The plugin a module belongs to: ``plugins.x`` for ``plugins.x`` and ``plugins.x.y``.

    A plugin too big for one module is a package, and its modules import each other; that
    stays inside the plugin, so it is allowed, while one plugin importing another is not.
    """
    parts = module.split(".")
    return ".".join(parts[:2]) if len(parts) > 1 else "(none: the plugins package itself)"


def test_a_plugin_is_its_own_package_and_no_other():
    assert _own_plugin("plugins.local_backend.render") == "plugins.local_backend"
    assert _in_package("plugins.local_backend.motion", _own_plugin("plugins.local_backend"))
    assert not _in_package("plugins.sora_backend", _own_plugin("plugins.local_backend.jobs"))
    assert not _in_package("plugins.local_backend", _own_plugin("plugins"))


def test_plugins_import_only_the_public_api(graph: grimp.ImportGraph):
    offending = [
        (importer, imported)
        for importer, imported in _project_imports(graph, "plugins")
        if not (_in_package(imported, PUBLIC_API) or _in_package(imported, _own_plugin(importer)))
    ]
    assert not offending, (
        f"plugins may import only {PUBLIC_API} (and its submodules) and their own package:\n"
        + _describe(offending)
    )


def test_catalog_imports_only_the_public_api_and_itself(graph: grimp.ImportGraph):
    offending = [
        (importer, imported)
        for importer, imported in _project_imports(graph, "catalog")
        if not (_in_package(imported, PUBLIC_API) or _in_package(imported, "catalog"))
    ]
    assert not offending, (
        f"the catalog may import only {PUBLIC_API} and catalog itself:\n" + _describe(offending)
    )


def test_public_api_imports_nothing_else_from_the_project(graph: grimp.ImportGraph):
    offending = [
        (importer, imported)
        for importer, imported in _project_imports(graph, PUBLIC_API)
        if not _in_package(imported, PUBLIC_API)
    ]
    assert not offending, (
        f"{PUBLIC_API} must stand on its own (no core, catalog or plugins beyond it):\n"
        + _describe(offending)
    )


@pytest.mark.parametrize("service", SERVICE_PACKAGES)
def test_services_never_reach_the_front_ends(graph: grimp.ImportGraph, service: str):
    """The CLI and the web app call services; a service importing them, even through a
    third module, would make the library depend on its own user interface."""
    chains = [
        chain
        for front_end in FRONT_ENDS
        for chain in graph.find_shortest_chains(
            importer=service, imported=front_end, as_packages=True
        )
    ]
    assert not chains, f"{service} must not import {' or '.join(FRONT_ENDS)}:\n" + "\n".join(
        "  " + " -> ".join(chain) for chain in sorted(chains)
    )


def _core_subpackages(graph: grimp.ImportGraph) -> list[str]:
    """The subpackages of ``core`` (``core.__main__`` is a module, not a concern)."""
    return sorted(child for child in graph.find_children("core") if graph.find_children(child))


def _mutual_imports(graph: grimp.ImportGraph) -> set[tuple[str, str]]:
    """Pairs (A, B) of core subpackages where A imports B and B imports A."""
    return {
        (first, second)
        for first, second in itertools.combinations(_core_subpackages(graph), 2)
        if graph.direct_import_exists(importer=first, imported=second, as_packages=True)
        and graph.direct_import_exists(importer=second, imported=first, as_packages=True)
    }


def test_no_import_cycles_between_core_subpackages(graph: grimp.ImportGraph):
    cycles = _mutual_imports(graph) - KNOWN_CYCLES
    details = []
    for first, second in sorted(cycles):
        there = graph.find_shortest_chain(importer=first, imported=second, as_packages=True)
        back = graph.find_shortest_chain(importer=second, imported=first, as_packages=True)
        details.append(f"  {first} <-> {second}: {' -> '.join(there)}; {' -> '.join(back)}")
    assert not cycles, "core subpackages import each other both ways:\n" + "\n".join(details)


def test_known_cycles_are_still_cycles(graph: grimp.ImportGraph):
    stale = KNOWN_CYCLES - _mutual_imports(graph)
    assert not stale, f"remove these fixed cycles from KNOWN_CYCLES: {sorted(stale)}"


def _python_modules() -> Iterator[Path]:
    for package in TOP_LEVEL_PACKAGES:
        yield from sorted((REPO / package).rglob("*.py"))


def _line_counts() -> dict[str, int]:
    return {
        path.relative_to(REPO).as_posix(): len(path.read_text().splitlines())
        for path in _python_modules()
    }


def test_modules_stay_under_the_line_limit():
    too_long = {
        module: lines
        for module, lines in _line_counts().items()
        if lines > MAX_MODULE_LINES and module not in OVERSIZED_MODULES
    }
    assert not too_long, f"modules over {MAX_MODULE_LINES} lines; split them:\n" + "\n".join(
        f"  {module}: {lines} lines" for module, lines in sorted(too_long.items())
    )


def test_oversized_allow_list_only_names_oversized_modules():
    counts = _line_counts()
    stale = sorted(
        module for module in OVERSIZED_MODULES if counts.get(module, 0) <= MAX_MODULE_LINES
    )
    assert not stale, f"remove these from OVERSIZED_MODULES, they are short now: {stale}"


STATUS_READERS = ("core/cli", "core/web", "core/views", "catalog")
"""Where a generation's status is shown or stored: each names it through the one enum."""


def _status_literals(source: str, statuses: set[str]) -> list[tuple[int, str]]:
    """(line, text) of each string constant in ``source`` that spells a status; JSON keys
    aside (``{"failed": 3}`` counts failures, it does not name a status)."""
    tree = ast.parse(source)
    keys = {id(key) for node in ast.walk(tree) if isinstance(node, ast.Dict) for key in node.keys}
    return sorted(
        (node.lineno, node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and node.value in statuses and id(node) not in keys
    )


def test_statuses_are_named_through_the_one_enum_not_spelled_out():
    """A migration keeps its literals (it must not change when the enum does); everything
    else says ``GenerationStatus.COMPLETED``, so renaming a status cannot miss a place."""
    statuses = {status.value for status in GenerationStatus}
    spelled = [
        f"  {path.relative_to(REPO).as_posix()}:{line}: {text!r}"
        for folder in STATUS_READERS
        for path in sorted((REPO / folder).rglob("*.py"))
        if "migrations" not in path.relative_to(REPO).parts
        for line, text in _status_literals(path.read_text(encoding="utf-8"), statuses)
    ]
    assert not spelled, "use GenerationStatus instead of these literals:\n" + "\n".join(spelled)


def test_a_spelled_out_status_is_found():
    source = 'done = row.status == "completed"\ncounts = {"failed": 1}\nlabel = "queued"\n'
    assert _status_literals(source, {"completed", "failed", "queued"}) == [
        (1, "completed"),
        (3, "queued"),
    ]


def _readme_layout() -> list[str]:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    section = readme.split("\n## Layout\n", 1)[1]
    block = re.search(r"^```\n(.*?)^```$", section, re.MULTILINE | re.DOTALL)
    assert block, "README's Layout section has no tree"
    return block.group(1).splitlines()


def test_readme_layout_shows_every_room_on_one_line(graph: grimp.ImportGraph):
    """A room added (or renamed) in core/ shows in the README's tree, once."""
    rooms = [f"{room.replace('.', '/')}/" for room in _core_subpackages(graph)]
    named = [line.split()[0] for line in _readme_layout() if line.strip()]
    for room in [*rooms, "plugins/", "catalog/"]:
        assert named.count(room) == 1, f"README's Layout names {room} {named.count(room)} times"
    assert not [n for n in named if n.startswith("core/") and n not in rooms], named


def test_architecture_page_draws_the_flow_and_says_where_new_things_go():
    page = (REPO / "docs" / "architecture.md").read_text(encoding="utf-8")
    assert "```mermaid" in page
    where = page.split("## Where new things go", 1)[1]
    for thing in ("A new backend", "A new policy rule", "A new command", "A new table"):
        assert f"**{thing}**" in where, f"docs/architecture.md does not say where {thing} goes"
    assert "COMMANDS" in where and "catalog/migrations/versions/" in where


def test_every_public_api_module_says_what_it_offers():
    """``__all__`` in each ``core.api`` module: what a plugin may rely on is written down,
    and every name it lists exists."""
    import importlib

    missing, unknown = [], []
    for path in sorted((REPO / "core" / "api").glob("*.py")):
        name = "core.api" if path.stem == "__init__" else f"core.api.{path.stem}"
        module = importlib.import_module(name)
        offered = getattr(module, "__all__", None)
        if offered is None:
            missing.append(name)
        else:
            unknown += [f"{name}.{n}" for n in offered if not hasattr(module, n)]
    assert not missing, f"these core.api modules have no __all__: {missing}"
    assert not unknown, f"__all__ names what does not exist: {unknown}"


def test_generation_catalogs_its_outputs_through_ingest_not_the_importer(
    graph: grimp.ImportGraph,
):
    """One way into the catalog for a file: ``import`` and a finished clip both call
    ``core.provenance.ingest``; generation does not reach the importer, even indirectly."""
    chains = graph.find_shortest_chains(
        importer="core.generation", imported="core.provenance.importer", as_packages=True
    )
    assert not chains, "\n".join(" -> ".join(chain) for chain in sorted(chains))
    for user in ("core.generation.finish", "core.provenance.importer"):
        assert graph.direct_import_exists(importer=user, imported="core.provenance.ingest")


def _shared_warnings(path: Path) -> list[int]:
    """Lines of one module reading or writing the application's ``warnings``."""
    owners = {"app", "self.app", "application"} | ({"self"} if path.name == "app.py" else set())
    return [
        node.lineno
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        if isinstance(node, ast.Attribute)
        and node.attr == "warnings"
        and ast.unparse(node.value) in owners
    ]


def test_warnings_come_back_with_a_result_not_through_the_application():
    """A shared ``app.warnings`` list that workers never emptied is gone: a result holds
    its own warnings (``GenerationResult.warnings``)."""
    from core.generation import GenerationResult

    shared = [
        f"{path.relative_to(REPO).as_posix()}:{line}"
        for path in _python_modules()
        for line in _shared_warnings(path)
    ]
    assert shared == []
    assert "warnings" in {field.name for field in dataclasses.fields(GenerationResult)}


def test_who_holds_a_job_is_a_claim_not_owner_flags():
    """Worker and one-shot behaviour used to be switched by flags derived from an
    ``owner`` value across four functions; a :class:`Claim` (a worker's lease or a
    finisher's claim) now says it, so no generation function takes such flags."""
    flags = {"owner", "is_worker", "worker_owned", "one_shot"}
    found = [
        f"{path.relative_to(REPO).as_posix()}:{node.lineno} {node.name}({argument.arg})"
        for path in sorted((REPO / "core" / "generation").glob("*.py"))
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        for argument in [*node.args.args, *node.args.kwonlyargs]
        if argument.arg in flags
    ]
    assert found == []
    run_job = ast.parse((REPO / "core" / "generation" / "run.py").read_text(encoding="utf-8"))
    (signature,) = [
        node
        for node in run_job.body
        if isinstance(node, ast.FunctionDef) and node.name == "run_job"
    ]
    assert "claim: Claim | None" in ast.unparse(signature.args)


def test_tables_are_printed_by_print_rows_alone():
    """ "A table, or ``--json``, or nothing" is answered in one place
    (``core.cli.base.print_rows``, which lays its cells out through ``core.cli.layout``):
    no command module builds a rich table of its own."""
    builders = [
        path.relative_to(REPO).as_posix()
        for path in sorted((REPO / "core").rglob("*.py"))
        if "rich.table" in path.read_text()
    ]
    assert builders == ["core/cli/layout.py"]
