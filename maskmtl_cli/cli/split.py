"""`maskmtl split` (being built)."""

from maskmtl_cli.cli.app import app, not_built_yet


@app.command("split")
def split_command() -> None:
    """Not built yet (issue 2)."""
    not_built_yet("split", "issue 2")
