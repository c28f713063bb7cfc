"""DataFrames in and out: a pandas or polars DataFrame or a pyarrow Table becomes rows (dicts), and the
enriched rows become the same kind of frame again, with the new columns typed from the task's schema.

One path for every library: narwhals (``from_native``, ``with_columns``) with Arrow as the typed pivot.
Both are the optional extra ``enrichkit[frames]``; the dict path needs neither.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeAlias

from enrichkit.errors import UserError

if TYPE_CHECKING:
    import narwhals as nw
    from narwhals.typing import IntoDataFrame

    Rows: TypeAlias = Iterable[Mapping[str, Any]] | IntoDataFrame

ACCEPTED = "an iterable of dicts, a pandas or polars DataFrame, a pyarrow Table, or a row file's path"

LIBRARIES = ("pandas", "polars", "pyarrow")

_SCALARS = {"string": "string", "integer": "int64", "number": "float64", "boolean": "bool_"}


@dataclass(frozen=True)
class Source:
    """What a run reads: its rows, and the frame they came from (None for dicts)."""

    rows: Iterable[Mapping[str, Any]]
    frame: nw.DataFrame[Any] | None = None


def source(data: Rows) -> Source:
    """The rows of ``data`` (dicts, or a frame); anything else is a one-line ``UserError``."""
    if type(data).__module__.partition(".")[0] not in LIBRARIES:
        if isinstance(data, str | bytes | Path | Mapping) or not isinstance(data, Iterable):
            raise UserError(f"rows: {_kind(data)} is not accepted; pass {ACCEPTED}")
        return Source(_checked(data))
    nw = _narwhals()
    try:
        frame = nw.from_native(data, eager_only=True)
    except TypeError:
        raise UserError(f"rows: {_kind(data)} is not accepted; pass {ACCEPTED} (collect a lazy frame first)") from None
    return Source(frame.to_arrow().to_pylist(), frame)


def _kind(data: Any) -> str:
    return f"a {type(data).__module__.partition('.')[0]}.{type(data).__qualname__}".replace("a builtins.", "a ")


def _checked(rows: Iterable[Any]) -> Iterator[Mapping[str, Any]]:
    for n, row in enumerate(rows, 1):
        if not isinstance(row, Mapping):
            raise UserError(f"row {n}: {_kind(row)} is not a row; pass {ACCEPTED}")
        yield row


def _narwhals() -> Any:
    """narwhals, once pyarrow is known to be there too (the extra ``enrichkit[frames]``)."""
    try:
        import narwhals
        import pyarrow  # noqa: F401
    except ImportError as exc:
        raise UserError(f"DataFrames need {exc.name}: pip install 'enrichkit[frames]'") from None
    return narwhals


def native_frame(native: Any) -> nw.DataFrame[Any]:
    """A native frame (one ``source`` accepted) as a narwhals frame."""
    return _narwhals().from_native(native, eager_only=True)  # type: ignore[no-any-return]


def with_columns(frame: nw.DataFrame[Any], rows: Sequence[Mapping[str, Any]], properties: Mapping[str, Any]) -> Any:
    """``frame`` (native) with a column per property, from ``rows`` in order, typed from its schema."""
    added = _table({name: ([row.get(name) for row in rows], schema) for name, schema in properties.items()})
    new = _native(added, frame.implementation)
    return frame.with_columns(*(new[name] for name in properties)).to_native()


def to_pandas(native: Any) -> Any:
    """A frame as a pandas DataFrame, typed as ``with_columns`` types them (a pandas one as it is)."""
    frame = native_frame(native)
    return native if frame.implementation.is_pandas() else _native(frame.to_arrow(), "pandas").to_native()


def rows_frame(rows: Sequence[Mapping[str, Any]], backend: Any = "pandas", columns: Sequence[str] = ()) -> Any:
    """``rows`` as a frame of ``backend`` (``"pandas"``, ``"polars"``, ``"pyarrow"``): ``columns`` first, then
    every other key of the rows as a column."""
    names = list(dict.fromkeys([*columns, *(key for row in rows for key in row)]))
    return _native(_table({name: ([row.get(name) for row in rows], {}) for name in names}), backend).to_native()


def _table(columns: Mapping[str, tuple[list[Any], Mapping[str, Any]]]) -> Any:
    """A pyarrow Table of ``name: (values, JSON Schema)``; values of mixed types are JSON text."""
    import pyarrow as pa

    arrays = {}
    for name, (values, schema) in columns.items():
        try:
            arrays[name] = pa.array(values, _arrow_type(pa, schema))
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            arrays[name] = pa.array([None if v is None else json.dumps(v, ensure_ascii=False) for v in values])
    return pa.table(arrays)


def _arrow_type(pa: Any, schema: Mapping[str, Any]) -> Any:
    """The Arrow type of a JSON Schema (None: inferred from the values)."""
    kind = schema.get("type")
    if kind == "array":
        item = _arrow_type(pa, schema.get("items", {}))
        return None if item is None else pa.list_(item)
    return getattr(pa, _SCALARS[kind])() if isinstance(kind, str) and kind in _SCALARS else None


def _native(table: Any, backend: Any) -> nw.DataFrame[Any]:
    """A pyarrow Table as a narwhals frame of ``backend``; pandas gets nullable integers and booleans
    (failed rows are ``<NA>``, not a float NaN or an object column) and lists."""
    nw = _narwhals()
    implementation = nw.Implementation.from_backend(backend)
    if not implementation.is_pandas():
        return nw.from_arrow(table, backend=implementation)  # type: ignore[no-any-return]
    import pandas as pd
    import pyarrow as pa

    def dtype(kind: Any) -> Any:
        if pa.types.is_list(kind):
            return pd.ArrowDtype(kind)
        return {pa.int64(): pd.Int64Dtype(), pa.bool_(): pd.BooleanDtype()}.get(kind)

    return nw.from_native(table.to_pandas(types_mapper=dtype), eager_only=True)  # type: ignore[no-any-return]
