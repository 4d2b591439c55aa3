"""The ``pyrochar`` command: a thin click layer over the library.

Every user-facing failure is a :class:`pyrochar.errors.PyrocharError`; the group
below turns it into one ``Error: ...`` line and exit status 1, never a traceback.
A usage error (a bad option value, a missing argument, an unknown command) is one
line too, ending with where to read the command's help, and exit status 2.
"""

from __future__ import annotations

import warnings

import click

from pyrochar import __version__
from pyrochar.errors import PyrocharError


class OneLineUsageError(click.UsageError):
    """A usage error shown as one line (click's own shows a usage block of three)."""

    def show(self, file=None):
        message = self.format_message().rstrip()
        if self.ctx is not None:
            message += ("" if message.endswith((".", "!", "?")) else ".") + f" See '{self.ctx.command_path} --help'."
        click.echo(f"Error: {message}", file=file, err=file is None)


class FriendlyGroup(click.Group):
    """A click group that reports PyrocharError and usage errors as one-line messages."""

    def make_context(self, info_name, args, parent=None, **extra):
        try:  # the group's own options: `pyrochar --bogus`
            return super().make_context(info_name, args, parent=parent, **extra)
        except click.UsageError as e:
            raise _one_line(e) from None

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except click.UsageError as e:  # a subcommand's options, an unknown command
            raise _one_line(e) from None
        except PyrocharError as e:
            from pyrochar.distributed import label  # "rank R of N: ..." under torchrun

            raise click.ClickException(label(str(e))) from None
        except KeyboardInterrupt:  # Ctrl-C: one line and the shell's usual status (128 + SIGINT)
            click.echo("Interrupted.", err=True)
            raise click.exceptions.Exit(130) from None


def _one_line(e: click.UsageError) -> click.UsageError:
    if isinstance(e, OneLineUsageError):
        return e
    return OneLineUsageError(e.format_message(), e.ctx)


@click.group(cls=FriendlyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="pyrochar")
def main():
    """Neuro-symbolic generative models of handwritten characters (Feinman & Lake 2020)."""
    import pyro

    from pyrochar.allocator import tune_allocator

    # Pyro's argument/support checks cost time at every site: off for users, on in tests.
    pyro.enable_validation(False)
    # Large tensors stay in the heap between steps (pyrochar/allocator.py, docs/performance.md).
    tune_allocator()
    # A warning (an unwritable cache, a collapsing importance sampler) is one line too.
    warnings.showwarning = _one_line_warning


def _one_line_warning(message, category, filename, lineno, file=None, line=None):
    click.echo(f"Warning: {message}", err=True)


def _register() -> None:
    from . import data_commands, image_commands, model_commands, oneshot_commands

    main.add_command(data_commands.data)
    main.add_command(image_commands.parse)
    main.add_command(image_commands.exemplars)
    main.add_command(oneshot_commands.classify)
    for command in model_commands.COMMANDS:
        main.add_command(command)
    from .serve_command import serve
    main.add_command(serve)


_register()

if __name__ == "__main__":  # pragma: no cover
    main()
