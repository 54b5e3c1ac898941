"""`maskmtl train` (placeholder until issue 4 lands)."""

from maskmtl_cli.cli.app import app, not_built_yet


@app.command("train")
def train_command() -> None:
    """Not built yet (issue 4)."""
    not_built_yet("train", "issue 4")
