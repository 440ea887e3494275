"""Run under `accelerate launch --config_file workflow/accelerate/fsdp.yaml --num_processes 2` on CPU (gloo).

accelerate's Trainer path never turns CPU processes into FSDP, so this worker drives accelerate's own FSDP2
preparation (the plugin read from the launcher's environment, `fsdp2_prepare_model`) on the tiny model, then
checks what the workflow relies on: the config's plugin settings, per-decoder-layer sharding, one training step
equal to an unsharded one, the full state dict gathered for `save_model` (FULL_STATE_DICT), and a sharded
checkpoint saved and loaded back. Rank 0 writes its findings as JSON to the path given.
"""

from __future__ import annotations

import copy
import json
import sys
from pathlib import Path
from types import SimpleNamespace

import torch
import torch.distributed as dist
import torch.distributed.checkpoint as dcp
from accelerate.utils import FullyShardedDataParallelPlugin
from accelerate.utils.fsdp_utils import fsdp2_prepare_model
from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict
from torch.distributed.fsdp import FSDPModule

from suite.models import load_model


def step(model: torch.nn.Module, batch: torch.Tensor) -> float:
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    loss = model(input_ids=batch, labels=batch).loss
    loss.backward()
    optimizer.step()
    return loss.item()


def full_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))


def main(model_dir: str, scratch: str, out: str) -> None:
    dist.init_process_group("gloo")
    rank = dist.get_rank()
    plugin = FullyShardedDataParallelPlugin()  # from the launcher's environment: workflow/accelerate/fsdp.yaml
    found = {
        "fsdp_version": plugin.fsdp_version,
        "state_dict_type": str(plugin.state_dict_type),
        "cpu_ram_efficient_loading": plugin.cpu_ram_efficient_loading,
        "reshard_after_forward": plugin.reshard_after_forward,
    }
    torch.manual_seed(0)
    batch = torch.randint(3, 200, (2, 24))
    reference = load_model(model_dir) if rank == 0 else None
    model = load_model(model_dir)  # rank > 0 gets meta weights under RAM-efficient loading, as on the cluster
    accelerator = SimpleNamespace(
        state=SimpleNamespace(fsdp_plugin=plugin),
        torch_device_mesh=None,
        device=torch.device("cpu"),
        is_main_process=rank == 0,
        mixed_precision="no",
    )
    model = fsdp2_prepare_model(accelerator, model)
    layers = list(model.model.layers)
    found["sharded_layers"] = sum(isinstance(layer, FSDPModule) for layer in layers)
    found["layers"] = len(layers)
    found["root_sharded"] = isinstance(model, FSDPModule)
    shard = next(layers[0].parameters())
    found["local_rows"], found["global_rows"] = shard.to_local().shape[0], shard.shape[0]

    loss = step(model, batch)
    gathered = full_state(model)
    if rank == 0:
        found["loss_sharded"], found["loss_plain"] = loss, step(reference, batch)
        plain = reference.state_dict()
        found["max_step_difference"] = max((gathered[k] - plain[k]).abs().max().item() for k in plain)
        found["same_keys"] = sorted(gathered) == sorted(plain)

    dcp.save({"model": model.state_dict()}, checkpoint_id=scratch)  # sharded: each process writes its shards
    restored = fsdp2_prepare_model(accelerator, load_model(model_dir))
    target = {"model": restored.state_dict()}
    dcp.load(target, checkpoint_id=scratch)
    restored.load_state_dict(target["model"])
    again = full_state(restored)
    if rank == 0:
        found["max_restore_difference"] = max((again[k] - gathered[k]).abs().max().item() for k in gathered)
        found["restored_differs_from_start"] = any(
            not torch.equal(again[k], v) for k, v in copy.deepcopy(load_model(model_dir).state_dict()).items()
        )
        Path(out).write_text(json.dumps(found))
    dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":
    main(*sys.argv[1:4])
