"""The Typer app and the CLI's single error boundary."""

from __future__ import annotations

import functools
from typing import Annotated, Callable, TypeVar

import typer

from maskmtl_cli import __version__

F = TypeVar("F", bound=Callable)

app = typer.Typer(
    name="maskmtl",
    help=(
        "Masked-face attribute toolkit: overlay synthetic masks, split datasets, train and "
        "evaluate MaskMTL multi-task models (age, gender, ethnicity), and predict on photos."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)


def _version_callback(value: bool) -> None:
    if value:
        typer.echo(f"maskmtl {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[
        bool,
        typer.Option("--version", help="Print the version and exit.", callback=_version_callback,
                     is_eager=True),
    ] = False,
) -> None:
    """Masked-face attribute toolkit (MaskMTL)."""


def guarded(func: F) -> F:
    """Wrap a command so core errors become ``Error: ...`` on stderr and an exit code.

    Exit codes: 0 success, 1 a ``MaskmtlError`` (bad input, data or model) or an OSError of
    the place (permission denied, read-only file system, full disk: one line, no traceback),
    2 usage error (Typer), 3 no face found with ``predict --strict``, 130 interrupted by Ctrl-C.
    """
    from maskmtl_cli.errors import MaskmtlError, place_error_message

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except MaskmtlError as error:
            from rich.markup import escape

            from maskmtl_cli.console import err_console

            # escaped: a message may hold brackets, e.g. "pip install 'maskmtl[ray]'"
            err_console.print(f"[bold red]Error:[/] {escape(str(error))}", highlight=False,
                              soft_wrap=True)
            raise typer.Exit(code=error.exit_code) from None
        except OSError as error:
            message = place_error_message(error)
            if message is None:
                raise
            from rich.markup import escape

            from maskmtl_cli.console import err_console

            err_console.print(f"[bold red]Error:[/] {escape(message)}", highlight=False,
                              soft_wrap=True)
            raise typer.Exit(code=1) from None
        except KeyboardInterrupt:
            from maskmtl_cli.console import err_console

            err_console.print("[yellow]Interrupted.[/] Finished outputs are kept; rerun to resume.")
            raise typer.Exit(code=130) from None

    return wrapper  # type: ignore[return-value]
