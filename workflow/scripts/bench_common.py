"""What the benchmark scripts share: model sizes, random preference batches, memory readings, the allocator
settings in force, and isolated workers (so each measurement's peak memory is its own).

Imported by ``bench_methods.py``, ``bench_aao.py`` and ``bench_trl.py`` (their own directory is on ``sys.path``
when they run as scripts).
"""

from __future__ import annotations

import multiprocessing
import os
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

# Llama shapes; ``llama31-vocab`` has Llama-3.1's vocabulary on a
# two-layer, narrow body, so that memory at the paper's vocabulary and sequence length fits a laptop.
MODELS = {
    "tiny": {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4,
             "num_key_value_heads": 2, "vocab_size": 1024},
    "mini": {"hidden_size": 128, "intermediate_size": 344, "num_hidden_layers": 2, "num_attention_heads": 4,
             "num_key_value_heads": 4, "vocab_size": 32000},
    "small": {"hidden_size": 256, "intermediate_size": 688, "num_hidden_layers": 4, "num_attention_heads": 4,
              "num_key_value_heads": 4, "vocab_size": 32000},
    "100m": {"hidden_size": 768, "intermediate_size": 2048, "num_hidden_layers": 12, "num_attention_heads": 12,
             "num_key_value_heads": 12, "vocab_size": 32000},
    "llama31-vocab": {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4,
                      "num_key_value_heads": 2, "vocab_size": 128256},
}  # fmt: skip
BOS, EOS, PAD = 0, 1, 2  # as the suite's tokenizers (suite.models.SPECIAL_TOKENS); random tokens start at FIRST
FIRST = 6
MALLOC_ENV = (
    "MALLOC_ARENA_MAX",
    "MALLOC_MMAP_THRESHOLD_",
    "MALLOC_TRIM_THRESHOLD_",
    "MALLOC_TOP_PAD_",
    "MALLOC_MMAP_MAX_",
)


def build_llama(
    name: str,
    max_positions: int,
    seed: int = 0,
    vocab_size: int | None = None,
    dtype: str = "float32",
    tie: bool = False,
):
    """A random-init Llama of one of ``MODELS``' sizes (``tie``: input and output embeddings shared), the same
    weights for the same seed."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    sizes = {**MODELS[name], **({"vocab_size": vocab_size} if vocab_size else {})}
    config = LlamaConfig(
        **sizes,
        max_position_embeddings=max_positions,
        bos_token_id=BOS,
        eos_token_id=EOS,
        pad_token_id=PAD,
        tie_word_embeddings=tie,
    )
    torch.manual_seed(seed)
    return LlamaForCausalLM(config).to(getattr(torch, dtype))


def perturbed(model, scale: float = 0.02, seed: int = 1):
    """A copy of ``model`` with seeded noise on every weight: a policy whose log-ratios to ``model`` are not 0."""
    import copy

    import torch

    policy = copy.deepcopy(model)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for param in policy.parameters():
            param.add_(scale * torch.randn(param.shape, generator=generator).to(param.device, param.dtype))
    return policy


def response_lengths(pairs: int, response: int) -> list[tuple[int, int]]:
    """(chosen, rejected) lengths per pair: chosen ones full, rejected ones 3/4 to full, so batches carry padding."""
    return [(response, response - (response // 4) * (i + 1) // pairs) for i in range(pairs)]


def random_items(vocab: int, pairs: int, prompt: int, response: int, seed: int = 0) -> list[dict[str, Any]]:
    """Tokenised pairs as the suite's ``PreferenceDataset`` holds them (without reference log-probs)."""
    import torch

    generator = torch.Generator().manual_seed(seed)
    items = []
    for i, (chosen, rejected) in enumerate(response_lengths(pairs, response)):
        ids = torch.randint(FIRST, vocab, (prompt + chosen + rejected,), generator=generator).tolist()
        items.append(
            {
                "id": f"bench-{i}",
                "prompt_ids": [BOS, *ids[1:prompt]],
                "chosen_ids": [*ids[prompt : prompt + chosen - 1], EOS],
                "rejected_ids": [*ids[prompt + chosen : prompt + chosen + rejected - 1], EOS],
            }
        )
    return items


def with_random_reference(items: list[dict[str, Any]], seed: int = 1) -> list[dict[str, Any]]:
    """The items with random stored reference log-probs (for timing only: computing them is a one-off rule)."""
    import torch

    generator = torch.Generator().manual_seed(seed)
    return [
        {
            **item,
            "ref_chosen_logps": (-8 * torch.rand(len(item["chosen_ids"]), generator=generator)).tolist(),
            "ref_rejected_logps": (-8 * torch.rand(len(item["rejected_ids"]), generator=generator)).tolist(),
        }
        for item in items
    ]


def sync(device: str) -> None:
    if device.startswith("cuda"):
        import torch

        torch.cuda.synchronize()


# ---------------------------------------------------------------- memory


def process_memory_mib() -> dict[str, float]:
    """This process's resident memory now and its peak since start or :func:`reset_peak_memory`, in MiB."""
    fields = {}
    with open("/proc/self/status") as status:
        for line in status:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                fields[key] = int(value.split()[0]) / 1024.0  # kB
    return {"rss": fields["VmRSS"], "peak": fields["VmHWM"]}


def reset_peak_memory(device: str) -> None:
    """Start a new peak: the process's resident-memory high-water mark (Linux ``clear_refs``), or CUDA's."""
    with open("/proc/self/clear_refs", "w") as clear:
        clear.write("5")
    if device.startswith("cuda"):
        import torch

        torch.cuda.reset_peak_memory_stats()


def peak_memory_mib(device: str) -> float:
    """Peak since :func:`reset_peak_memory`: CUDA allocated memory on a GPU, resident memory on the CPU."""
    if device.startswith("cuda"):
        import torch

        return torch.cuda.max_memory_allocated() / 2**20
    return process_memory_mib()["peak"]


def memory_now_mib(device: str) -> float:
    if device.startswith("cuda"):
        import torch

        return torch.cuda.memory_allocated() / 2**20
    return process_memory_mib()["rss"]


def allocator_settings() -> dict[str, str]:
    """What decides memory and speed besides the code: glibc's malloc tunables from the environment (unset:
    glibc's dynamic mmap threshold, which keeps freed large buffers in the heap), thread counts, versions."""
    import torch
    import transformers
    import trl

    settings = {name: os.environ.get(name, "unset (glibc default)") for name in MALLOC_ENV}
    settings["GLIBC_TUNABLES"] = os.environ.get("GLIBC_TUNABLES", "unset")
    settings["OMP_NUM_THREADS"] = os.environ.get("OMP_NUM_THREADS", "unset")
    settings["torch threads"] = str(torch.get_num_threads())
    settings["cpu cores (os.cpu_count)"] = str(os.cpu_count())
    settings["versions"] = f"torch {torch.__version__}, transformers {transformers.__version__}, trl {trl.__version__}"
    return settings


# ---------------------------------------------------------------- isolated workers


def _child(conn, fn: Callable[..., Any], args: tuple) -> None:
    try:
        conn.send(("ok", fn(*args)))
    except BaseException:  # the parent re-raises it with the child's traceback
        conn.send(("error", traceback.format_exc()))
    finally:
        conn.close()


def run_isolated(fn: Callable[..., Any], *args: Any, device: str = "cpu") -> Any:
    """``fn(*args)`` in a child process, so that its peak memory is its own; returns its result.

    On the CPU the child is forked: it inherits the parent's imports (no interpreter start per measurement) but
    nothing the parent computed, and the parent must not have run torch operators (forking after OpenMP started
    is unsafe), which is why drivers only import before forking. CUDA cannot be used in a forked child once the
    parent touched it (importing libraries may), so on a GPU the child is spawned afresh.
    """
    context = multiprocessing.get_context("spawn" if device.startswith("cuda") else "fork")
    parent, child = context.Pipe(duplex=False)
    process = context.Process(target=_child, args=(child, fn, args))
    process.start()
    child.close()
    try:
        status, value = parent.recv()
    except EOFError:
        process.join()
        raise RuntimeError(f"benchmark worker died (exit code {process.exitcode}; out of memory?)") from None
    process.join()
    if status == "error":
        raise RuntimeError(f"benchmark worker failed:\n{value}")
    return value
