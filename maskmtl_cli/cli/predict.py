"""`maskmtl predict` (placeholder until issue 6 lands)."""

from maskmtl_cli.cli.app import app, not_built_yet


@app.command("predict")
def predict_command() -> None:
    """Not built yet (issue 6)."""
    not_built_yet("predict", "issue 6")
