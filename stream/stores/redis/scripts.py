"""The store's Lua scripts: read once from the package's `scripts/*.lua`, run by their SHA1.

A script file may start with `--! include NAME.lua` lines: those fragments (shared functions) are
put in front of it, in that order. Scripts run as EVALSHA in pipelines; a Redis that does not know
a script (a restart, SCRIPT FLUSH, a new cluster node) answers NOSCRIPT, and the script is loaded
(SCRIPT LOAD, on every primary of a cluster) and that call run again.

Every script but two runs on the keys of one input partition, all of which share a hash tag (one
cluster slot): `KEYS[1]` is the partition's meta hash, which routes the call, and `ARGV[1]` the
partition's key base (see `keys`). CONFIRM and RAISE_FLOOR take the one key they touch.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any

from redis.exceptions import NoScriptError

FILL = 40  # average join entries per bucket before one splits (at most twice that in unsplit buckets)
DIGEST = 12  # bytes of an event id's digest
INCLUDE = "--! include "

Read = Callable[[Any], object]  # queues a plain read command on a pipeline


def source(name: str) -> str:
    """A script's full text: its included fragments, then its own lines."""
    text = resources.files(__package__).joinpath("scripts", name).read_text()
    lines = text.splitlines(keepends=True)
    includes = [line[len(INCLUDE) :].strip() for line in lines if line.startswith(INCLUDE)]
    return "".join(source(fragment) for fragment in includes) + "".join(
        line for line in lines if not line.startswith(INCLUDE)
    )


@dataclass(frozen=True, slots=True)
class Script:
    """One script's text and the SHA1 Redis knows it by."""

    name: str
    text: str
    sha: str

    @classmethod
    def load(cls, name: str) -> Script:
        """The script of `scripts/<name>.lua`."""
        text = source(f"{name}.lua")
        return cls(name, text, hashlib.sha1(text.encode()).hexdigest())


READ = Script.load("read")
APPLY = Script.load("apply")
CANDIDATES = Script.load("candidates")
SEAL = Script.load("seal")
CLAIM = Script.load("claim")
PROVISIONAL = Script.load("provisional")
HASHES = Script.load("hashes")
UNLIST_PROVISIONAL = Script.load("unlist_provisional")
CLEANUP = Script.load("cleanup")
COUNTS = Script.load("counts")
TAKE = Script.load("take")
CONFIRM = Script.load("confirm")
RAISE_FLOOR = Script.load("raise_floor")
FOLD = Script.load("fold")
QUALITY = Script.load("quality")
ALL = (
    READ,
    APPLY,
    CANDIDATES,
    SEAL,
    CLAIM,
    PROVISIONAL,
    HASHES,
    UNLIST_PROVISIONAL,
    CLEANUP,
    COUNTS,
    TAKE,
    CONFIRM,
    RAISE_FLOOR,
    FOLD,
    QUALITY,
)


@dataclass(frozen=True, slots=True)
class Call:
    """One script run: the script, its one key, its arguments."""

    script: Script
    key: str
    args: tuple[Any, ...]


async def run(client: Any, calls: Sequence[Call], reads: Sequence[Read] = ()) -> list[Any]:
    """Run the calls (each atomic on its own) and then the plain reads, in one pipeline round trip;
    the replies in order. Scripts Redis does not know are loaded and their calls run again, with
    the reads after them (so a read still follows every write)."""
    replies = await _pipeline(client, calls, reads)
    missing = [i for i, reply in enumerate(replies[: len(calls)]) if isinstance(reply, NoScriptError)]
    if missing:
        for script in {calls[i].script for i in missing}:
            await client.script_load(script.text)
        again = await _pipeline(client, [calls[i] for i in missing], reads)
        for i, reply in zip(missing, again):
            replies[i] = reply
        replies[len(calls) :] = again[len(missing) :]
    for reply in replies:
        if isinstance(reply, Exception):
            raise reply
    return replies


async def _pipeline(client: Any, calls: Sequence[Call], reads: Sequence[Read]) -> list[Any]:
    async with client.pipeline(transaction=False) as pipe:
        for call in calls:
            pipe.evalsha(call.script.sha, 1, call.key, *call.args)
        for read in reads:
            read(pipe)
        return list(await pipe.execute(raise_on_error=False))
