"""Helpers shared by the provenance, import and audit tests (no tests of its own).

``signed_library`` makes, once per test module, what a user of the local backend with
``signing init`` has: a signed still (as a camera or editor with Content Credentials
would write it), a clip generated from it and a remix of the clip, all signed with a
certificate chain generated in the test run. The tamper helpers damage a copy of a file
the way the reference table in ``shared/reference/c2pa.md`` describes.
"""

from __future__ import annotations

import io
import json
import shutil
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import av
import c2pa
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from catalog.models import Asset
from core.api.settings import Settings
from core.generation import derive, generate
from core.host.app import Reelvault
from core.provenance.signing import init_signing, make_dev_chain
from core.views.report import lineage_dict
from tests.conftest import textured_image

KMS_KEY_ENV = "REELVAULT_TEST_KMS_KEY"


def sign_image(
    settings: Settings,
    source: Path,
    dest: Path,
    mime: str = "image/png",
    *,
    label: str | None = None,
    title: str | None = None,
    ingredients: Sequence[tuple[Path, str, str]] = (),
    signer: tuple[Path, Path] | None = None,
    assertions: Sequence[dict[str, Any]] = (),
) -> Path:
    """Sign a file as a capture device or another C2PA tool would (no reelvault assertion).

    By default with the home's development chain; ``signer`` is another (chain, key) pair.
    ``label`` is the manifest label the signer chooses (C2PA lets it), ``ingredients``
    are (path, mime, relationship) triples embedded with their own credentials.
    ``assertions`` are added as they are: a forger's, such as a made-up reelvault one.
    """
    chain_path, key_path = signer or settings.signing_paths()
    manifest: dict[str, Any] = {
        "claim_generator_info": [{"name": "test-camera", "version": "1.0"}],
        "title": title or source.name,
        "assertions": [
            {
                "label": "c2pa.actions.v2",
                "data": {
                    "actions": [
                        {
                            "action": "c2pa.created",
                            "digitalSourceType": "http://cv.iptc.org/newscodes/"
                            "digitalsourcetype/digitalCapture",
                        }
                    ]
                },
            },
            *assertions,
        ],
    }
    if label:
        manifest["label"] = label
    context = c2pa.Context.from_dict({"builder": {"thumbnail": {"enabled": False}}})
    info = c2pa.C2paSignerInfo(
        c2pa.C2paSigningAlg.ES256, chain_path.read_bytes(), key_path.read_bytes(), None
    )
    with c2pa.Builder(manifest, context) as builder, c2pa.Signer.from_info(info) as signer_:
        for path, ingredient_mime, relationship in ingredients:
            with path.open("rb") as fh:
                builder.add_ingredient(
                    {"title": path.name, "relationship": relationship}, ingredient_mime, fh
                )
        with source.open("rb") as src, dest.open("w+b") as dst:
            builder.sign(signer_, mime, src, dst)
    return dest


def other_signer(folder: Path) -> tuple[Path, Path]:
    """A development chain nobody here trusts, as (chain, key) files in ``folder``."""
    chain = make_dev_chain()
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "chain.pem").write_bytes(chain.chain_pem)
    (folder / "key.pem").write_bytes(chain.key_pem)
    return folder / "chain.pem", folder / "key.pem"


def active_label(path: Path, mime: str = "video/mp4") -> str:
    return manifest_json(path.read_bytes(), mime)["active_manifest"]


def kms_sign(data: bytes) -> bytes:
    """A stand-in for a KMS/HSM: the key is somewhere the signer plugin never reads."""
    import os

    key = serialization.load_pem_private_key(Path(os.environ[KMS_KEY_ENV]).read_bytes(), None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    return key.sign(data, ec.ECDSA(hashes.SHA256()))


def quick_clip(app: Reelvault, still: Path, prompt: str = "pan right", **parameters: Any):
    clip = generate(app, still, prompt, seconds=1, size="640x360", parameters=parameters).generation
    assert clip.status == "completed", (clip.error_code, clip.error_message)
    return clip


def stored_path(app: Reelvault, asset_id: str) -> Path:
    with app.session() as session:
        asset = session.get(Asset, asset_id)
        assert asset is not None and asset.stored_path
        return app.store.root / asset.stored_path


def normalized_lineage(data: dict[str, Any]) -> dict[str, Any]:
    """A lineage tree without what differs between a generated and an imported catalog."""

    def clip(node: dict[str, Any]) -> dict[str, Any]:
        keep = ("id", "backend", "model", "prompt", "seconds", "size", "relation", "parent_id")
        return {
            **{k: node[k] for k in keep},
            "source": node["source_asset_id"],
            "children": [clip(c) for c in node["children"]],
        }

    source = data["source"]
    return {
        "target": data["target"],
        "source": source and {k: source[k] for k in ("id", "sha256", "mime", "width")},
        "clips": [clip(c) for c in data["clips"]],
    }


@dataclass(frozen=True)
class SignedLibrary:
    settings: Settings
    folder: Path  # copies of the three files, as a user would export them
    still: Path
    clip: Path
    remix: Path
    ca_pem: Path
    clip_id: str
    remix_id: str
    lineage: dict[str, Any]  # normalized_lineage of the remix in the original catalog


@pytest.fixture(scope="module")
def signed_library(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SignedLibrary]:
    root = tmp_path_factory.mktemp("signed-library")
    home = root / "home"
    settings = Settings.load(home=home, db_url=f"sqlite:///{home / 'catalog.db'}")
    init_signing(settings)
    folder = root / "export"
    folder.mkdir()
    still = sign_image(
        settings, textured_image(root / "raw.png", 640, 360, seed=3), folder / "still.png"
    )
    app = Reelvault(settings)
    try:
        clip = quick_clip(app, still, "pan right", seed=7)
        remix = derive(app, clip.id, "tilt up").generation
        assert remix.status == "completed", remix.error_message
        shutil.copy(stored_path(app, clip.output_asset_id or ""), folder / "clip.mp4")
        shutil.copy(stored_path(app, remix.output_asset_id or ""), folder / "remix.mp4")
        with app.session() as session:
            lineage = normalized_lineage(lineage_dict(session, remix, app.store))
    finally:
        app.close()
    for path in folder.iterdir():
        path.chmod(0o644)
    yield SignedLibrary(
        settings=settings,
        folder=folder,
        still=folder / "still.png",
        clip=folder / "clip.mp4",
        remix=folder / "remix.mp4",
        ca_pem=settings.signing_dir / "ca.pem",
        clip_id=clip.id,
        remix_id=remix.id,
        lineage=lineage,
    )


# -- tampering, as in the reference table ---------------------------------------------


def boxes(data: bytes) -> dict[str, tuple[int, int]]:
    """Top-level MP4 boxes: type -> (offset, size)."""
    found, offset = {}, 0
    while offset + 8 <= len(data):
        size = int.from_bytes(data[offset : offset + 4], "big")
        found.setdefault(data[offset + 4 : offset + 8].decode("latin-1"), (offset, size))
        if size < 8:
            break
        offset += size
    return found


def flip(data: bytes, offset: int) -> bytes:
    changed = bytearray(data)
    changed[offset] ^= 0xFF
    return bytes(changed)


def swap_digit(data: bytes, offset: int) -> bytes:
    """Change one character of a text field, keeping it valid UTF-8 (and CBOR)."""
    changed = bytearray(data)
    changed[offset] = ord("0") if changed[offset] != ord("0") else ord("1")
    return bytes(changed)


def manifest_json(data: bytes, mime: str = "video/mp4") -> dict[str, Any]:
    with c2pa.Reader(mime, io.BytesIO(data)) as reader:
        return json.loads(reader.json())


def remux(data: bytes) -> bytes:
    """Copy the streams into a new MP4 without re-encoding, as a video tool would."""
    out = io.BytesIO()
    with av.open(io.BytesIO(data)) as src, av.open(out, "w", format="mp4") as dst:
        stream_in = src.streams.video[0]
        stream_out = dst.add_stream_from_template(stream_in)
        for packet in src.demux(stream_in):
            if packet.dts is None:
                continue
            packet.stream = stream_out
            dst.mux(packet)
    return out.getvalue()


def _active_claim(data: bytes) -> int:
    store = manifest_json(data)
    instance = store["manifests"][store["active_manifest"]]["instance_id"].encode()
    return data.index(instance) + len(instance) - 4


def _parent_claim(data: bytes) -> int:
    store = manifest_json(data)
    active = store["manifests"][store["active_manifest"]]
    parent = next(i for i in active["ingredients"] if i["relationship"] == "parentOf")
    instance = store["manifests"][parent["active_manifest"]]["instance_id"].encode()
    return data.index(instance) + len(instance) - 4


def _signature(data: bytes) -> int:
    """Inside the ES256 signature: the last 64 bytes of the manifest store's box, since the
    active manifest comes last and its COSE_Sign1 ends [..., payload nil, bstr(64) sig]."""
    offset, size = boxes(data)["uuid"]
    end = offset + size
    assert data[end - 67 : end - 64] == b"\xf6\x58\x40", "not where the signature should be"
    return end - 20


def _idat(data: bytes) -> int:
    offset = 8
    while offset < len(data):
        length = int.from_bytes(data[offset : offset + 4], "big")
        if data[offset + 4 : offset + 8] == b"IDAT":
            return offset + 8 + length // 2
        offset += 12 + length
    raise AssertionError("no IDAT chunk")


@dataclass(frozen=True)
class Tamper:
    name: str
    file: str  # which of the library's files: still | clip | remix
    damage: Callable[[bytes], bytes]
    states: tuple[str, ...]  # verification states the reference allows
    code: str | None  # a code the result must carry


def _mdat(data: bytes) -> int:
    offset, size = boxes(data)["mdat"]
    return offset + size // 2


def _moov(data: bytes) -> int:
    offset, size = boxes(data)["moov"]
    return offset + size // 2


def _cut_manifest(data: bytes) -> bytes:
    offset, size = boxes(data)["uuid"]
    return data[:offset] + data[offset + size :]


FREE_BOX = (16).to_bytes(4, "big") + b"free" + bytes(8)
TAMPERS = [
    Tamper("mdat flipped", "clip", lambda d: flip(d, _mdat(d)), ("invalid",),
           "assertion.bmffHash.mismatch"),
    Tamper("moov flipped", "clip", lambda d: flip(d, _moov(d)), ("invalid",),
           "assertion.bmffHash.mismatch"),
    Tamper("truncated to half", "clip", lambda d: d[: len(d) // 2], ("invalid",),
           "assertion.bmffHash.mismatch"),
    Tamper("last byte cut", "clip", lambda d: d[:-1], ("invalid", "unreadable"), None),
    Tamper("garbage appended", "clip", lambda d: d + b"garbage!", ("unreadable",),
           "c2pa.error.other"),
    Tamper("free box appended", "clip", lambda d: d + FREE_BOX, ("trusted",), None),
    Tamper("manifest box cut", "clip", _cut_manifest, ("absent",), "manifest.absent"),
    Tamper("remuxed by stream copy", "clip", remux, ("absent",), "manifest.absent"),
    Tamper("signature flipped", "clip", lambda d: flip(d, _signature(d)), ("invalid",),
           "claimSignature.mismatch"),
    Tamper("claim flipped", "clip", lambda d: swap_digit(d, _active_claim(d)), ("invalid",),
           "claimSignature.mismatch"),
    Tamper("embedded parent's claim flipped", "remix",
           lambda d: swap_digit(d, _parent_claim(d)), ("invalid",),
           "ingredient.manifest.mismatch"),
    Tamper("PNG IDAT flipped", "still", lambda d: flip(d, _idat(d)), ("invalid",),
           "assertion.dataHash.mismatch"),
    Tamper("garbage as video/mp4", "clip", lambda d: b"not a video " * 100, ("unreadable",),
           "c2pa.error.other"),
    Tamper("empty", "clip", lambda d: b"", ("unreadable",), "c2pa.error.io"),
]  # fmt: skip
