"""``tenfold auth users``: accounts from the command line (the first admin, say)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from tenfold.auth._users import Users
from tenfold.cli import with_platform

if TYPE_CHECKING:
    from tenfold._platform import Platform

__all__ = ["users_group"]


@click.group("users")
def users_group() -> None:
    """Create accounts and change their roles."""


@users_group.command("create")
@click.option("--username", required=True, help="The account's name.")
@click.option("--role", "roles", multiple=True, help="A role (repeat for several).")
@click.option(
    "--password",
    prompt=True,
    hide_input=True,
    confirmation_prompt=True,
    help="Asked for when not given (never pass it on a shared machine's command line).",
)
@with_platform
async def create(platform: Platform, username: str, roles: tuple[str, ...], password: str) -> None:
    """Create an account; prints its id."""
    user = await platform.get(Users).create(username, password, roles=roles)
    click.echo(user.id)


@users_group.command("roles")
@click.option("--username", required=True, help="The account's name.")
@click.option("--role", "roles", multiple=True, help="A role (repeat; none clears them).")
@with_platform
async def set_roles(platform: Platform, username: str, roles: tuple[str, ...]) -> None:
    """Replace an account's roles."""
    users = platform.get(Users)
    user = await users.by_username(username)
    if user is None:
        raise click.ClickException(f"no account named {username!r}")
    changed = await users.set_roles(user.id, roles)
    click.echo(" ".join(changed.roles))
