"""``pyrochar serve``: the drawing pad (a local web page) over the project's models."""

from __future__ import annotations

import ipaddress
import socket
from pathlib import Path

import click

from pyrochar.errors import PyrocharError

from .model_commands import MODEL_CHOICES

LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")
MAX_CONNECTIONS = 64


def is_loopback(host: str) -> bool:
    """Whether ``host`` names this machine only (localhost, 127.x.x.x, ::1)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on host:port (port 0: any free port); one clear error if not."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as e:
        raise PyrocharError(f"--host {host}: cannot resolve it ({e.strerror})") from None
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
    except OSError as e:
        sock.close()
        raise PyrocharError(f"cannot listen on {host}:{port} ({e.strerror}); choose another --port "
                            "(0 picks a free one)") from None
    sock.listen(128)
    return sock


def _models(model_name: str, checkpoint: Path | None) -> dict:
    """The four shipped models, the page's default first; ``checkpoint`` replaces that one."""
    from pyrochar.checkpoint import load_checkpoint
    from pyrochar.serve.app import load_shipped_models

    models = load_shipped_models()
    if checkpoint is not None:
        models[model_name] = load_checkpoint(checkpoint, expected_model=model_name).eval()
    return {model_name: models.pop(model_name), **models}


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on. Anything but this machine (loopback) lets others use the "
                   "pad: it is refused unless given here, with a warning.")
@click.option("--port", type=click.IntRange(0, 65535), default=8000, show_default=True,
              help="Port (0: any free port; the address is printed).")
@click.option("--model", "model_name", type=click.Choice(MODEL_CHOICES), default="full-ns",
              show_default=True, help="The model the page starts with (all four are offered).")
@click.option("--checkpoint", type=click.Path(path_type=Path, exists=True, dir_okay=False), default=None,
              help="Trained weights for --model (default: the shipped ones).")
@click.option("--collect", "collect_dir", type=click.Path(path_type=Path), default=None,
              help="Collect mode: participants' drawings go to this folder in the Omniglot layout "
                   "(docs/serve.md).")
@click.option("--prompts", "prompts_dir", type=click.Path(path_type=Path, exists=True, file_okay=False),
              default=None, help="With --collect: a folder of images of characters to copy "
                                 "(default: characters drawn by Full NS).")
def serve(host, port, model_name, checkpoint, collect_dir, prompts_dir):
    """The drawing pad: draw a character in the browser and watch the models read,
    score and finish it (docs/serve.md)."""
    try:
        import uvicorn

        from pyrochar.serve.app import create_app
    except ImportError as e:
        raise PyrocharError(f"pyrochar serve needs the web extra ({e.name} is missing): "
                            "pip install 'pyrochar[web]'") from None
    if prompts_dir is not None and collect_dir is None:
        raise click.UsageError("--prompts applies to collect mode only; add --collect DIR")
    prompts = None
    if prompts_dir is not None:
        from pyrochar.serve.prompts import prompts_from_folder

        prompts = prompts_from_folder(prompts_dir)
    loopback = is_loopback(host)
    if not loopback:
        click.echo(f"Warning: listening on {host}, not on this machine alone: anyone who can reach "
                   "it can use the pad" + (f" and write drawings into {collect_dir}" if collect_dir
                                           else "") + "; there is no login", err=True)
    import torch

    # Model calls run one at a time (one lock) on small tensors: one intra-op thread is
    # as fast as two (benchmarks/bench_serve.py), and leaves the other core to serve HTTP.
    torch.set_num_threads(1)
    sock = bind(host, port)
    app = create_app(_models(model_name, checkpoint), collect_dir=collect_dir, prompts=prompts,
                     allowed_hosts=[*LOOPBACK_NAMES, "[::1]"] if loopback else None)
    shown = f"[{host}]" if ":" in host else host
    click.echo(f"pyrochar drawing pad: http://{shown}:{sock.getsockname()[1]}/  (Ctrl+C to stop)"
               + (f"; collecting drawings into {collect_dir}" if collect_dir else ""))
    # more open connections than MAX_CONNECTIONS get 503 instead of queueing without bound
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False,
                                           limit_concurrency=MAX_CONNECTIONS))
    server.run(sockets=[sock])
