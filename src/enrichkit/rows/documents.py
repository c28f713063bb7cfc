"""Rows from any JSON document (at a JSON pointer or dotted path) or CSV file, local or over HTTP."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx2

from enrichkit.errors import UserError
from enrichkit.rows.files import NOT_UTF8, CsvFormat, check_objects, decode, load_json, parse_rows

TIMEOUT = 30.0


def read_source(source: str) -> bytes:
    """The bytes of a local file or an http(s) URL."""
    if source.startswith(("http://", "https://")):
        try:
            response = httpx2.get(source, timeout=TIMEOUT, follow_redirects=True)
        except httpx2.HTTPError as exc:
            raise UserError(f"{source}: cannot fetch ({type(exc).__name__}: {exc})") from None
        if response.status_code != 200:
            raise UserError(f"{source}: HTTP {response.status_code}")
        return response.content
    try:
        return Path(source).read_bytes()
    except FileNotFoundError:
        raise UserError(f"{source}: no such file") from None
    except OSError as exc:
        raise UserError(f"{source}: cannot read ({exc.strerror})") from None


def split_path(path: str) -> list[str]:
    """``/a/0/b`` (JSON pointer, RFC 6901) or ``a.0.b`` (dotted) as a list of keys; empty = the document."""
    if path in ("", "/", "."):
        return []
    if path.startswith("/"):
        return [part.replace("~1", "/").replace("~0", "~") for part in path[1:].split("/")]
    return path.split(".")


def at_path(doc: Any, path: str, origin: str) -> Any:
    node = doc
    walked = ""
    for key in split_path(path):
        walked += "/" + key
        if isinstance(node, dict) and key in node:
            node = node[key]
        elif isinstance(node, list) and key.isdigit() and int(key) < len(node):
            node = node[int(key)]
        else:
            raise UserError(f"{origin}: nothing at {walked!r} (records path {path!r}); {_arrays_text(doc)}")
    return node


def record_arrays(doc: Any, at: str = "") -> list[tuple[str, int]]:
    """The non-empty arrays of objects in ``doc`` reached through objects only (not inside another array), as
    (JSON pointer, items), in document order; the document itself if it is one."""
    if isinstance(doc, list):
        return [(at or "/", len(doc))] if doc and all(isinstance(item, dict) for item in doc) else []
    if not isinstance(doc, dict):
        return []
    found: list[tuple[str, int]] = []
    for key, value in doc.items():
        found += record_arrays(value, f"{at}/{str(key).replace('~', '~0').replace('/', '~1')}")
    return found


def _arrays_text(doc: Any, most: int = 8) -> str:
    """The arrays of objects in ``doc``, for an error message."""
    arrays = record_arrays(doc)
    if not arrays:
        return "the document holds no array of objects"
    shown = ", ".join(f"{pointer} ({items:,} objects)" for pointer, items in arrays[:most])
    more = f" and {len(arrays) - most:,} more" if len(arrays) > most else ""
    return f"its arrays of objects: {shown}{more}"


def the_records(doc: Any, origin: str) -> str:
    """The records path of a document given none: the document if it is an array, else its only array of
    objects; an error listing them when it holds several or none."""
    if isinstance(doc, list):
        return "/"
    arrays = record_arrays(doc)
    if len(arrays) == 1:
        return arrays[0][0]
    if not arrays:
        raise UserError(f"{origin}: the document holds no array of objects (--records / takes it as one row)")
    raise UserError(f"{origin}: which records? Give --records; {_arrays_text(doc)}")


def json_records(source: str, path: str | None = None) -> tuple[list[dict[str, Any]], str]:
    """The objects of the array found at ``path`` in the JSON document ``source`` (an object there is one row),
    and the path; without a path, those of ``the_records``."""
    doc = load_json(decode(read_source(source), source), source)
    path = the_records(doc, source) if path is None else path
    found = at_path(doc, path, source)
    if isinstance(found, dict):
        found = [found]
    if not isinstance(found, list):
        raise UserError(
            f"{source}: records path {path or '/'!r} holds {type(found).__name__}, not an array; {_arrays_text(doc)}"
        )
    if not found:
        raise UserError(f"{source}: no rows at records path {path or '/'!r}")
    return check_objects(found, f"{source} at {path or '/'!r}"), path


def csv_records(source: str, csv_format: CsvFormat | None = None) -> list[dict[str, Any]]:
    """The rows of the CSV file ``source``, read as ``csv_format`` says (default: UTF-8, the delimiter sniffed)."""
    csv_format = csv_format or CsvFormat()
    data = read_source(source)
    if csv_format.utf8:
        try:
            text = decode(data, source)
        except UserError as exc:
            raise UserError(f"{exc}; {NOT_UTF8}") from None
    else:
        try:
            text = data.decode(csv_format.encoding)
        except UnicodeDecodeError as exc:
            raise UserError(f"{source}: not {csv_format.encoding} text ({exc.reason} at byte {exc.start})") from None
    return parse_rows(text, ".csv", source, csv_format.delimiter)
