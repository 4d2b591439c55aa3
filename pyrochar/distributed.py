"""Running one command over several processes with ``torch.distributed``.

``torchrun --nproc_per_node N -m pyrochar train|parse|classify ...`` starts N
copies of the command with ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK`` (and the
rendezvous address) in their environment. :func:`init_from_env` joins them into
one process group: ``gloo`` when the command runs on the CPU, ``nccl`` on CUDA
(each process then takes GPU ``LOCAL_RANK``). Without those variables, or with
``WORLD_SIZE=1``, nothing is initialized and every helper below is the identity
of a one-process run (rank 0 of 1), so library code calls them unconditionally.

Every collective waits at most ``$PYROCHAR_DIST_TIMEOUT`` seconds (default 1800)
for the other processes; a process that died or hangs makes the others stop with
one :class:`DistributedError` line instead of waiting forever (torchrun also
stops the whole group as soon as one process exits with an error).

Work is shared out in two ways: :func:`shard` deals items round-robin (images,
one-shot runs, scoring batches), :func:`batch_part` cuts one training batch into
N contiguous parts (its drawings are sorted by length, so each part stays
evenly padded). :func:`unshard` puts round-robin parts back in input order.
docs/distributed.md tells how to launch, what is shared out and who writes what.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import re
from collections.abc import Callable, Iterator, Sequence
from datetime import timedelta
from typing import TypeVar

import numpy as np
import torch
import torch.distributed as dist

from .errors import PyrocharError

T = TypeVar("T")

#: Environment variable: seconds a collective waits for the other processes.
TIMEOUT_ENV = "PYROCHAR_DIST_TIMEOUT"
DEFAULT_TIMEOUT_S = 1800.0
#: What torchrun sets for every process it starts.
LAUNCH_ENV = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")


class DistributedError(PyrocharError):
    """The process group could not start, or another process of the run failed."""


# ------------------------------------------------------------------ set-up


def launched() -> bool:
    """Whether this process was started as one of several (``WORLD_SIZE`` > 1)."""
    return _env_int("WORLD_SIZE", 1) > 1


def timeout_s() -> float:
    """The collectives' timeout in seconds: ``$PYROCHAR_DIST_TIMEOUT`` or 1800."""
    text = os.environ.get(TIMEOUT_ENV, "").strip()
    if not text:
        return DEFAULT_TIMEOUT_S
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0 < value <= 7 * 24 * 3600:
        raise PyrocharError(f"{TIMEOUT_ENV}={text!r}: expected seconds between 0 and 604800, "
                            "e.g. 600; unset it for the default (1800)")
    return value


def init_from_env(device: str = "cpu") -> str:
    """Join the process group torchrun's environment describes (once; a no-op in a
    one-process run) and return the device this process computes on: ``device``,
    or ``cuda:LOCAL_RANK`` for ``device="cuda"`` in a distributed run."""
    if not launched():
        return device
    if not dist.is_available():
        raise DistributedError("WORLD_SIZE > 1 but this PyTorch build has no torch.distributed: install "
                               "a build with it, or run one process")
    missing = [name for name in LAUNCH_ENV if name not in os.environ]
    if missing:
        verb = "is" if len(missing) == 1 else "are"
        raise DistributedError(f"WORLD_SIZE is set but {', '.join(missing)} {verb} not: start the "
                               "processes with torchrun (docs/distributed.md), or unset WORLD_SIZE")
    local = _env_int("LOCAL_RANK", 0)
    cuda = device.startswith("cuda")
    if cuda:
        if not torch.cuda.is_available():
            raise PyrocharError("--device cuda: no CUDA device is available here; use --device cpu")
        if local >= torch.cuda.device_count():
            raise DistributedError(f"LOCAL_RANK {local} but {torch.cuda.device_count()} CUDA device(s) "
                                   "here: start at most one process per GPU (--nproc_per_node)")
        torch.cuda.set_device(local)
        device = f"cuda:{local}"
    if not dist.is_initialized():
        seconds = timeout_s()
        try:
            dist.init_process_group("nccl" if cuda else "gloo", timeout=timedelta(seconds=seconds))
        except (RuntimeError, ValueError) as e:
            raise DistributedError(f"the process group did not start ({_first_line(e)}); check "
                                   "--rdzv-endpoint / MASTER_ADDR and that every node runs the same "
                                   "command") from None
        atexit.register(shutdown)
    return device


def shutdown() -> None:
    """Leave the process group (when one was joined)."""
    if dist.is_initialized():
        dist.destroy_process_group()


def active() -> bool:
    """Whether this process is one of several in an initialized process group."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    """This process's rank (0 in a one-process run)."""
    return dist.get_rank() if active() else 0


def world_size() -> int:
    """How many processes share the work (1 in a one-process run)."""
    return dist.get_world_size() if active() else 1


def is_root() -> bool:
    """Whether this process is rank 0, the one that writes results and prints."""
    return rank() == 0


def label(message: str) -> str:
    """``message`` prefixed by ``rank R of N:`` in a distributed run (also before or
    without its process group: the rank is then read from torchrun's variables)."""
    if active():
        return f"rank {rank()} of {world_size()}: {message}"
    world = os.environ.get("WORLD_SIZE", "").strip()  # as written: this must not fail
    if world and world != "1":
        return f"rank {os.environ.get('RANK', '?').strip()} of {world}: {message}"
    return message


def root_only(log: Callable[[str], None]) -> Callable[[str], None]:
    """``log`` on rank 0; a function that prints nothing on the other ranks."""
    return log if is_root() else _silent


def _silent(_message: str) -> None:
    """Prints nothing (the log of ranks other than 0)."""


# ------------------------------------------------------------ sharing work


def shard(items: Sequence[T]) -> list[T]:
    """This rank's items, dealt round-robin: ``items[rank::world]`` (all in one process)."""
    return list(items[rank() :: world_size()])


def unshard(parts: Sequence[Sequence[T]]) -> list[T]:
    """The inverse of :func:`shard`: rank r's i-th item goes back to position
    ``i * len(parts) + r``, so ``unshard([shard of each rank]) == items``."""
    n = len(parts)
    merged: list = [None] * sum(len(p) for p in parts)
    for r, part in enumerate(parts):
        merged[r::n] = part
    return merged


def batch_part(indices: np.ndarray) -> np.ndarray:
    """This rank's contiguous part of one global batch ``indices`` (B,): the N parts
    differ in size by at most one and may be empty when B < N."""
    return np.array_split(np.asarray(indices), world_size())[rank()]


def rank_seed(seed: int, epoch: int) -> int:
    """The torch seed of this rank in an epoch of a distributed run (dropout draws
    differ between ranks and a resumed epoch draws what the uninterrupted one did)."""
    return int(np.random.SeedSequence([seed, epoch, rank()]).generate_state(1, np.uint64)[0] >> 1)


# ------------------------------------------------------------- collectives


@contextlib.contextmanager
def guard(what: str) -> Iterator[None]:
    """Turn a failed collective inside the block (a peer that died, or did not
    answer within the timeout) into one DistributedError line."""
    try:
        yield
    except dist.DistError as e:
        raise DistributedError(_peer_failed(what, e)) from None
    except RuntimeError as e:
        if active() and _looks_distributed(e):
            raise DistributedError(_peer_failed(what, e)) from None
        raise


def _looks_distributed(e: BaseException) -> bool:
    """Whether a RuntimeError comes from the communication backend (gloo, nccl, the store)."""
    text = str(e).lower()
    return any(word in text for word in ("gloo", "nccl", "connection", "timed out", "timeout", "peer",
                                         "socket", "store", "c10d"))


def _peer_failed(what: str, e: BaseException) -> str:
    """The one-line message of a collective that failed because of another process."""
    return (f"{what} failed: another process of this run stopped, or did not answer within "
            f"{timeout_s():g} s ({_first_line(e)}); its own message says why. Fix that and rerun "
            f"(train: with --resume); {TIMEOUT_ENV} sets the wait")


def _first_line(e: BaseException, limit: int = 200) -> str:
    """The first line of an exception's message, without a ``[source.cc:123]`` prefix."""
    text = (str(e).strip().splitlines() or [type(e).__name__])[0]
    text = re.sub(r"^\[[^\]]*\]\s*", "", text).split(". ")[0] or type(e).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


def barrier(what: str = "waiting for the other processes") -> None:
    """Wait until every rank gets here (a no-op in one process)."""
    if active():
        with guard(what):
            dist.barrier()


@contextlib.contextmanager
def root_first(what: str = "waiting for rank 0") -> Iterator[None]:
    """Rank 0 runs the block first (e.g. to fill a cache), then the others do."""
    if not is_root():
        barrier(what)
    yield
    if is_root():
        barrier(what)


def all_sum(values: np.ndarray | float) -> np.ndarray | float:
    """The element-wise sum of ``values`` over ranks, in float64, on every rank."""
    if not active():
        return values
    tensor = torch.as_tensor(np.asarray(values, dtype=np.float64)).to(_comm_device())
    with guard("adding up the ranks' numbers"):
        dist.all_reduce(tensor)
    out = tensor.cpu().numpy()
    return float(out) if np.ndim(values) == 0 else out


def gather(obj: T) -> list[T] | None:
    """Every rank's ``obj`` (picklable), in rank order, on rank 0; None on the others."""
    if not active():
        return [obj]
    parts = [None] * world_size() if is_root() else None
    with guard("gathering the ranks' results on rank 0"):
        dist.gather_object(obj, parts, dst=0)
    return parts


def all_gather(obj: T) -> list[T]:
    """Every rank's ``obj`` (picklable), in rank order, on every rank."""
    if not active():
        return [obj]
    parts: list = [None] * world_size()
    with guard("gathering the ranks' results"):
        dist.all_gather_object(parts, obj)
    return parts


def from_root(make: Callable[[], T]) -> T:
    """``make()`` run on rank 0 alone, its (picklable) result sent to every rank."""
    if not active():
        return make()
    box = [make() if is_root() else None]
    with guard("receiving rank 0's state"):
        dist.broadcast_object_list(box, src=0)
    return box[0]


def broadcast_buffers(module: torch.nn.Module) -> None:
    """Give every rank rank 0's buffers (e.g. batch-norm running statistics)."""
    if not active():
        return
    with guard("sharing rank 0's buffers"):
        for buffer in module.buffers():
            dist.broadcast(buffer, src=0)


def data_parallel(module: torch.nn.Module) -> torch.nn.Module:
    """``module`` wrapped in DistributedDataParallel (gradients averaged over ranks
    in backward), or ``module`` itself in one process. Its output must reach every
    parameter on every rank. Inputs are not moved: they are on this rank's device."""
    if not active():
        return module
    from torch.nn.parallel import DistributedDataParallel

    with guard("starting DistributedDataParallel"):
        return DistributedDataParallel(module, device_ids=None)


def _comm_device() -> torch.device:
    """Where collective tensors live: the current GPU under nccl, else the CPU."""
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def _env_int(name: str, default: int) -> int:
    """An integer environment variable (``default`` when unset); one line if malformed."""
    text = os.environ.get(name, "").strip()
    if not text:
        return default
    try:
        return int(text)
    except ValueError:
        raise DistributedError(f"{name}={text!r} is not an integer: start the processes with torchrun "
                               f"(docs/distributed.md), or unset {name}") from None


# ------------------------------------------------------------------ scoring


class _ShardedSource:
    """A BatchSource seen by one rank: the same drawings, but only this rank's share
    (round-robin) of its scoring batches."""

    def __init__(self, source):
        self.source = source

    def __len__(self) -> int:
        return len(self.source)

    def index_batches(self, batch_size: int, **kw) -> list[np.ndarray]:
        return shard(self.source.index_batches(batch_size, **kw))

    def batch(self, indices):
        return self.source.batch(indices)


def score_sharded(model, source, batch_size: int = 200, progress: bool = False):
    """:func:`pyrochar.scoring.score` with the batches shared out over ranks: every
    rank gets the whole :class:`~pyrochar.scoring.Scores`, equal to a one-process
    run's (each drawing is scored by one rank in the very batch one process would
    use; the others add exact zeros)."""
    from .scoring import Scores, score

    if not active():
        return score(model, source, batch_size, progress=progress)
    mine = score(model, _ShardedSource(source), batch_size, progress=progress and is_root())
    names = sorted(mine.breakdown)
    stacked = np.stack([mine.nll] + [mine.breakdown[k] for k in names])  # (1 + variables, D)
    total = all_sum(stacked)
    return Scores(total[0], {k: total[1 + i] for i, k in enumerate(names)})
