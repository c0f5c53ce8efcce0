"""Many currencies, one reporting currency (contract v2), on both stores: the contract's
worked example, FX kept out of expansion and churn, the rate in force (inverse pairs,
triangulation through EUR, ties, voids, late rates and `--known-at`), a missing rate,
display by each currency's minor unit, and the ECB's files. Expected values are worked by
hand from the contract's words (or from the sample file's own numbers)."""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import pytest

from ledger.events import InvalidEvent, parse_event
from ledger.sources.ecb import EcbSource, plain_rate
from projections.rates import MissingRate, Quote, Rates
from tests.feeds import changed, jsonl, started, voided
from tests.test_exactness import figures, revledger

SAMPLES = Path(__file__).parent.parent / "ledger" / "samples"
HIST, DAILY = SAMPLES / "eurofxref-hist-sample.csv", SAMPLES / "eurofxref-sample.csv"


def ingest(db_url: str, tmp_path: Path, *events: dict) -> None:
    path = tmp_path / f"feed-{len(list(tmp_path.iterdir()))}.jsonl"
    path.write_bytes(jsonl(*events))
    revledger(db_url, "ingest", str(path))


def rate(event_id: str, at: str, base: str, quote: str, value: str) -> dict:
    return {"event_id": event_id, "type": "fx.rate", "effective_at": at, "base": base,
            "quote": quote, "rate": value}


def eur(event_id: str, at: str, amount: str = "100.00", **extra: object) -> dict:
    return started(event_id, "s1", "c1", at, amount, currency="EUR", **extra)


def exact(answer: dict, *keys: str) -> tuple[Fraction, ...]:
    return tuple(Fraction(answer[f"{k}_exact"]) for k in keys)


# -- the contract's worked example ------------------------------------------------------

def test_the_worked_example(db_url, tmp_path):
    """A EUR customer pays 100 EUR all year; EUR->USD 1.10 then 1.21."""
    ingest(db_url, tmp_path, eur("e1", "2023-01-01T00:00:00Z"),
           rate("r1", "2023-12-31T00:00:00Z", "EUR", "USD", "1.10"),
           rate("r2", "2024-12-31T00:00:00Z", "EUR", "USD", "1.21"))
    r = figures(db_url, "nrr", "--start", "2023-12-31", "--end", "2024-12-31")
    assert exact(r, "starting_mrr", "ending_mrr", "expansion", "contraction", "churn",
                 "fx_impact") == (110, 121, 0, 0, 0, 11)
    assert exact(r, "nrr", "nrr_constant_currency", "grr") == (Fraction(11, 10), 1, 1)
    assert r["reporting_currency"] == "USD"
    assert (r["fx_impact"], r["nrr"]) == ("11.00", "1.100000")


@pytest.mark.parametrize(("end_rate", "change"), [("1.32", 12), ("1.08", -12)],
                         ids=["euro 10% stronger", "euro 10% weaker"])
def test_a_rate_move_is_neither_expansion_nor_contraction(db_url, tmp_path, end_rate, change):
    """The trap: a weaker euro must not read as contraction (nor a stronger as expansion)."""
    ingest(db_url, tmp_path, eur("e1", "2023-06-01T00:00:00Z"),
           rate("r1", "2023-12-31T00:00:00Z", "EUR", "USD", "1.20"),
           rate("r2", "2024-06-30T00:00:00Z", "EUR", "USD", end_rate))
    r = figures(db_url, "nrr", "--start", "2023-12-31", "--end", "2024-06-30")
    assert exact(r, "starting_mrr", "expansion", "contraction", "churn", "fx_impact",
                 "ending_mrr") == (120, 0, 0, 0, change, 120 + change)
    assert exact(r, "nrr_constant_currency") == (1,)
    moves = figures(db_url, "movements", "--start", "2024-06", "--end", "2024-06")["months"]
    assert exact(moves[0], "new", "expansion", "contraction", "churn", "reactivation",
                 "fx") == (0, 0, 0, 0, 0, change)


def test_an_upgrade_while_the_currency_weakens_keeps_both_parts_exact(db_url, tmp_path):
    """100 -> 150 EUR while EUR->USD falls 1.20 -> 1.00: at constant currency the upgrade
    is 150 x 1.20 - 120 = 60 expansion; the rate takes 150 x (1.00 - 1.20) = -30."""
    ingest(db_url, tmp_path, eur("e1", "2023-06-01T00:00:00Z"),
           changed("e2", "s1", "c1", "2024-03-01T00:00:00Z", amount="150.00"),
           rate("r1", "2023-12-31T00:00:00Z", "EUR", "USD", "1.20"),
           rate("r2", "2024-06-30T00:00:00Z", "EUR", "USD", "1.00"))
    r = figures(db_url, "nrr", "--start", "2023-12-31", "--end", "2024-06-30")
    assert exact(r, "starting_mrr", "expansion", "contraction", "fx_impact",
                 "ending_mrr") == (120, 60, 0, -30, 150)
    assert exact(r, "nrr", "nrr_constant_currency") == (Fraction(5, 4), Fraction(3, 2))
    # movements, March: 120 -> 150 x 1.20 = 180 expansion; June: the rate's -30 alone
    moves = figures(db_url, "movements", "--start", "2024-03", "--end", "2024-06")["months"]
    assert [exact(m, "expansion", "fx") for m in moves] == [(60, 0), (0, 0), (0, 0), (0, -30)]
    report = figures(db_url, "report", "--start", "2023-12-31", "--end", "2024-06-30")
    assert exact(report["movements"], "expansion", "fx") == (60, -30)
    assert exact(report, "expansion_from_price_or_plan") == (60,)
    explained = figures(db_url, "explain", "nrr", "--start", "2023-12-31", "--end", "2024-06-30")
    assert [(c["category"], c["fx_impact_exact"]) for c in explained["customers"]] == [
        ("expansion", "-30")]


def test_a_customer_billed_in_two_currencies_is_one_customer(db_url, tmp_path):
    ingest(db_url, tmp_path, eur("e1", "2024-01-01T00:00:00Z"),
           started("e2", "s2", "c1", "2024-01-01T00:00:00Z", "50.00"),
           rate("r1", "2023-12-31T00:00:00Z", "EUR", "USD", "1.10"))
    m = figures(db_url, "mrr", "--at", "2024-01-31")
    assert (m["mrr_exact"], m["customers"]) == ("160", 1)


# -- the rate in force --------------------------------------------------------------------

def test_an_inverse_pair_serves_and_the_later_of_the_two_directions_wins(db_url, tmp_path):
    ingest(db_url, tmp_path, eur("e1", "2024-01-01T00:00:00Z"),
           rate("r1", "2024-01-01T00:00:00Z", "USD", "EUR", "0.8"),  # EUR->USD 1.25
           rate("r2", "2024-02-01T00:00:00Z", "EUR", "USD", "1.1"),
           rate("r3", "2024-03-01T00:00:00Z", "USD", "EUR", "0.5"))  # EUR->USD 2
    assert [figures(db_url, "mrr", "--at", day)["mrr_exact"]
            for day in ("2024-01-15", "2024-02-15", "2024-03-15")] == ["125", "110", "200"]


def test_a_tie_goes_to_the_later_recording():
    quotes = [Quote("2024-01-01T00:00:00.000000Z", 1, "EUR", "USD", Fraction(11, 10)),
              Quote("2024-01-01T00:00:00.000000Z", 2, "USD", "EUR", Fraction(1, 2))]
    assert Rates(quotes).rate("EUR", "USD", "2024-01-02T00:00:00.000000Z") == 2


def test_triangulation_takes_the_alphabetically_first_intermediate_currency():
    at = "2024-01-01T00:00:00.000000Z"
    quotes = [Quote(at, 1, "GBP", "USD", Fraction(2)), Quote(at, 2, "JPY", "GBP", Fraction(1, 100)),
              Quote(at, 3, "EUR", "USD", Fraction(1)), Quote(at, 4, "EUR", "JPY", Fraction(50))]
    # JPY->USD: via EUR (1/50 x 1) before GBP (1/100 x 2), though both serve
    assert Rates(quotes).rate("JPY", "USD", "2024-01-02T00:00:00.000000Z") == Fraction(1, 50)
    with pytest.raises(MissingRate, match="no exchange rate KWD->USD in force at the end of "
                                          "2024-01-01 UTC"):
        Rates(quotes).rate("KWD", "USD", "2024-01-02T00:00:00.000000Z")


def test_ecb_rates_serve_a_usd_ledger_through_eur(db_url, tmp_path):
    """A GBP customer in a USD ledger, with the ECB's EUR-quoted rates only: GBP->USD is
    GBP->EUR (1 / the GBP column) x EUR->USD (the USD column), the sample's own numbers."""
    revledger(db_url, "import", "fx", str(HIST))
    ingest(db_url, tmp_path, started("e1", "s1", "c1", "2024-01-01T00:00:00Z", "100.00",
                                     currency="GBP"))
    m = figures(db_url, "mrr", "--at", "2024-12-31")
    assert Fraction(m["mrr_exact"]) == 100 * Fraction("1.0614") / Fraction("0.88763")
    # and a rate of 2024-11-29 serves every day until the next one (2024-12-31)
    m = figures(db_url, "mrr", "--at", "2024-12-30")
    assert Fraction(m["mrr_exact"]) == 100 * Fraction("1.0468") / Fraction("0.87303")


def test_a_voided_rate_stops_counting(db_url, tmp_path):
    ingest(db_url, tmp_path, eur("e1", "2024-01-01T00:00:00Z"),
           rate("r1", "2024-01-01T00:00:00Z", "EUR", "USD", "1.10"),
           rate("r2", "2024-02-01T00:00:00Z", "EUR", "USD", "9.99"))
    assert figures(db_url, "mrr", "--at", "2024-02-15")["mrr_exact"] == "999"
    ingest(db_url, tmp_path, voided("v1", "r2", reason="typo"))
    assert figures(db_url, "mrr", "--at", "2024-02-15")["mrr_exact"] == "110"


def test_a_late_rate_is_seen_only_as_known_after_it_was_recorded(db_url, tmp_path):
    ingest(db_url, tmp_path, eur("e1", "2024-01-01T00:00:00Z"),
           rate("r1", "2024-01-01T00:00:00Z", "EUR", "USD", "1.10"))
    before = figures(db_url, "mrr", "--at", "2024-03-31")["manifest"]["known_at"]
    ingest(db_url, tmp_path, rate("r2", "2024-03-01T00:00:00Z", "EUR", "USD", "1.30"))
    after = figures(db_url, "mrr", "--at", "2024-03-31")
    assert after["mrr_exact"] == "130"
    assert figures(db_url, "mrr", "--at", "2024-03-31", "--known-at", before)["mrr_exact"] == "110"
    assert figures(db_url, "mrr", "--at", "2024-03-31", "--known-at",
                   after["manifest"]["known_at"])["mrr_exact"] == "130"


def test_a_missing_rate_fails_with_one_line_naming_currency_and_instant(db_url, tmp_path):
    ingest(db_url, tmp_path, eur("e1", "2024-01-01T00:00:00Z"),
           rate("r1", "2024-03-01T00:00:00Z", "EUR", "USD", "1.10"))
    out = revledger(db_url, "mrr", "--at", "2024-02-15", code=1)
    assert out.strip().splitlines() == [
        "revledger: no exchange rate EUR->USD in force at the end of 2024-02-15 UTC: record "
        "an fx.rate of EUR (e.g. `revledger import fx FILE`) effective by then"]
    for args in (("nrr", "--start", "2024-01-31", "--end", "2024-03-31"),
                 ("movements", "--start", "2024-02", "--end", "2024-03"),
                 ("history", "--customer", "c1")):
        assert "no exchange rate EUR->USD" in revledger(db_url, *args, code=1)
    assert figures(db_url, "mrr", "--at", "2024-03-01")["mrr_exact"] == "110"


# -- display by minor unit -----------------------------------------------------------------

@pytest.mark.parametrize(("currency", "shown"), [("JPY", "3333"), ("KWD", "3333.333"),
                                                  ("USD", "3333.33")])
def test_figures_are_shown_with_the_reporting_currencys_minor_unit(db_url, tmp_path, currency,
                                                                    shown):
    revledger(db_url, "init", "--currency", currency)
    ingest(db_url, tmp_path, started("e1", "s1", "c1", "2024-01-01T00:00:00Z", "40000",
                                     currency=currency, interval="year"))
    m = figures(db_url, "mrr", "--at", "2024-01-31")
    assert (m["mrr"], m["mrr_exact"], m["reporting_currency"]) == (shown, "10000/3", currency)


def test_amounts_keep_every_decimal_in_the_currency_billed(db_url, tmp_path):
    ingest(db_url, tmp_path, started("e1", "s1", "c1", "2024-01-01T00:00:00Z", "12.3456",
                                     currency="KWD"),
           rate("r1", "2024-01-01T00:00:00Z", "KWD", "USD", "3.25"))
    h = figures(db_url, "history", "--customer", "c1")
    assert h["events"][0]["mrr_after_native"] == {"KWD": "7716/625"}
    assert h["events"][0]["mrr_after_exact"] == str(Fraction("12.3456") * Fraction("3.25"))


# -- the write side ------------------------------------------------------------------------

@pytest.mark.parametrize(("change", "reason"), [
    ({"quote": "EUR"}, "quote: must differ from base"),
    ({"rate": "0.000"}, "rate: must be greater than 0"),
    ({"rate": 1.1}, 'rate: 1.1 is a JSON number; write it as a string: "1.1"'),
    ({"base": "XYZ"}, "base: XYZ is not an active ISO 4217 currency code"),
    ({"rate": "1.0000000000001"}, "rate: must be a decimal string"),
])
def test_a_bad_rate_is_refused_with_its_reason(change, reason):
    with pytest.raises(InvalidEvent) as refused:
        parse_event({**rate("r1", "2024-01-01T00:00:00Z", "EUR", "USD", "1.1"), **change})
    assert refused.value.reason.startswith(reason)


def test_rates_are_idempotent_and_belong_to_no_customer(db_url, tmp_path):
    r1 = rate("r1", "2024-01-01T00:00:00Z", "EUR", "USD", "1.10")
    ingest(db_url, tmp_path, r1, {**r1, "customer_id": "c9"} | {"event_id": "r2"})
    path = tmp_path / "again.jsonl"
    path.write_bytes(jsonl(r1, {**r1, "rate": "1.20"}))
    out = revledger(db_url, "ingest", str(path), code=1)
    assert "duplicates 1" in out and "conflict" in out
    events = figures(db_url, "events", "--type", "fx.rate")
    assert [e["customer_id"] for e in events] == [None, None]


# -- the ECB's files ----------------------------------------------------------------------

def test_ecb_files_import_as_published_and_again_only_add_new_days(db_url):
    out = figures(db_url, "import", "fx", str(DAILY))
    assert (out["accepted"], out["ignored"]) == (29, 1)  # BGN: no longer an ISO 4217 code
    out = figures(db_url, "import", "fx", str(HIST))
    assert (out["accepted"], out["duplicates"]) == (14 * 29 - 29, 29)  # the daily's day
    out = figures(db_url, "import", "fx", str(HIST))
    assert (out["accepted"], out["duplicates"]) == (0, 14 * 29)


def test_an_ecb_line_becomes_one_rate_per_currency_with_an_id_of_day_and_pair():
    lines = list(EcbSource().parse([b"Date, USD, JPY, CYP, GBP, \r\n",
                                    b"14 June 2024, 1.0686, 168.10, N/A, , \r\n"]))
    assert [json.loads(line[1]) for line in lines if isinstance(line, tuple)] == [
        {"event_id": "ecb:2024-06-14:EUR/USD", "type": "fx.rate",
         "effective_at": "2024-06-14T00:00:00Z", "base": "EUR", "quote": "USD",
         "rate": "1.0686"},
        {"event_id": "ecb:2024-06-14:EUR/JPY", "type": "fx.rate",
         "effective_at": "2024-06-14T00:00:00Z", "base": "EUR", "quote": "JPY",
         "rate": "168.1"}]
    assert (plain_rate("2.000"), plain_rate("0.50")) == ("2", "0.5")


def test_a_file_that_is_not_the_ecbs_is_refused_in_one_line(db_url, tmp_path):
    path = tmp_path / "rates.csv"
    path.write_text("day,rate\n2024-01-01,1.1\n")
    out = revledger(db_url, "import", "fx", str(path), code=1)
    assert "line 1: -: not an ECB reference rate file" in out
