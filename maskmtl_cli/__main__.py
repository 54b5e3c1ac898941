"""Allow ``python -m maskmtl_cli``."""

from maskmtl_cli.cli import app

app(prog_name="maskmtl")
