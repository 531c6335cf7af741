"""How feature rows are packed: JSON per entity for online reads, Arrow IPC chunks for history."""

from __future__ import annotations

import json
from collections.abc import Iterable

import pandas as pd
import pyarrow as pa
import pyarrow.ipc as ipc

_IPC_OPTIONS = ipc.IpcWriteOptions(compression="zstd")


def pack_rows(frame: pd.DataFrame, features: list[str]) -> list[str]:
    """One JSON object per row with the features (nulls as null), in row order."""
    if frame.empty:
        return []
    text = frame[features].to_json(orient="records", lines=True, double_precision=15)
    return text.rstrip("\n").split("\n")


def unpack_row(packed: str) -> dict:
    return json.loads(packed)


def encode_chunk(frame: pd.DataFrame) -> bytes:
    """Serialise a history chunk (as_of, entity_id, features) to compressed Arrow IPC."""
    table = pa.Table.from_pandas(frame, preserve_index=False)
    sink = pa.BufferOutputStream()
    with ipc.new_stream(sink, table.schema, options=_IPC_OPTIONS) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()


def decode_chunks(payloads: Iterable[bytes]) -> pa.Table | None:
    """Concatenate chunks; columns missing from older chunks (features added later) become null."""
    tables = [ipc.open_stream(pa.py_buffer(p)).read_all() for p in payloads]
    if not tables:
        return None
    return pa.concat_tables(tables, promote_options="permissive")
