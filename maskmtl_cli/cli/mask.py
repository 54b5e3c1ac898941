"""`maskmtl mask` (placeholder until issue 3 lands)."""

from maskmtl_cli.cli.app import app, not_built_yet


@app.command("mask")
def mask_command() -> None:
    """Not built yet (issue 3)."""
    not_built_yet("mask", "issue 3")
