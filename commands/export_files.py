"""The customer-by-month table as CSV (with a `FILE.manifest.json` sidecar) or Parquet
(the manifest in the file's key-value metadata, under `revledger.manifest`)."""

from __future__ import annotations

import csv
from decimal import Decimal
from pathlib import Path

import orjson

from commands.files import written
from services.export import MONEY, MRRExport

MANIFEST_KEY = b"revledger.manifest"


def write_csv(export: MRRExport, out: Path) -> tuple[int, Path]:
    """The rows, and the manifest beside them; (rows written, sidecar path)."""
    count = 0
    with written(out) as partial, partial.open("w", newline="", encoding="utf-8") as stream:
        writer = csv.writer(stream, lineterminator="\n")
        writer.writerow(export.columns)
        for month in export.months:
            writer.writerows(zip(*(month[c] for c in export.columns), strict=True))
            count += len(month["month"])
    sidecar = out.with_name(out.name + ".manifest.json")
    with written(sidecar) as partial:
        partial.write_bytes(orjson.dumps({**export.manifest, "rows": count},
                                         option=orjson.OPT_INDENT_2) + b"\n")
    return count, sidecar


def write_parquet(export: MRRExport, out: Path) -> int:
    """Money rounded to cents as decimal128(38, 2), which holds every MRR the contract
    allows; everything else, exact figures included, as text."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    fields = [pa.field(c, pa.decimal128(38, 2) if c in MONEY else pa.string())
              for c in export.columns]
    schema = pa.schema(fields, metadata={MANIFEST_KEY: orjson.dumps(export.manifest)})
    count = 0
    with (written(out) as partial, partial.open("wb") as stream,
          pq.ParquetWriter(stream, schema) as writer):
        for month in export.months:
            arrays = [pa.array([Decimal(v) for v in month[c]], type=f.type) if c in MONEY
                      else pa.array(month[c], type=pa.string())
                      for c, f in zip(export.columns, fields, strict=True)]
            writer.write_table(pa.Table.from_arrays(arrays, schema=schema))
            count += len(month["month"])
    return count
