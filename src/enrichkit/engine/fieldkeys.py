"""Cache keys per field group: what a cached answer is worth to a run of a changed task.

A row's entry is stored under one key (``rows.keys``: the run's shared fingerprint, which holds the
task's instruction and inputs, the prompt format and the model settings, hashed with the row's inputs),
so a run looks every row up once. The entry's values are tagged with the fingerprints of the field
groups (``task.groups``) they answer: a group's fingerprint is its fields' own schema (type,
description, ties). A run serves the groups whose fingerprints it shares with an entry, asks for the
others alone, and stores the row's answers merged: adding a column asks that column, rewording one
column's description asks that one again, a change to the instruction, the inputs or the model asks
everything (another key).
"""

from __future__ import annotations

from collections.abc import Sequence

from enrichkit.cache.entry import Entry, interned
from enrichkit.rows.keys import fingerprint
from enrichkit.task.groups import sub_schema
from enrichkit.task.task import Task

GROUP_PRINT = 16

"""Hex digits of a group's fingerprint kept in each entry (64 bits: it is told apart within one row's key)."""


def group_print(task: Task, fields: Sequence[str]) -> str:
    """The fingerprint of a field group: its fields' schema, as the task holds it."""
    return fingerprint({"fields": sub_schema(task.schema, fields)})[:GROUP_PRINT]


class FieldKeys:
    """A task's field groups by fingerprint, and what an entry found in the cache answers of them."""

    def __init__(self, task: Task, shared: str) -> None:
        self.fingerprint = shared
        self.fields = task.fields
        self.groups = {group_print(task, group): group for group in task.groups}
        self.all = interned(" ".join(sorted(self.groups)))
        self._group_of = {name: gid for gid, group in self.groups.items() for name in group}

    def by_field(self) -> dict[str, str]:
        """Each output field's group fingerprint (what the run history keeps)."""
        return {name: self._group_of[name] for name in self.fields}

    def group_ids(self, fields: Sequence[str] | None) -> str:
        """The sorted fingerprints of the groups of ``fields`` (None: every field), as ``Entry.groups``."""
        return self.all if fields is None else " ".join(sorted({self._group_of[name] for name in fields}))

    def complete(self, entry: Entry) -> bool:
        """Whether ``entry`` answers every group of the task as it is now."""
        return entry.groups == self.all

    def split(self, entry: Entry) -> tuple[Entry | None, tuple[str, ...]]:
        """An entry that answers some groups only: those answers alone (None: none still holds), and the fields
        to ask (in schema order)."""
        have = [gid for gid in entry.groups.split() if gid in self.groups]
        if not have:
            return None, tuple(self.fields)
        kept = {name for gid in have for name in self.groups[gid]}
        values = {name: entry.values[name] for name in self.fields if name in kept and name in entry.values}
        confidence = {name: c for name, c in entry.confidence.items() if name in kept}
        part = entry._replace(values=values, confidence=confidence, groups=" ".join(sorted(have)))
        return part, tuple(name for name in self.fields if name not in kept)

    def merged(self, new: Entry, old: Entry | None) -> Entry:
        """``new`` (answers to some groups) with ``old``'s answers to the task's other groups, in schema order;
        the tokens of both, the flags of either."""
        if old is None or new.groups == self.all:
            return new
        ours = set(new.groups.split())
        theirs = [gid for gid in old.groups.split() if gid in self.groups and gid not in ours]
        if not theirs:
            return new
        kept = {name for gid in theirs for name in self.groups[gid]}
        both = {**{n: v for n, v in old.values.items() if n in kept}, **new.values}
        values = {name: both[name] for name in self.fields if name in both}
        flags = tuple(dict.fromkeys((*old.flags, *new.flags)))
        return new._replace(
            values=values,
            prompt_tokens=old.prompt_tokens + new.prompt_tokens,
            output_tokens=old.output_tokens + new.output_tokens,
            confidence={**{n: c for n, c in old.confidence.items() if n in kept}, **new.confidence},
            flags=flags,
            groups=" ".join(sorted({*theirs, *ours})),
        )
