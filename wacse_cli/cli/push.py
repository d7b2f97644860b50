"""``wacse push``: share a trained model folder on the Hugging Face Hub, with a model card."""
from __future__ import annotations

from typing import Annotated, Optional

import typer

from . import options as opt
from .common import echo_json, note, report_errors


@report_errors
def push(
    folder: Annotated[str, typer.Argument(metavar="FOLDER", help="Model folder written by wacse train.")],
    repo: Annotated[str, typer.Option("--repo", metavar="USER/NAME", help="Hub repository id, like user/xlmr-wacse-jv-kk.")],
    private: Annotated[bool, typer.Option("--private", help="Make the repository private when creating it.")] = False,
    revision: Annotated[
        Optional[str], typer.Option(metavar="BRANCH", help="Branch to commit to (created if missing); default: main.")
    ] = None,
    commit_message: Annotated[Optional[str], typer.Option(metavar="TEXT", help="Message of the upload commit.")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Write the card, list the files, upload nothing.")] = False,
    new_card: Annotated[bool, typer.Option("--new-card", help="Regenerate README.md even if edited by hand.")] = False,
    json_out: opt.Json = False,
) -> None:
    """Upload a trained model in one commit, with a generated model card (README.md)."""
    from ..upload import push as run_push

    result = run_push(folder, repo, private=private, revision=revision, commit_message=commit_message,
                      dry_run=dry_run, new_card=new_card)
    if result["card"] == "kept":
        note(f"{folder}/README.md was edited by hand: kept as it is (pass --new-card to regenerate it)")
    if json_out:
        echo_json(result)
        return
    size = f"{len(result['files'])} files ({_size(result['total_bytes'])})"
    if dry_run:
        typer.echo("path\tbytes")
        for item in result["files"]:
            typer.echo(f"{item['path']}\t{item['bytes']}")
        typer.echo(f"total\t{result['total_bytes']}")
        note(f"dry run: would upload {size} to {repo} ({result['revision']}) in one commit; nothing was sent")
        return
    note(f"pushed {size} to https://huggingface.co/{repo} ({result['revision']}) in one commit")
    if result.get("commit_url"):
        typer.echo(result["commit_url"])


def _size(count: int) -> str:
    for unit in ("bytes", "KB", "MB", "GB"):
        if count < 1000 or unit == "GB":
            return f"{count} {unit}" if unit == "bytes" else f"{count:.1f} {unit}"
        count /= 1000
    return f"{count:.1f} GB"
