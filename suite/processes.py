"""The processes of one job: joining them, sharing work out and gathering the results.

A job launched by ``accelerate launch --num_processes N`` (torchrun) runs N
copies of its entry point: one per GPU the job holds, or N CPU processes joined
by gloo (the multi-process tests). Work that is a list of batches is shared
round-robin (process ``p`` takes batches ``p, p + N, ...``) and the results are
gathered on every process, so a job's output never depends on N.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any, TypeVar

import torch
import torch.distributed as dist
from accelerate import PartialState
from tqdm.auto import tqdm

T = TypeVar("T")


def job_processes(cuda: bool | None = None) -> PartialState:
    """This process's place in the job (``cuda``: default, whether a GPU is visible).

    On CPU the processes form a gloo group only if the process's first state is
    created with ``cpu=True``; the first ``PartialState`` of a process decides.
    """
    return PartialState(cpu=not (torch.cuda.is_available() if cuda is None else cuda))


def my_share(count: int, processes: PartialState) -> range:
    """The indices of ``count`` batches this process works on."""
    return range(processes.process_index, count, processes.num_processes)


def progress(items: Iterable[T], processes: PartialState, **bar: Any) -> Iterator[T]:
    """``items`` with a progress bar on the node's main process only.

    Other processes pass ``disable=True``; the main one passes no ``disable`` at
    all, so tqdm's own ``TQDM_DISABLE`` (and other ``TQDM_*`` settings) still apply.
    """
    return iter(tqdm(items, **bar) if processes.is_local_main_process else tqdm(items, disable=True, **bar))


def gather_mapping(local: Mapping[Any, Any], processes: PartialState) -> dict[Any, Any]:
    """Every process's results merged into one mapping, on every process (a no-op in a one-process job)."""
    if processes.num_processes == 1:
        return dict(local)
    parts: list[Mapping[Any, Any] | None] = [None] * processes.num_processes
    dist.all_gather_object(parts, dict(local))
    return {key: value for part in parts for key, value in (part or {}).items()}
