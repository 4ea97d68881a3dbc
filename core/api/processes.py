"""Whether a process on this machine has ended, asked without disturbing it.

Two things are left behind by a process that was killed: a finishing claim on a job
(``core.generation.claim``) and a half-written render (the local backend). Each names
its writer by host and pid, so a later process can tell a dead writer's leftovers from a
live one's work. The question is asked here only, because the probe differs by platform:
signal 0 on POSIX checks a pid without side effects, while ``os.kill`` on Windows
terminates the process it names. Where the probe is not safe, the answer is "not
known to have ended", so leftovers are kept (until a lease runs out, or for good).
"""

from __future__ import annotations

import os

__all__ = ["process_ended"]

PROBE_IS_SAFE = os.name == "posix"
"""Whether ``os.kill(pid, 0)`` only asks (POSIX) rather than ending the process (Windows)."""


def process_ended(pid: int) -> bool:
    """True only if no process ``pid`` runs on this machine any more.

    False for this very process, for a process of another user (it exists), and on
    platforms without a side-effect-free probe. A reused pid reads as still running: the
    caller then keeps what it found, which is the safe way to be wrong.
    """
    if not PROBE_IS_SAFE or pid == os.getpid() or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:
        return False  # it exists, under another user
    return False
