"""Field groups: the output fields a cache key is made per. Fields the schema ties together
(``dependentRequired``, ``dependentSchemas``, ``if``/``then``/``else``, ``allOf``/``anyOf``/``oneOf``/``not``
clauses naming several, one ``$ref`` shared) or the task declares asked together (``together``) are one
group: they are asked, cached and re-asked as one."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from typing import Any

TIES = ("dependentRequired", "dependentSchemas", "if", "then", "else", "allOf", "anyOf", "oneOf", "not")

"""The top-level keywords that may tie fields together (a field group's schema keeps those of its own fields)."""


def field_groups(schema: Mapping[str, Any], together: Iterable[Sequence[str]] = ()) -> list[tuple[str, ...]]:
    """The groups of ``schema``'s output fields, each in schema order, ordered by their first field."""
    fields = list(schema["properties"])
    parent = {name: name for name in fields}

    def root(name: str) -> str:
        while parent[name] != name:
            name = parent[name]
        return name

    def tie(names: Iterable[str]) -> None:
        names = [n for n in names if n in parent]
        for other in names[1:]:
            parent[root(other)] = root(names[0])

    for clause in _clauses(schema):
        tie(sorted(_named(clause, parent)))
    refs: dict[str, list[str]] = {}
    for name, prop in schema["properties"].items():
        for ref in _refs(prop):
            refs.setdefault(ref, []).append(name)
    for names in [*refs.values(), *together]:
        tie(names)
    groups: dict[str, list[str]] = {}
    for name in fields:
        groups.setdefault(root(name), []).append(name)
    return [tuple(group) for group in groups.values()]


def sub_schema(schema: Mapping[str, Any], fields: Collection[str]) -> dict[str, Any]:
    """``schema`` holding only ``fields`` (a union of groups): their properties, required and ties."""
    keep = set(fields)
    out = {k: v for k, v in schema.items() if k not in TIES and k not in ("properties", "required")}
    out["properties"] = {n: s for n, s in schema["properties"].items() if n in keep}
    out["required"] = [n for n in schema.get("required", []) if n in keep]
    for key in ("dependentRequired", "dependentSchemas"):
        if key in schema:
            out[key] = {n: v for n, v in schema[key].items() if n in keep}
    names = set(schema["properties"])
    if "if" in schema and _named({k: schema[k] for k in ("if", "then", "else") if k in schema}, names) <= keep:
        out.update({k: schema[k] for k in ("if", "then", "else") if k in schema})
    for key in ("allOf", "anyOf", "oneOf"):
        if kept := [c for c in schema.get(key, []) if _named(c, names) <= keep]:
            out[key] = kept
    if "not" in schema and _named(schema["not"], names) <= keep:
        out["not"] = schema["not"]
    return out


def _clauses(schema: Mapping[str, Any]) -> list[Any]:
    """The parts of ``schema`` each of which ties the fields it names."""
    clauses: list[Any] = [[name, *deps] for name, deps in schema.get("dependentRequired", {}).items()]
    clauses += [{"required": [name], "sub": sub} for name, sub in schema.get("dependentSchemas", {}).items()]
    if "if" in schema:
        clauses.append({k: schema[k] for k in ("if", "then", "else") if k in schema})
    for key in ("allOf", "anyOf", "oneOf"):
        clauses += list(schema.get(key, []))
    if "not" in schema:
        clauses.append(schema["not"])
    return clauses


def _named(node: Any, names: Collection[str]) -> set[str]:
    """The field ``names`` a schema part mentions: as property names, in ``required``, as strings."""
    found: set[str] = set()
    if isinstance(node, Mapping):
        for key, value in node.items():
            if key in names:
                found.add(key)
            found |= _named(value, names)
    elif isinstance(node, list):
        for item in node:
            found |= _named(item, names)
    elif isinstance(node, str) and node in names:
        found.add(node)
    return found


def _refs(node: Any) -> set[str]:
    """The ``$ref`` targets a property's schema uses."""
    if isinstance(node, Mapping):
        own = {node["$ref"]} if isinstance(node.get("$ref"), str) else set()
        return own.union(*(_refs(v) for v in node.values()))
    if isinstance(node, list):
        return set().union(*(_refs(v) for v in node))
    return set()
