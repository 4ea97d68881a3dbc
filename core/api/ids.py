"""Identifiers shown to users: short, typed, and resolvable by any unique prefix.

Clips get a random id (``clip_…``) because two runs with the same inputs are still two
attempts worth telling apart; assets are named by content (``img_<sha256>``) so the
same bytes always get the same id.
"""

from __future__ import annotations

import secrets

__all__ = [
    "ASSET_PREFIXES",
    "CLIP_PREFIX",
    "CONSENT_PREFIX",
    "SHORT_HEX",
    "asset_id",
    "new_clip_id",
    "new_consent_id",
    "short",
]

CLIP_PREFIX = "clip_"
CONSENT_PREFIX = "consent_"
ASSET_PREFIXES = {
    "image": "img_",
    "video": "vid_",
    "thumbnail": "thm_",
    "spritesheet": "spr_",
}
SHORT_HEX = 12
_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"  # Crockford base32: no i, l, o, u


def new_clip_id() -> str:
    return CLIP_PREFIX + "".join(secrets.choice(_ALPHABET) for _ in range(12))


def new_consent_id() -> str:
    return CONSENT_PREFIX + "".join(secrets.choice(_ALPHABET) for _ in range(12))


def asset_id(kind: str, sha256: str) -> str:
    return ASSET_PREFIXES[kind] + sha256


def short(identifier: str) -> str:
    """The form shown in listings; asset ids carry a full hash, clip ids are short already."""
    prefix, _, body = identifier.partition("_")
    return f"{prefix}_{body[:SHORT_HEX]}" if body else identifier
