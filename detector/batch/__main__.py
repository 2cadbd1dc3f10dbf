"""``python -m detector.batch batch ...``: the batch command on its own.

Same options as ``detector batch``; useful on cluster images that ship only
the library, and to run the command without the rest of the CLI's imports.
"""
import typer

from detector.batch.cli import register

app = typer.Typer(add_completion=False, no_args_is_help=True)
register(app)


@app.callback()
def _main() -> None:
    """Batch scoring of call archives."""


if __name__ == "__main__":
    app()
