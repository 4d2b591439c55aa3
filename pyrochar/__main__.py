"""``python -m pyrochar``: the ``pyrochar`` command, also what ``torchrun -m pyrochar`` starts
in each process (docs/distributed.md)."""

from pyrochar_cli.main import main

if __name__ == "__main__":
    main(prog_name="pyrochar")
