"""`revledger keygen`, `checkpoint`, `prove` and `audit`: signed checkpoints of the
ledger's Merkle tree, proofs as files, and their offline check."""

from __future__ import annotations

import sys
from typing import TextIO

import click

from commands.options import known_at_option


@click.command()
@click.option("--name", required=True,
              help="The key's name, printed in every signature (e.g. example.com/finance).")
@click.option("--out", "prefix", required=True, metavar="PREFIX",
              help="Writes PREFIX.key (private, mode 0600) and PREFIX.pub (verifier key).")
def keygen(name: str, prefix: str) -> None:
    """Make an Ed25519 signing key for checkpoints. Keep PREFIX.key secret; give
    PREFIX.pub to whoever checks the checkpoints."""
    from services.checkpoints import keygen as make

    private, public, verifier = make(name, prefix)
    click.echo(f"wrote {private} (keep it secret) and {public}: {verifier}")


@click.command()
@click.option("--key", type=click.File("r"), required=True, help="The signing key (.key).")
@click.option("--out", type=click.Path(dir_okay=False, writable=True), default=None,
              help="Write the checkpoint to this file (default: standard output).")
@known_at_option
@click.pass_obj
def checkpoint(db: str, key: TextIO, out: str | None, known_at: str | None) -> None:
    """Sign a checkpoint of the ledger's Merkle tree (C2SP tlog-checkpoint): origin, tree
    size, root. Publish it outside the database: anything after the last published
    checkpoint can still be cut undetected."""
    from services.checkpoints import checkpoint as sign

    note = sign(db, key.read(), known_at)
    if out is None:
        click.echo(note, nl=False)
    else:
        _write(out, note)
        lines = note.split("\n")
        click.echo(f"wrote {out}: {lines[1]} events, root {lines[2]}")


def _write(path: str, text: str) -> None:
    try:
        with open(path, "w", encoding="utf-8") as out:
            out.write(text)
    except OSError as exc:
        raise click.FileError(path, exc.strerror) from None


@click.group()
def prove() -> None:
    """Write a Merkle proof (RFC 9162) as a file, for `revledger_verify`."""


@prove.command("consistency")
@click.argument("old", type=click.File("r"))
@click.argument("new", type=click.File("r"), required=False)
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="The proof file.")
@click.pass_obj
def prove_consistency(db: str, old: TextIO, new: TextIO | None, out: str) -> None:
    """Prove that the tree OLD signed is a prefix of the tree NEW signed (of the current
    tree without NEW): nothing it covered was changed or removed since."""
    from services.checkpoints import prove_consistency as make
    from services.checkpoints import write_json

    doc = make(db, old.read(), new.read() if new else None)
    write_json(doc, out)
    click.echo(f"wrote {out}: {doc['old_size']} -> {doc['new_size']} events, "
               f"{len(doc['proof'])} hashes")


@prove.command("inclusion")
@click.argument("event_id")
@click.option("--checkpoint", type=click.File("r"), required=True)
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="The proof file.")
@click.pass_obj
def prove_inclusion(db: str, event_id: str, checkpoint: TextIO, out: str) -> None:
    """Export the event as stored, with the proof that it is in the checkpoint's tree."""
    from services.checkpoints import prove_inclusion as make
    from services.checkpoints import write_json

    doc = make(db, event_id, checkpoint.read())
    write_json(doc, out)
    click.echo(f"wrote {out}: leaf {doc['leaf_index']} of {doc['size']}, "
               f"{len(doc['proof'])} hashes")


@click.group()
def audit() -> None:
    """Export events with what proves them, and check proofs offline."""


@audit.command("export")
@click.option("--checkpoint", type=click.File("r"), required=True)
@click.option("--from-position", "first", type=click.IntRange(min=1), default=None)
@click.option("--to-position", "last", type=click.IntRange(min=1), default=None)
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="The slice file.")
@click.pass_obj
def audit_export(db: str, checkpoint: TextIO, first: int | None, last: int | None,
                 out: str) -> None:
    """Export the stored events between two positions (all the checkpoint covers by
    default) with the hashes that tie them to the checkpoint's root."""
    from services.checkpoints import export_slice, write_json

    doc = export_slice(db, checkpoint.read(), first, last)
    write_json(doc, out)
    click.echo(f"wrote {out}: {len(doc['events'])} events from leaf {doc['start']}")


@audit.command("verify", context_settings={"ignore_unknown_options": True})
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def audit_verify(args: tuple[str, ...]) -> None:
    """The offline verifier, as `python -m revledger_verify ARGS` runs it: checkpoint,
    consistency, inclusion or slice (see `revledger audit verify -- --help`)."""
    import revledger_verify

    sys.exit(revledger_verify.main(list(args)))
