"""Signed checkpoints and proofs, on both stores: what a checkpoint published outside the
database lets an auditor catch, even against someone who can rewrite the database whole
(events, chain links and tree, all recomputed to agree)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from uuid import UUID

import pytest
from click.testing import CliRunner

import revledger_verify as offline
from cli import main
from ledger import merkle
from ledger.application import LedgerApplication
from ledger.chain import extend
from ledger.events import content_hash
from services.ingest import ingest_feed
from tests.feeds import jsonl, started
from tests.intruder import Intruder, stream_id
from tests.test_audit import FEED as AUDIT_FEED

FEED = [*AUDIT_FEED, started("e6", "s3", "c3", "2024-03-01T00:00:00Z", amount="70.00")]


def run(db_url: str, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["--db", db_url, *args])
    return result.exit_code, (result.stdout + result.stderr).strip()


def ok(db_url: str, *args: str) -> str:
    code, output = run(db_url, *args)
    assert code == 0, output
    return output


def offline_check(*args: str) -> tuple[int, str]:
    """`python -m revledger_verify ARGS`, in-process."""
    try:
        return 0, offline.run(list(args))
    except offline.VerificationError as exc:
        return 1, str(exc)


@pytest.fixture
def signed(db_url, tmp_path):
    """A ledger of 1 + 6 events, ingested three times; a key; checkpoints after the first
    ingest (c1.checkpoint, 3 events) and the second (c2.checkpoint, 5 events)."""
    ok(db_url, "keygen", "--name", "example.com/finance", "--out", str(tmp_path / "k"))
    ingest_feed(db_url, jsonl(*FEED[:2]).splitlines())
    ok(db_url, "checkpoint", "--key", str(tmp_path / "k.key"), "--out",
       str(tmp_path / "c1.checkpoint"))
    ingest_feed(db_url, jsonl(*FEED[2:4]).splitlines())
    ok(db_url, "checkpoint", "--key", str(tmp_path / "k.key"), "--out",
       str(tmp_path / "c2.checkpoint"))
    ingest_feed(db_url, jsonl(*FEED[4:]).splitlines())
    return db_url, tmp_path


def verify_against(db_url: str, tmp: Path, name: str = "c2.checkpoint",
                   key: str = "k.pub") -> tuple[int, str]:
    return run(db_url, "verify", "--checkpoint", str(tmp / name), "--key", str(tmp / key))


def unguard(db_url: str, raw_sql) -> None:
    """Drop the guards of every ledger table, as an intruder with the owner's rights."""
    tables = ("stored_events" if db_url.startswith("sqlite") else "revledger_events",
              "event_keys", "event_chain", "merkle_tree")
    for table in tables:
        if db_url.startswith("sqlite"):
            for op in ("update", "delete"):
                raw_sql(f"DROP TRIGGER IF EXISTS {table}_no_{op}")
        else:
            raw_sql(f"ALTER TABLE {table} DISABLE TRIGGER USER")


def position_column(db_url: str) -> str:
    return "rowid" if db_url.startswith("sqlite") else "notification_id"


def rewrite_derived(db_url: str, raw_sql) -> None:
    """The strongest intruder: recompute every chain link and the whole tree from the
    events as they now are, so that the database agrees with itself. (Opening the ledger
    lays its guards again: they are dropped first.)"""
    unguard(db_url, raw_sql)
    p = position_column(db_url)
    rows = [(r[0], UUID(str(r[1])).bytes, r[2], r[3],
             r[4].encode() if isinstance(r[4], str) else bytes(r[4]))
            for r in raw_sql(f"SELECT {p}, originator_id, originator_version, topic, state "
                             f"FROM {{events}} ORDER BY {p}")]
    from ledger.chain import recorded_at

    links = list(extend(None, [(*r, recorded_at(r[4])) for r in rows]))
    from ledger.chain import canonical_bytes

    leaves = [merkle.leaf_hash(canonical_bytes(*r)) for r in rows]
    nodes = list(merkle.append(0, [], leaves))
    raw_sql("DELETE FROM event_chain")
    raw_sql("DELETE FROM merkle_tree")
    for link in links:
        raw_sql(f"INSERT INTO event_chain VALUES ({link.position}, '{link.recorded_at}', "
                f"'{link.chain_sha256}')")
    for level, idx, digest in nodes:
        position = rows[idx][0] if level == 0 else "NULL"
        raw_sql(f"INSERT INTO merkle_tree VALUES ({level}, {idx}, {position}, "
                f"'{digest.hex()}')")


def positions(raw_sql) -> list[int]:
    return [r[0] for r in raw_sql("SELECT position FROM event_chain ORDER BY position")]


def test_an_untouched_ledger_proves_its_checkpoint_and_reports_what_follows(signed):
    db_url, tmp = signed
    code, output = verify_against(db_url, tmp)
    assert code == 0, output
    assert "Merkle tree of 7 leaves" in output
    assert "the checkpoint's 5 events are proven, 2 after it unproven" in output
    checkpoint = (tmp / "c2.checkpoint").read_text()
    origin, size, root = checkpoint.split("\n")[:3]
    assert origin.startswith("revledger/") and size == "5"
    reflects = json.loads(ok(db_url, "mrr", "--at", "2024-03-31", "--format", "json",
                             "--known-at", _recorded(db_url, 5)))["manifest"]
    assert reflects["merkle_tree"] == {"size": 5, "root": root}


def _recorded(db_url: str, leaves: int) -> str:
    """The recording instant of the event that is leaf `leaves - 1`."""
    events = json.loads(ok(db_url, "events", "--format", "json"))
    return events[leaves - 2]["recorded_at"]  # `events` lists the canonical events only


def test_the_proofs_verify_offline(signed):
    db_url, tmp = signed
    k, c1, c2 = (str(tmp / n) for n in ("k.pub", "c1.checkpoint", "c2.checkpoint"))
    ok(db_url, "prove", "consistency", c1, c2, "--out", str(tmp / "cons.json"))
    ok(db_url, "prove", "inclusion", "e3", "--checkpoint", c2, "--out", str(tmp / "inc.json"))
    ok(db_url, "audit", "export", "--checkpoint", c2, "--out", str(tmp / "all.json"))
    assert offline_check("checkpoint", c2, "--key", k)[0] == 0
    assert offline_check("consistency", str(tmp / "cons.json"), "--old", c1, "--new", c2,
                         "--key", k) == (0, "consistent: the tree of 3 leaves is a prefix "
                                            "of the tree of 5")
    code, line = offline_check("inclusion", str(tmp / "inc.json"), "--checkpoint", c2,
                               "--key", k)
    assert code == 0 and "is leaf 3 of the tree of 5 leaves" in line
    assert offline_check("slice", str(tmp / "all.json"), "--checkpoint", c2, "--key", k) == (
        0, "slice verified: leaves 0..4 of the tree of 5 leaves")
    code, output = run(db_url, "audit", "verify", "checkpoint", c1, "--key", k)
    assert code == 0 and ", 3 leaves, root " in output


def test_an_altered_exported_event_or_proof_fails_offline(signed):
    db_url, tmp = signed
    c2, k = str(tmp / "c2.checkpoint"), str(tmp / "k.pub")
    ok(db_url, "prove", "inclusion", "e2", "--checkpoint", c2, "--out", str(tmp / "inc.json"))
    ok(db_url, "audit", "export", "--checkpoint", c2, "--out", str(tmp / "all.json"))
    inclusion = json.loads((tmp / "inc.json").read_text())
    state = inclusion["event"]["state"]
    import base64

    forged = base64.b64decode(state).replace(b"50.00", b"5.00")
    inclusion["event"]["state"] = base64.b64encode(forged).decode()
    (tmp / "bad.json").write_text(json.dumps(inclusion))
    assert offline_check("inclusion", str(tmp / "bad.json"), "--checkpoint", c2,
                         "--key", k)[0] == 1
    sliced = json.loads((tmp / "all.json").read_text())
    sliced["events"][1], sliced["events"][2] = sliced["events"][2], sliced["events"][1]
    (tmp / "bad.json").write_text(json.dumps(sliced))
    code, line = offline_check("slice", str(tmp / "bad.json"), "--checkpoint", c2, "--key", k)
    assert code == 1 and "not in position order" in line
    sliced = json.loads((tmp / "all.json").read_text())
    del sliced["events"][-1]
    (tmp / "bad.json").write_text(json.dumps(sliced))
    assert offline_check("slice", str(tmp / "bad.json"), "--checkpoint", c2, "--key", k)[0] == 1


def test_a_cut_tail_is_caught_even_when_chain_and_tree_are_cut_too(signed, raw_sql):
    db_url, tmp = signed
    unguard(db_url, raw_sql)
    last = positions(raw_sql)[-3:]  # the last three events: two after c2, one in it
    p = position_column(db_url)
    raw_sql(f"DELETE FROM {{events}} WHERE {p} >= {last[0]}")
    raw_sql(f"DELETE FROM event_keys WHERE position >= {last[0]}")
    raw_sql(f"DELETE FROM event_chain WHERE position >= {last[0]}")
    code, output = run(db_url, "verify")
    assert code == 1 and "the Merkle tree has 7 leaves but 4 events are chained" in output
    rewrite_derived(db_url, raw_sql)  # and the tree cut to match, the projection rebuilt
    ok(db_url, "replay")
    code, output = run(db_url, "verify")
    assert code == 0, output  # the database agrees with itself...
    code, output = verify_against(db_url, tmp)  # ...but not with what was published
    assert code == 1
    assert "the ledger holds 4 events, the checkpoint signed 5: events were cut" in output
    assert verify_against(db_url, tmp, "c1.checkpoint")[0] == 0  # c1 still holds


@pytest.mark.parametrize("tamper", ["rewritten", "swapped"])
def test_a_rewritten_or_reordered_event_below_the_checkpoint_is_caught(signed, raw_sql,
                                                                         tamper):
    db_url, tmp = signed
    unguard(db_url, raw_sql)
    p = position_column(db_url)
    e1, e2 = positions(raw_sql)[1:3]
    if tamper == "rewritten":
        raw_sql(f"UPDATE {{events}} SET state = REPLACE(state, '50.00', '500.00') "
                f"WHERE {p} = {e2}" if db_url.startswith("sqlite") else
                f"UPDATE {{events}} SET state = convert_to(replace(convert_from(state, "
                f"'UTF8'), '50.00', '500.00'), 'UTF8') WHERE {p} = {e2}")
        (state,) = raw_sql(f"SELECT state FROM {{events}} WHERE {p} = {e2}")[0]
        payload = json.loads(bytes(state) if not isinstance(state, str) else state)["payload"]
        raw_sql(f"UPDATE event_keys SET content_sha256 = '{content_hash(payload)}' "
                f"WHERE position = {e2}")  # the index agrees with the new bytes
    else:
        for table, column in (("{events}", p), ("event_keys", "position")):
            raw_sql(f"UPDATE {table} SET {column} = -{column} WHERE {column} IN ({e1}, {e2})")
            raw_sql(f"UPDATE {table} SET {column} = {e2} WHERE {column} = -{e1}")
            raw_sql(f"UPDATE {table} SET {column} = {e1} WHERE {column} = -{e2}")
    rewrite_derived(db_url, raw_sql)
    ok(db_url, "replay")
    assert run(db_url, "verify")[0] == 0  # the database agrees with itself...
    code, output = verify_against(db_url, tmp)  # ...but not with what was published
    assert code == 1
    assert "the first 5 events are not those the checkpoint signed" in output
    code, output = run(db_url, "prove", "consistency", str(tmp / "c1.checkpoint"),
                       "--out", str(tmp / "p.json"))
    assert code == 1 and "is not the one the checkpoint signed" in output


def test_a_forged_event_appended_after_the_checkpoint_is_unproven(signed):
    """A valid event forged at the tail with its link, index row and leaves (what a role
    that may INSERT can do): nothing in the database tells it from a delivery, and the
    checkpoint does not vouch for it."""
    db_url, tmp = signed
    Intruder(db_url).append(started("f1", "s9", "c9", "2024-03-01T00:00:00Z"),
                            stream_id("subscription:s9"), 1, customer="c9",
                            subscription="s9", opens="s9")
    code, output = verify_against(db_url, tmp)
    assert code == 0, output  # the checkpoint's events are intact; what follows is not proven
    assert "the checkpoint's 5 events are proven, 3 after it unproven" in output
    code, output = run(db_url, "prove", "inclusion", "f1", "--checkpoint",
                       str(tmp / "c2.checkpoint"), "--out", str(tmp / "p.json"))
    assert code == 1 and "recorded after the checkpoint" in output


def test_a_wrong_key_or_an_altered_checkpoint_is_refused(signed):
    db_url, tmp = signed
    ok(db_url, "keygen", "--name", "example.com/finance", "--out", str(tmp / "other"))
    code, output = verify_against(db_url, tmp, key="other.pub")  # same name, another id
    assert code == 1 and "carries no signature by the key example.com/finance" in output
    assert offline_check("checkpoint", str(tmp / "c2.checkpoint"), "--key",
                         str(tmp / "other.pub"))[0] == 1
    text = (tmp / "c2.checkpoint").read_text().replace("\n5\n", "\n4\n")
    (tmp / "altered.checkpoint").write_text(text)
    code, output = verify_against(db_url, tmp, "altered.checkpoint")
    assert code == 1 and "does not verify" in output
    ok(db_url, "keygen", "--name", "someone.else", "--out", str(tmp / "stranger"))
    code, output = verify_against(db_url, tmp, key="stranger.pub")
    assert code == 1 and "carries no signature by the key someone.else" in output


def test_a_checkpoint_of_another_ledger_is_refused(signed):
    db_url, tmp = signed
    sqlite_url = f"sqlite:///{tmp / 'other.db'}"
    ingest_feed(sqlite_url, jsonl(*FEED).splitlines())
    ok(sqlite_url, "checkpoint", "--key", str(tmp / "k.key"), "--out",
       str(tmp / "other.checkpoint"))
    code, output = verify_against(db_url, tmp, "other.checkpoint")
    assert code == 1 and "the checkpoint is of another ledger" in output
    code, output = run(db_url, "prove", "consistency", str(tmp / "other.checkpoint"),
                       "--out", str(tmp / "p.json"))
    assert code == 1 and "another ledger" in output


def test_the_stored_tree_proves_every_pair_of_sizes_up_to_64(db_url):
    feed = [started(f"e{i}", f"s{i}", f"c{i % 5}", "2024-01-01T00:00:00Z")
            for i in range(63)]
    at, batch = 0, 1
    while at < len(feed):  # transactions of 1, 2, 3, ... events
        ingest_feed(db_url, jsonl(*feed[at:at + batch]).splitlines())
        at, batch = at + batch, batch + 1
    app = LedgerApplication(db_url)
    try:
        recorder = app.ledger_recorder
        leaves = [offline.stored_leaf(r[0], UUID(str(r[1])).bytes, r[2], r[3], r[4])
                  for r in recorder.iter_chain()]
        assert recorder.tree_size() == len(leaves) == 64
        roots = [offline.root_of_leaves(leaves[:n]) for n in range(65)]
        for new in range(1, 65):
            assert recorder.tree_root(new) == roots[new]
            for old in range(1, new + 1):
                proof = recorder.tree_compute(
                    lambda nodes, o=old, n=new: merkle.consistency_proof(o, n, nodes))
                assert len(proof) <= 2 * math.ceil(math.log2(new)) if new > 1 else not proof
                assert offline.verify_consistency(old, new, proof, roots[old], roots[new])
            for index in range(new):
                path = recorder.tree_compute(
                    lambda nodes, i=index, n=new: merkle.inclusion_path(i, n, nodes))
                assert offline.verify_inclusion(index, new, leaves[index], path, roots[new])
    finally:
        app.close()


def test_a_ledger_from_before_the_tree_gets_its_tree_when_opened(db_url, raw_sql):
    ingest_feed(db_url, jsonl(*FEED).splitlines())
    expected = ok(db_url, "mrr", "--at", "2024-03-31", "--format", "json")
    unguard(db_url, raw_sql)
    raw_sql("DELETE FROM merkle_tree")
    assert json.loads(ok(db_url, "mrr", "--at", "2024-03-31", "--format", "json")) == \
        json.loads(expected)
    assert run(db_url, "verify")[0] == 0


def test_the_verifier_runs_alone_as_one_file_with_nothing_but_python(signed):
    """Copied alone into an empty directory, with `cryptography` made unimportable: the
    signature is checked in plain Python, and nothing of revledger is loaded."""
    import shutil
    import subprocess
    import sys

    db_url, tmp = signed
    ok(db_url, "prove", "inclusion", "e4", "--checkpoint", str(tmp / "c2.checkpoint"),
       "--out", str(tmp / "inc.json"))
    alone = tmp / "alone"
    alone.mkdir()
    shutil.copy(Path(offline.__file__), alone)
    script = ("import sys, runpy; sys.modules['cryptography'] = None; "
              "sys.argv = ['revledger_verify', *sys.argv[1:]]; "
              "code = 0\ntry: runpy.run_module('revledger_verify', run_name='__main__')\n"
              "except SystemExit as exit: code = exit.code\n"
              "assert not {'ledger', 'services', 'cli'} & set(sys.modules), 'revledger loaded'\n"
              "sys.exit(code)")
    for args, expected in (
        (["inclusion", str(tmp / "inc.json"), "--checkpoint", str(tmp / "c2.checkpoint")], 0),
        (["checkpoint", str(tmp / "c2.checkpoint")], 0),
    ):
        for key, code in (("k.pub", expected), ("other.pub", 1)):
            if key == "other.pub" and not (tmp / key).exists():
                ok(db_url, "keygen", "--name", "example.com/finance", "--out",
                   str(tmp / "other"))
            done = subprocess.run([sys.executable, "-E", "-s", "-c", script, *args, "--key",
                                   str(tmp / key)], cwd=alone, capture_output=True, text=True)
            assert done.returncode == code, done.stdout + done.stderr
