"""The MRR view as numpy columns: gathered from the view's rows a chunk at a time, and
stored as one blob (the view's snapshot) to load much faster than the rows.

Exactness: every MRR in the view is a fraction of cents of its currency. The columns scale
them all to one common denominator `D` (the lcm of the view's denominators), so each is an
integer number of 1/D cents; sums of integers are exact, and each currency's sum is
converted at its rate once (`projections.valuation`). When the largest possible sum could
overflow int64 the columns hold Python integers instead (slower, still exact).

What the columns answer is `projections.engine`'s: this module only lays them out.
"""

from __future__ import annotations

import io
import math
import zipfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Self

import numpy as np
import orjson

from ledger.batches import batched
from projections.periods import END_OF_TIME

NEVER = np.iinfo(np.int64).max
_AFTER_9999 = "10000-01-01T00:00:00"  # END_OF_TIME, which numpy's datetimes can hold
CHUNK = 20_000
# What `MRRColumns.from_bytes` raises for a damaged blob (cut short, overwritten, another
# file)
UNREADABLE = (ValueError, LookupError, OSError, EOFError, zipfile.BadZipFile)
# What `MRRColumns.from_rows` raises for rows edited behind the ledger's back (an `mrr` of
# "abc" or "1/0", say)
UNREADABLE_ROWS = (ValueError, LookupError, TypeError, ArithmeticError)


def instants(texts: Sequence[str | None]) -> np.ndarray:
    """Fixed-width UTC texts as int64 microseconds since the epoch; None as NEVER."""
    values = np.array([(_AFTER_9999 if t == END_OF_TIME else t[:-1]) if t else "NaT"
                       for t in texts], dtype="datetime64[us]")
    out = values.astype(np.int64)
    out[np.isnat(values)] = NEVER
    return out


def instant(text: str) -> int:
    return int(instants([text])[0])


@dataclass
class _Steps:
    """Per-customer step functions over time, flattened: customer i owns rows
    offsets[i]:offsets[i+1], sorted by time."""

    offsets: np.ndarray
    at: np.ndarray

    def last_before(self, bound: int) -> tuple[np.ndarray, np.ndarray]:
        """(row index, has one) of each customer's last step strictly before `bound`."""
        before = np.concatenate(([0], np.cumsum(self.at < bound)))
        counts = before[self.offsets[1:]] - before[self.offsets[:-1]]
        return self.offsets[:-1] + counts - 1, counts > 0


class MRRColumns:
    """The view's current rows as columns: each currency's steps apart (contract v2).
    Build them `from_rows` (the view's rows) or `from_bytes` (a stored snapshot of the
    columns, much faster to load); both build the class they are called on, so the query
    engine (`projections.engine.MRRIndex`) is built the same ways."""

    def __init__(
        self,
        customers: list[str],
        first_paid: np.ndarray,
        mrr: dict[str, _Steps],
        units: dict[str, np.ndarray],
        denominator: int,
        attr: _Steps,
        attr_codes: dict[str, tuple[np.ndarray, list[str]]],
    ) -> None:
        self.customers = customers
        self.first_paid = first_paid
        self.mrr = mrr  # per currency: each customer's steps in it
        self.units = units  # per currency: each step's MRR in 1/D cents of it
        self.denominator = denominator
        self.attr = attr
        # per attribute key: each attribute step's value as a code (-1: key not set), and
        # the values by code
        self.attr_codes = attr_codes

    @classmethod
    def from_rows(
        cls,
        customers: Iterable[tuple[str, str | None]],
        steps: Iterable[tuple[str, str, str, str]],
        attributes: Iterable[tuple[str, str, str]],
    ) -> Self:
        """From view rows: (customer, first paid), (customer, currency, instant, mrr) and
        (customer, instant, attributes JSON), each sorted by customer (then currency, then
        time) and read in that order, a chunk at a time, so memory holds columns, not rows."""
        columns = Columns()
        for customer, first_paid in customers:
            columns.customer(customer, first_paid)
        position = {c: i for i, c in enumerate(columns.names)}
        for chunk in batched(steps, CHUNK):
            columns.steps(owners(position, chunk), [r[1] for r in chunk], [r[2] for r in chunk],
                          [r[3] for r in chunk])
        for chunk in batched(attributes, CHUNK):
            columns.attributes(owners(position, chunk), [r[1] for r in chunk],
                               [r[2] for r in chunk])
        return cls.gathered(columns)

    @classmethod
    def gathered(cls, columns: Columns) -> Self:
        """The columns `columns` has gathered, scaled to their common denominator."""
        denominator = math.lcm(1, *{d for s in columns.series.values() for d in s[3]})
        units = {currency: [n * (denominator // d) for n, d in zip(s[2], s[3], strict=True)]
                 for currency, s in columns.series.items()}
        largest = max((max(u, default=0) for u in units.values()), default=0)
        safe = largest * max(len(columns.names), 1) < 2**62
        return cls(
            columns.names,
            instants(columns.paid),
            {c: _step_table(len(columns.names), s[0], s[1]) for c, s in columns.series.items()},
            {c: np.array(u, dtype=np.int64 if safe else object) for c, u in units.items()},
            denominator,
            _step_table(len(columns.names), columns.attr_owners, columns.attr_at),
            _attribute_codes(columns.attr_values),
        )

    def to_bytes(self) -> bytes | None:
        """The columns as one npz blob; None when MRRs need Python integers."""
        if any(units.dtype == object for units in self.units.values()):
            return None
        out = io.BytesIO()
        currencies = list(self.mrr)
        np.savez(
            out,
            customers=np.array(orjson.dumps(self.customers)),
            first_paid=self.first_paid,
            currencies=np.array(orjson.dumps(currencies)),
            denominator=np.array(str(self.denominator)),
            attr_offsets=self.attr.offsets,
            attr_at=self.attr.at,
            attr_values=np.array(orjson.dumps({k: v for k, (_, v) in self.attr_codes.items()})),
            **{f"attr_codes_{i}": codes for i, (codes, _) in enumerate(self.attr_codes.values())},
            **{f"mrr_offsets_{i}": self.mrr[c].offsets for i, c in enumerate(currencies)},
            **{f"mrr_at_{i}": self.mrr[c].at for i, c in enumerate(currencies)},
            **{f"units_{i}": self.units[c] for i, c in enumerate(currencies)},
        )
        return out.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> Self:
        with np.load(io.BytesIO(data), allow_pickle=False) as z:
            currencies = orjson.loads(z["currencies"].item())
            return cls(
                orjson.loads(z["customers"].item()),
                z["first_paid"],
                {c: _Steps(z[f"mrr_offsets_{i}"], z[f"mrr_at_{i}"])
                 for i, c in enumerate(currencies)},
                {c: z[f"units_{i}"] for i, c in enumerate(currencies)},
                int(z["denominator"].item()),
                _Steps(z["attr_offsets"], z["attr_at"]),
                {key: (z[f"attr_codes_{i}"], values) for i, (key, values)
                 in enumerate(orjson.loads(z["attr_values"].item()).items())},
            )


class Columns:
    """An index's columns, gathered a chunk of rows at a time with customers in order:
    instants are converted chunk by chunk, so memory holds columns, not rows.
    `MRRColumns.gathered` makes them the index's."""

    def __init__(self) -> None:
        self.names: list[str] = []
        self.paid: list[str | None] = []
        # per currency: (owners, instants, numerators, denominators), chunk by chunk
        self.series: dict[str, tuple[list[np.ndarray], list[np.ndarray], list[int], list[int]]] = {}
        self.attr_owners: list[np.ndarray] = []
        self.attr_at: list[np.ndarray] = []
        self.attr_values: list[dict[str, str]] = []

    def customer(self, name: str, first_paid: str | None) -> None:
        """The next customer: the rows of later chunks name it by its number."""
        self.names.append(name)
        self.paid.append(first_paid)

    def steps(self, owners: np.ndarray, currencies: list[str], at: list[str],
              mrr: list[str]) -> None:
        """Rows by customer, then currency, then time: each currency's keep that order."""
        instants_ = instants(at)
        kinds = set(currencies)
        for currency in sorted(kinds):
            if len(kinds) == 1:
                chosen, texts = slice(None), mrr
            else:
                chosen = np.array([c == currency for c in currencies], dtype=bool)
                texts = [m for c, m in zip(currencies, mrr, strict=True) if c == currency]
            series = self.series.setdefault(currency, ([], [], [], []))
            series[0].append(owners[chosen])
            series[1].append(instants_[chosen])
            for text in texts:
                numerator, _, denominator = text.partition("/")
                series[2].append(int(numerator))
                series[3].append(int(denominator or 1))

    def attributes(self, owners: np.ndarray, at: list[str], values: list[str]) -> None:
        self.attr_owners.append(owners)
        self.attr_at.append(instants(at))
        self.attr_values.extend(orjson.loads(text) for text in values)


def _attribute_codes(steps: list[dict[str, str]]) -> dict[str, tuple[np.ndarray, list[str]]]:
    out = {}
    for key in sorted({k for attributes in steps for k in attributes}):
        ids: dict[str, int] = {}
        codes = [ids.setdefault(a[key], len(ids)) if key in a else -1 for a in steps]
        out[key] = (np.array(codes, dtype=np.int32), list(ids))
    return out


def owners(position: dict[str, int], chunk: Sequence[tuple]) -> np.ndarray:
    """The number of each row's customer (its first field)."""
    return np.fromiter((position[row[0]] for row in chunk), dtype=np.int64, count=len(chunk))


def _step_table(customers: int, owners: list[np.ndarray], at: list[np.ndarray]) -> _Steps:
    """Rows owned by customer i (in customer order) are offsets[i]:offsets[i+1]."""
    owner = np.concatenate(owners) if owners else np.zeros(0, dtype=np.int64)
    offsets = np.searchsorted(owner, np.arange(customers + 1), side="left")
    return _Steps(offsets, np.concatenate(at) if at else np.zeros(0, dtype=np.int64))
