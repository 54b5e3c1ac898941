"""`maskmtl eval` (placeholder until issue 5 lands)."""

from maskmtl_cli.cli.app import app, not_built_yet


@app.command("eval")
def evaluate_command() -> None:
    """Not built yet (issue 5)."""
    not_built_yet("eval", "issue 5")
