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
            raise UserError(f"{origin}: nothing at {walked!r} (records path {path!r})")
    return node


def json_records(source: str, path: str = "") -> list[dict[str, Any]]:
    """The objects of the array found at ``path`` in the JSON document ``source``."""
    doc = load_json(decode(read_source(source), source), source)
    found = at_path(doc, path, source)
    if isinstance(found, dict):
        found = [found]
    if not isinstance(found, list):
        raise UserError(f"{source}: records path {path or '/'!r} holds {type(found).__name__}, not an array")
    if not found:
        raise UserError(f"{source}: no rows at records path {path or '/'!r}")
    return check_objects(found, f"{source} at {path or '/'!r}")


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
