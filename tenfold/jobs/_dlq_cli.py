"""``tenfold jobs dlq list|show|retry|purge``: the dead-letter queue from the command line."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

import click
import orjson

from tenfold._errors import ConfigurationError
from tenfold.cli import fail, with_platform

if TYPE_CHECKING:
    from tenfold._platform import Platform
    from tenfold.jobs._dead import DeadLetter

__all__ = ["jobs_group"]

_json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON.")


def _echo_json(data: Any) -> None:
    click.echo(orjson.dumps(data, option=orjson.OPT_INDENT_2).decode())


def _when(seconds: float) -> str:
    return dt.datetime.fromtimestamp(seconds, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _jobs(platform: Platform) -> Any:
    from tenfold.jobs._jobs import Jobs

    return platform.get(Jobs)


@click.group("jobs")
def jobs_group() -> None:
    """Background jobs: the dead-letter queue."""


@jobs_group.group("dlq")
def dlq() -> None:
    """Tasks that failed for good: list, show, retry, purge."""


@dlq.command("list")
@click.option("--task", default=None, help="Only this task's dead letters.")
@click.option("--limit", type=click.IntRange(min=1), default=100, show_default=True)
@click.option("--after", type=int, default=None, help="Only ids above this one (paging).")
@_json_option
@with_platform
async def list_(
    platform: Platform, task: str | None, limit: int, after: int | None, as_json: bool
) -> None:
    """Dead letters, oldest first."""
    letters = await _jobs(platform).dead_letters.list(task=task, limit=limit, after=after)
    if as_json:
        _echo_json([letter.to_dict(traceback=False) for letter in letters])
        return
    if not letters:
        click.echo("no dead letters")
    for letter in letters:
        click.echo(
            f"{letter.id}\t{_when(letter.failed_at)}\t{letter.task}\t"
            f"attempts={letter.attempts}\t{letter.exception.splitlines()[0][:120]}"
        )


@dlq.command("show")
@click.argument("letter_id", type=int)
@_json_option
@with_platform
async def show(platform: Platform, letter_id: int, as_json: bool) -> None:
    """One dead letter with its arguments and traceback."""
    letter = await _jobs(platform).dead_letters.get(letter_id)
    if letter is None:
        fail(f"no dead letter {letter_id}", code=1)
    if as_json:
        _echo_json(letter.to_dict())
        return
    _print_letter(letter)


def _print_letter(letter: DeadLetter) -> None:
    for name in ("id", "task", "message_id", "queue", "attempts", "request_id"):
        click.echo(f"{name}: {getattr(letter, name)}")
    click.echo(f"failed_at: {_when(letter.failed_at)}")
    truncated = " (cut: cannot be retried)" if letter.args_truncated else ""
    click.echo(f"arguments{truncated}: {letter.args}")
    click.echo(f"exception: {letter.exception}")
    click.echo(letter.traceback.rstrip())


@dlq.command("retry")
@click.argument("letter_ids", type=int, nargs=-1)
@click.option("--all", "every", is_flag=True, help="Retry every dead letter (of --task).")
@click.option("--task", default=None, help="With --all: only this task's.")
@_json_option
@with_platform
async def retry(
    platform: Platform, letter_ids: tuple[int, ...], every: bool, task: str | None, as_json: bool
) -> None:
    """Send dead-lettered tasks again, as new messages at attempt 1; their rows go."""
    jobs = _jobs(platform)
    if bool(letter_ids) == every:
        fail("give dead letter ids, or --all", code=2)
    if every:
        letters = await jobs.dead_letters.list(task=task, limit=1_000_000)
    else:
        found = [await jobs.dead_letters.get(i) for i in letter_ids]
        missing = [i for i, letter in zip(letter_ids, found, strict=True) if letter is None]
        if missing:
            fail(f"no dead letter {', '.join(map(str, missing))}", code=1)
        letters = [letter for letter in found if letter is not None]
    retried: list[dict[str, Any]] = []
    refused: list[dict[str, Any]] = []
    for letter in letters:
        try:
            message_id = await jobs.retry_dead(letter)
        except (ValueError, LookupError, ConfigurationError) as exc:
            refused.append({"id": letter.id, "task": letter.task, "reason": str(exc)})
        else:
            retried.append({"id": letter.id, "task": letter.task, "message_id": message_id})
    if as_json:
        _echo_json({"retried": retried, "refused": refused})
    else:
        for item in retried:
            click.echo(f"retried {item['id']} ({item['task']}) as message {item['message_id']}")
        for item in refused:
            click.echo(f"not retried {item['id']} ({item['task']}): {item['reason']}", err=True)
    if refused:
        raise SystemExit(1)


@dlq.command("purge")
@click.option("--task", default=None, help="Only this task's dead letters.")
@click.option(
    "--older-than",
    type=click.FloatRange(min=0),
    default=None,
    help="Only those failed this many seconds ago or more.",
)
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@_json_option
@with_platform
async def purge(
    platform: Platform, task: str | None, older_than: float | None, yes: bool, as_json: bool
) -> None:
    """Delete dead letters for good."""
    jobs = _jobs(platform)
    if not yes:
        what = f"the dead letters of {task}" if task else "every dead letter"
        click.confirm(f"delete {what}?", abort=True, err=True)
    before = jobs.clock() - older_than if older_than is not None else None
    count = await jobs.dead_letters.purge(task=task, before=before)
    if as_json:
        _echo_json({"purged": count})
    else:
        click.echo(f"purged {count} dead letter{'s' if count != 1 else ''}")
