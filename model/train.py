"""Training of both stages (issue 6): the OACE prior (Eq. 1) and MSFNet with the prior frozen (Eq. 2-3).

One code path for every scale: `run_training(cfg)` is the same function in a single CPU process and
in each process of `torchrun --nproc_per_node=K -m oace.cli train ...` (DDP: gloo on CPU, nccl on GPU,
a DistributedSampler, seeds per rank, mixed precision with --amp: fp16 autocast with a gradient
scaler on GPU, bf16 autocast on the CPU, where AVX512-BF16/AMX run it 1.7x faster than fp32 here). `cfg.batch` is the global
batch: each process takes batch / (world_size * accum) objects per micro-step.

A run directory holds: last.pt / best.pt (training state: weights, optimizer, epoch, RNG, history,
config; readable with weights_only=True), prior.pt or segmenter.pt (the best weights as a registry
checkpoint for `oace export` / `oace demo --checkpoint`), metrics.csv, tb/ (TensorBoard events),
train.json, train.md and curves.png. Every file is rewritten atomically after each epoch, so a run
killed at any moment resumes (`resume=True`) from the last finished epoch.

This module is the loop; the run's settings are model/train_config.py, its processes and RNG
model/train_dist.py, what each stage trains model/train_tasks.py, the state files
model/train_state.py and the reports model/train_logs.py.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from oace.model.click_metrics import MultiObjectSample
from oace.model.composite import CompositeConfig
from oace.model.train_config import TrainConfig
from oace.model.train_data import TrainSet, TrainSetConfig, open_datasets, parse_specs, split_indices
from oace.model.train_dist import Dist, agree, barrier, init_distributed, mean_across, seed_everything
from oace.model.train_logs import json_summary, write_logs
from oace.model.train_state import RunRecord, resume_state, save_state, training_state
from oace.model.train_tasks import Task, build_task, load_start_weights, set_train_mode
from oace.errors import InputError


@dataclasses.dataclass(frozen=True)
class RunData:
    """The data side of a run: training and held-out sets, this process's sampler and loader."""

    train_set: TrainSet
    val_set: TrainSet
    val_multi: list[MultiObjectSample]  # held-out multi-object composites (main process, msfnet stage)
    sampler: torch.utils.data.DistributedSampler
    loader: torch.utils.data.DataLoader
    micro: int  # objects per process and micro-step
    steps: int  # optimizer steps per epoch


@dataclasses.dataclass(frozen=True)
class Trainer:
    """The model side: the task, the network the steps run (task.trainable or its DDP wrapper), the
    optimizer and the gradient scaler (fp16 on CUDA only)."""

    task: Task
    net: nn.Module
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler | None


@dataclasses.dataclass(frozen=True)
class Clock:
    """This session's wall clock: when its training started, and the --max-minutes budget in seconds."""

    started: float
    budget: float | None

    def elapsed(self) -> float:
        return time.time() - self.started


@dataclasses.dataclass(frozen=True)
class Run:
    """The parts of a run that stay fixed once it is set up."""

    cfg: TrainConfig
    env: Dist
    out: Path
    data: RunData
    trainer: Trainer
    clock: Clock


@dataclasses.dataclass
class EpochResult:
    """What one epoch's steps did (filled in as they run)."""

    epoch: int  # 0-based
    started: float  # time.time() at its start
    losses: list[float] = dataclasses.field(default_factory=list)  # per step, the mean over the processes
    lr: float = math.nan  # at its last step
    out_of_time: bool = False  # the --max-minutes budget ended it early


# ---------------------------------------------------------------- the run


def run_training(cfg: TrainConfig) -> dict[str, Any]:
    """Train one stage as configured; returns the summary written to train.json."""
    cfg.check()
    env = init_distributed()
    micro = check_run(cfg, env)
    run, record = set_up(cfg, env, micro)
    for epoch in range(record.start, cfg.epochs):
        result = train_epoch(run, record, epoch)
        if not result.losses:  # the budget ran out at the start of an epoch: nothing new to validate
            break
        row = epoch_row(run, record, result)
        if env.main:
            end_epoch(run, record, result, row)
        barrier(env)
        if result.out_of_time:
            if env.main:
                print(f"{cfg.stage}: --max-minutes {cfg.max_minutes} reached in epoch {epoch + 1}; saved and stopped")
            break
    summary = json_summary(cfg, record.history, record.best, record.init_report, run.clock.elapsed())
    barrier(env)
    return summary


def check_run(cfg: TrainConfig, env: Dist) -> int:
    """Refuse what this run cannot do before any work; returns the objects per process and micro-step."""
    if cfg.train == "refiner" and env.world > 1:
        raise InputError("--train refiner runs in one process (its frozen base is shared by the simulated clicks); drop torchrun")
    micro, rem = divmod(cfg.batch, env.world * cfg.accum)
    if rem or micro < 1:
        raise InputError(f"--batch {cfg.batch}: must be a multiple of processes x --accum = {env.world} x {cfg.accum}")
    out = Path(cfg.out)
    last_path = out / "last.pt"
    if last_path.exists() and not cfg.resume:
        raise InputError(f"{out}: already holds a run (last.pt); pass --resume to continue it or choose another --out")
    if cfg.resume and not last_path.exists():
        raise InputError(f"{last_path}: nothing to resume")
    return micro


def set_up(cfg: TrainConfig, env: Dist, micro: int) -> tuple[Run, RunRecord]:
    """Data, model and optimizer, resumed from the run's last.pt with --resume; the clock starts."""
    out = Path(cfg.out)
    seed_everything(cfg.seed, env.rank, 0)
    data = open_data(cfg, env, micro)
    trainer, record = build_trainer(cfg, env)
    if cfg.resume:
        record = resume_state(cfg, out / "last.pt", trainer.task.trainable, trainer.optimizer, trainer.scaler)
    trainer = dataclasses.replace(trainer, net=distributed(trainer.task.trainable, env))
    clock = Clock(time.time(), cfg.max_minutes * 60.0 if cfg.max_minutes else None)
    return Run(cfg, env, out, data, trainer, clock), record


def open_data(cfg: TrainConfig, env: Dist, micro: int) -> RunData:
    """The seeded train / held-out split of the objects, and this process's share of each global batch."""
    datasets = open_datasets(parse_specs(cfg.data))
    train_idx, val_idx = split_indices(sum(len(d) for d in datasets), cfg.val_fraction, cfg.seed, cfg.limit)
    val_idx = val_idx[: cfg.val_max]  # held out either way; only this many are scored each epoch
    multi = cfg.stage == "msfnet"
    train_set = TrainSet(datasets, train_idx, TrainSetConfig(
        size=cfg.size, clicks=cfg.clicks, seed=cfg.seed, train=True, multi_click=multi, crop=cfg.crop,
        composite=CompositeConfig(prob=cfg.composite)))
    val_set = TrainSet(datasets, val_idx, TrainSetConfig(size=cfg.size, clicks=cfg.clicks, seed=cfg.seed, train=False,
                                                         multi_click=False))
    val_multi = val_set.heldout_composites(cfg.val_composites) if multi and env.main else []
    sampler = torch.utils.data.DistributedSampler(
        train_set, num_replicas=env.world, rank=env.rank, shuffle=True, seed=cfg.seed, drop_last=True
    )
    loader = torch.utils.data.DataLoader(
        train_set, batch_size=micro, sampler=sampler, num_workers=cfg.workers, drop_last=True,
        pin_memory=env.device.type == "cuda",
    )
    steps = len(loader) // cfg.accum
    if steps < 1:
        raise InputError(f"{len(train_set)} training objects give no full global batch of {cfg.batch}; lower --batch")
    return RunData(train_set, val_set, val_multi, sampler, loader, micro, steps)


def build_trainer(cfg: TrainConfig, env: Dist) -> tuple[Trainer, RunRecord]:
    """The task with its starting weights (--init or --weights, not on a resume), Adam, the scaler."""
    task = build_task(cfg, env.device)
    record = RunRecord()
    if cfg.init and not cfg.resume:
        record.init_report = init_backbones(task, cfg.init, env.main)
    if cfg.weights and not cfg.resume:
        record.crops_seen = load_start_weights(task, cfg.weights)
        if env.main:
            print(f"--weights {cfg.weights}: {cfg.stage} starts from these trained weights")
    params = [p for p in task.trainable.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(params, lr=cfg.lr)
    scaler = torch.amp.GradScaler("cuda") if cfg.amp and env.device.type == "cuda" else None
    return Trainer(task, task.trainable, optimizer, scaler), record


def init_backbones(task: Task, path: str, verbose: bool) -> dict[str, Any]:
    """--init: timm ImageNet HRNet weights into the task's backbones; a report per backbone."""
    from oace.model.hrnet_init import load_imagenet_hrnet

    report = {name: load_imagenet_hrnet(module, path) for name, module in task.backbones().items()}
    if verbose:
        for name, rep in report.items():
            print(f"--init {path} -> {name}: {rep['summary']}")
    return report


def distributed(module: nn.Module, env: Dist) -> nn.Module:
    """module wrapped for DDP when there are several processes; module itself in one."""
    if env.world == 1:
        return module
    ids = [env.device.index] if env.device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(module, device_ids=ids)


# ---------------------------------------------------------------- one epoch


def train_epoch(run: Run, record: RunRecord, epoch: int) -> EpochResult:
    """The optimizer steps of one epoch, until the --max-minutes budget is spent (on every process at
    the same step); counts the crops seen into `record`."""
    cfg, env, data = run.cfg, run.env, run.data
    seed_everything(cfg.seed, env.rank, epoch)
    data.sampler.set_epoch(epoch)
    data.train_set.set_epoch(epoch)
    result = EpochResult(epoch, time.time())
    set_train_mode(run.trainer.task.trainable, True, cfg.bn_frozen)
    if run.trainer.task.click_stats is not None:
        run.trainer.task.click_stats.reset()
    batches = iter(data.loader)
    bar = _progress(data.steps, f"{cfg.stage} epoch {epoch + 1}/{cfg.epochs}", cfg.progress and env.main)
    for i in range(data.steps):
        elapsed = run.clock.elapsed()
        if run.clock.budget is not None and agree(elapsed >= run.clock.budget, env):
            result.out_of_time = True
            break
        time_done = elapsed / run.clock.budget if run.clock.budget is not None else 0.0
        result.lr = cfg.lr * lr_factor(cfg.schedule, epoch * data.steps + i, cfg.epochs * data.steps, time_done)
        result.losses.append(mean_across(optimizer_step(run, batches, result.lr), env))
        record.crops_seen += cfg.batch
        bar.update(1)
        bar.set_postfix(loss=f"{result.losses[-1]:.4f}", lr=f"{result.lr:.2e}",
                        crops_s=f"{len(result.losses) * cfg.batch / (time.time() - result.started):.1f}")
    bar.close()
    return result


def optimizer_step(run: Run, batches: Iterator[dict[str, torch.Tensor]], lr: float) -> float:
    """One optimizer step at learning rate lr on the next --accum micro-batches; this process's loss."""
    trainer = run.trainer
    for group in trainer.optimizer.param_groups:
        group["lr"] = lr
    micro_batches = [to_device(next(batches), run.env.device) for _ in range(run.cfg.accum)]
    return train_step(trainer.task, trainer.net, trainer.optimizer, micro_batches, trainer.scaler, run.cfg.amp)


def epoch_row(run: Run, record: RunRecord, result: EpochResult) -> dict[str, Any]:
    """The training figures of a finished (or budget-ended) epoch."""
    cfg, losses = run.cfg, result.losses
    row = {"epoch": result.epoch + 1, "train_loss": float(np.mean(losses)), "step_losses": losses, "steps": len(losses),
           "lr_end": result.lr, "crops_seen": record.crops_seen,
           "crops_per_s": round(len(losses) * cfg.batch / (time.time() - result.started), 2)}
    stats = run.trainer.task.click_stats
    if stats is not None:
        row.update({f"train_{k}": round(v, 4) for k, v in stats.summary().items()})
    if result.out_of_time:
        row["stopped"] = f"--max-minutes {cfg.max_minutes} reached after {len(losses)} of {run.data.steps} steps"
    return row


def end_epoch(run: Run, record: RunRecord, result: EpochResult, row: dict[str, Any]) -> None:
    """Main process: validate, add the row to the history, save the state (and the weights, when the
    epoch is the best so far), rewrite the reports."""
    cfg, task, epoch = run.cfg, run.trainer.task, result.epoch
    row.update(validate(task, run.data.val_set, run.data.micro, run.env.device, cfg.workers))
    if run.data.val_multi:
        row.update(task.multi_object(run.data.val_multi, run.env.device))
    row["seconds"] = round(time.time() - result.started, 2)
    record.history.append(row)
    improved = record.best is None or (row.get(task.metric, -math.inf) > record.best["value"])
    if improved:
        record.best = {"epoch": epoch + 1, "metric": task.metric, "value": row.get(task.metric, -math.inf)}
    save_epoch(run, record, epoch, improved)
    write_logs(run.out, cfg, record.history, record.best, record.init_report, run.clock.elapsed())
    print(f"{cfg.stage} epoch {epoch + 1}: train loss {row['train_loss']:.4f}, val loss "
          f"{row.get('val_loss', float('nan')):.4f}, {task.metric} {row.get(task.metric, float('nan')):.4f}")


def save_epoch(run: Run, record: RunRecord, epoch: int, improved: bool) -> None:
    """last.pt; when improved also best.pt and the weights as a registry checkpoint (prior.pt / segmenter.pt)."""
    cfg, trainer = run.cfg, run.trainer
    state = training_state(cfg, epoch + 1, trainer.task.trainable, trainer.optimizer, trainer.scaler, record)
    save_state(state, run.out / "last.pt")
    if not improved:
        return
    save_state(state, run.out / "best.pt")
    metric, best = trainer.task.metric, record.best["value"]
    name = "prior.pt" if cfg.stage == "prior" else "segmenter.pt"
    trainer.task.export(run.out / name, meta={
        "weights": f"trained: oace train {cfg.stage}, epoch {epoch + 1}, {metric} {best:.4f}",
        "train_run": str(run.out), "epoch": epoch + 1, metric: best, "crops_seen": record.crops_seen,
    })


def validate(task: Task, val_set: TrainSet, batch: int, device: torch.device, workers: int) -> dict[str, Any]:
    """The task's held-out loss and scores, averaged over the objects of val_set ({} when it is empty)."""
    if len(val_set) == 0:
        return {}
    set_train_mode(task.trainable, False, False)
    loader = torch.utils.data.DataLoader(val_set, batch_size=batch, shuffle=False, num_workers=workers)
    losses, scores, extra, n = [], [], {}, 0
    for b in loader:
        b = to_device(b, device)
        loss, s, more = task.validate(b)
        losses.append(loss * b["image"].shape[0])
        n += b["image"].shape[0]
        scores += s
        for k, v in more.items():
            extra.setdefault(k, []).extend(v)
    row = {"val_loss": float(sum(losses) / n), task.score_key: float(np.mean(scores)) if scores else float("nan"), "val_objects": n}
    row.update({k: float(np.mean(v)) for k, v in extra.items() if v})
    return row


def lr_factor(schedule: str, step: int, total_steps: int, time_done: float = 0.0) -> float:
    """Multiplier of the base learning rate at `step` of `total_steps`.

    cosine: 0.5 * (1 + cos(pi * p)), p the larger of the step fraction and `time_done` (the fraction of
    a wall-clock budget spent), so the rate reaches 0 whichever of the two ends the run first.
    """
    if schedule == "constant":
        return 1.0
    p = min(1.0, max(step / max(total_steps, 1), time_done))
    return 0.5 * (1.0 + math.cos(math.pi * p))


def _progress(total: int, desc: str, enabled: bool) -> Any:
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, disable=not enabled, leave=True, dynamic_ncols=True)


# ---------------------------------------------------------------- one step


def to_device(batch: dict[str, torch.Tensor], device: torch.device) -> dict[str, torch.Tensor]:
    return {k: v.to(device, non_blocking=True) for k, v in batch.items()}


def train_step(
    task: Task,
    net: nn.Module,
    optimizer: torch.optim.Optimizer,
    micro_batches: list[dict[str, torch.Tensor]],
    scaler: torch.amp.GradScaler | None = None,
    amp: bool = False,
) -> float:
    """One optimizer step over `accum` micro-batches; returns this process's mean loss.

    Under DDP the gradient is averaged across processes on the last micro-batch (no_sync before),
    so the step equals one on the concatenated global batch when every process has as many samples.
    """
    optimizer.zero_grad(set_to_none=True)
    total = 0.0
    device = next(net.parameters()).device
    for k, batch in enumerate(micro_batches):
        last = k == len(micro_batches) - 1
        sync = contextlib.nullcontext() if last or not hasattr(net, "no_sync") else net.no_sync()
        with sync:
            with torch.autocast(device.type, dtype=amp_dtype(device), enabled=amp):
                loss = task.loss(batch, net) / len(micro_batches)
            (scaler.scale(loss) if scaler is not None else loss).backward()
        total += float(loss.detach())
    if scaler is not None:
        scaler.step(optimizer)
        scaler.update()
    else:
        optimizer.step()
    return total


def amp_dtype(device: torch.device) -> torch.dtype:
    """--amp's autocast type: fp16 on CUDA (with a gradient scaler), bf16 on the CPU (no scaler needed:
    bf16 has fp32's exponent range)."""
    return torch.float16 if device.type == "cuda" else torch.bfloat16
