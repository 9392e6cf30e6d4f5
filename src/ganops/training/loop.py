"""The GAN training loop, one for every task.

The whole algorithm is visible in ``train``'s loop, one named step of ``_Run`` per phase: take a
batch, let the task (``ganops.tasks``: sample from noise, or restore a degraded image) make G's
inputs and what D sees beside an image, update D on real and fake (``d_step``, ``n_critic`` times),
update G with the task's extra loss terms (``g_step``), average G's weights (``average_weights``),
log (``log_losses``), now and then measure (``now_and_then``). The loop never asks which task it
runs. Everything else (checkpoints, EMA, penalties, augmentation, live FID, grids, progress) sits
behind small helpers. What the next step depends on is one ``TrainState`` (training.state), which
a checkpoint saves and a resume restores. Randomness comes from the named streams of
``runtime.Stream`` so that a resumed run replays it exactly: the weights' init (``seed``), each
epoch's shuffle (SHUFFLE, epoch), the latent noise (LATENT_NOISE, whose state is checkpointed),
and per step (AUGMENT, step) for augmentation and penalty mixing plus (DROPOUT, step) seeding
torch's global stream, which dropout draws from. Under data parallelism (training.distributed)
every rank makes the same global batch and keeps its rows.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torchvision.utils import save_image

from ganops import codedeps
from ganops.config import Params, TrainParams
from ganops.data.prepared import dataset_fingerprint, load_split
from ganops.environment import library_versions
from ganops.errors import DataError, TrainingError
from ganops.files import atomic_path
from ganops.losses import LOSSES, AdversarialLoss, clip_weights, gradient_penalty, zero_centred_penalty
from ganops.models import ArchSpec, build_discriminator, build_generator
from ganops.models.io import load_generator, save_generator
from ganops.progress import Progress
from ganops.runtime import Draws, Stream, seed_everything, stream
from ganops.tasks import Pair, Task, build_task
from ganops.training import checkpoint, distributed, fast, schedule
from ganops.training.augment import diff_augment
from ganops.training.batches import RealBatches
from ganops.training.ema import EMA
from ganops.training.live import LiveQuality
from ganops.training.state import HistoryRow, LiveRow, TrainState, write_csv

log = logging.getLogger(__name__)

FORMAT = 3  # bumped when checkpoints of older code cannot be resumed

__all__ = ["TrainPaths", "TrainResult", "fingerprint", "load_generator", "train"]


@dataclass(frozen=True, kw_only=True)
class TrainPaths:
    """Where training reads and writes (stages.train.train_paths fills it from a Layout)."""

    prepared: Path
    generator: Path  # models/generator.pt: EMA weights + ArchSpec
    checkpoints: Path  # one folder per run (checkpoint.run_folder), each with best.pt and its grids
    samples: Path  # the finished run's grids, one PNG per epoch (published at the end)
    history: Path  # per-step losses CSV (a DVC plot)
    evaluator: Path | None = None  # models/evaluator.pt, for live FID (train.eval_every)
    live: Path | None = None  # reports/train/live.csv: live FID and class coverage (a DVC plot)
    feature_cache: Path | None = None  # cached real-data features


@dataclass(frozen=True, kw_only=True)
class TrainResult:
    """The run's reproducible facts (reports/train.json) and its timings (logs/train.json)."""

    steps: int
    fingerprint: str
    best_step: int | None = None
    best_fid_live: float | None = None
    last_fid_live: float | None = None
    last_class_coverage: float | None = None
    resumed_from: int = 0  # timings and resume depend on the machine's history, not the inputs
    seconds: float = 0.0
    images_per_second: float = 0.0

    processes: int = 1  # the world size
    TIMING_FIELDS = ("resumed_from", "seconds", "images_per_second", "processes")


def fingerprint(
    params: Params,
    data_sha256: str,
    total_steps: int,
    shaping: dict[str, str] | None = None,
    world_size: int = 1,
) -> tuple[str, dict]:
    """What makes two training runs the same run: the settings that shape training, the data, the
    code the train stage runs, the library versions, any file the task reads (``shaping``) and,
    above one process, the world size (it changes the bits: training.distributed). Epochs, step
    caps and logging are left out, so a longer run resumes a shorter one's checkpoints; anything
    else starts a new run. A learning-rate schedule that decays over the run makes the length
    shape training too: then the run's total steps are part of it, and a longer run starts from
    step 0."""
    settings = params.train.model_dump(
        exclude={"images", "epochs", "max_steps", "checkpoint_every", "device", "compile", "eval_every"}
        | {"eval_samples", "processes"}
        | {"collapse_coverage", "stop_on_collapse", "grid_size"}
    )
    material = {
        "format": FORMAT,
        "seed": params.seed,
        "task": params.task,
        "restore": params.restore.model_dump(),
        "model": params.model.model_dump(),
        "train": settings,
        "cpu": params.cpu.model_dump(),  # the kernels and thread count shape the bits too
        "data_sha256": data_sha256,
        "code_sha256": codedeps.code_hash(codedeps.stage_closure("train")),
        "libraries": library_versions(),
        **(shaping or {}),
    }
    if schedule.depends_on_length(params.train.lr_schedule):
        material["total_steps"] = total_steps
    if world_size > 1:
        material["world_size"] = world_size
    digest = hashlib.sha256(json.dumps(material, sort_keys=True).encode()).hexdigest()
    return digest, material


def _autocast(device: torch.device, mode: str):
    if mode == "bf16" or (mode == "auto" and device.type == "cuda"):
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def train(params: Params, paths: TrainPaths) -> TrainResult:
    tp = params.train
    world = distributed.setup(tp.device, tp.batch_size)  # one process, or this rank under torchrun
    device = world.device

    # Load the training images: uint8 on the device, normalized batch by batch.
    split = load_split(paths.prepared, "train")
    n_images = len(split.images)
    if n_images < tp.batch_size * tp.n_critic:
        raise DataError(
            f"train.batch_size: {tp.batch_size} x train.n_critic {tp.n_critic} exceeds the "
            f"{n_images} prepared training images; lower them"
        )
    noise = stream(params.seed, Stream.LATENT_NOISE)  # G's input noise (generate), checkpointed
    task = build_task(params, device, noise, paths.evaluator)  # what G learns: batches, losses, grids
    spec = task.arch_spec(split.images, split.labels)
    images = torch.from_numpy(split.pairs).to(device)  # the images, and their paired inputs if any
    labels = torch.from_numpy(split.labels).long().to(device) if spec.conditional else None
    memory_format = fast.memory_format(device)
    batches = RealBatches(
        images=images,
        labels=labels,
        batch_size=tp.batch_size,
        seed=params.seed,
        flip="hflip" in tp.augment,
        memory_format=memory_format,
    )

    # Size the run and name it: the fingerprint names the folder of its checkpoints and grids.
    total = _total_steps(tp, batches.per_epoch, n_images, task.image_budget(tp))
    grid_every = _grid_every(total * tp.n_critic, batches.per_epoch)
    warmup = task.warmup_steps(tp)  # in the fingerprint: train.images, which may size it, is not
    shaping = {**task.shaping, **({"warmup_steps": str(warmup)} if warmup else {})}
    run_id, material = fingerprint(params, dataset_fingerprint(paths.prepared), total, shaping, world.size)
    run_dir = checkpoint.run_folder(paths.checkpoints, run_id)
    grids = run_dir / "samples"

    # Construct networks, optimizers and G's moving average.
    seed_everything(params.seed)  # the weights' init
    G = build_generator(spec).to(device)
    D = build_discriminator(spec).to(device)
    if spec.conditional:  # G(z) draws labels with the training data's class frequencies
        G.cond.classes.set_prior(torch.bincount(labels.cpu(), minlength=spec.num_classes))
    G = G.to(memory_format=memory_format)
    D = D.to(memory_format=memory_format)
    loss = LOSSES.get(tp.loss)
    lr_g = tp.lr_g or tp.lr
    lr_d = tp.lr_d or tp.lr
    opt_g = fast.adam(G.parameters(), lr_g, (tp.beta1, tp.beta2), device)
    opt_d = fast.adam(D.parameters(), lr_d, (tp.beta1, tp.beta2), device)
    ema = EMA(G, tp.ema_decay)
    state = TrainState(fingerprint=run_id, G=G, D=D, opt_g=opt_g, opt_d=opt_d, ema=ema, noise=noise)

    # Live quality (rank 0 measures).
    live = _live_quality(params, paths, task, device) if world.is_main else None

    # Resume from the run's newest checkpoint, if it has one.
    start = _resume(state, world, run_dir, material, total, paths.checkpoints)

    # Forward passes run through DDP (gradient all-reduce) and torch.compile when on; state is read
    # from G and D. D stays eager under a gradient penalty: compiled graphs have no double backward.
    G_step = fast.compiled(world.wrap(G), tp.compile, device)
    D_step = fast.compiled(world.wrap(D), "off" if _double_backward(tp, loss) else tp.compile, device)
    G.train()
    D.train()
    run = _Run(
        params=params,
        world=world,
        task=task,
        batches=batches,
        examples=split.pairs,
        spec=spec,
        G=G,
        D=D,
        G_step=G_step,
        D_step=D_step,
        loss=loss,
        lr_g=lr_g,
        lr_d=lr_d,
        state=state,
        live=live,
        total=total,
        grid_every=grid_every,
        run_dir=run_dir,
        grids=grids,
    )

    # Train: each step updates D (n_critic times), then G, then keeps the books; during the task's
    # warm-up G learns from its pixel terms alone and D waits.
    began = time.perf_counter()
    with Progress(total, "train", initial=start) as progress:
        for step in range(start, total):
            rng, draws = run.begin_step(step)
            if step < warmup:
                critic, loss_g = None, run.pixel_step(step * tp.n_critic, rng)
            else:
                for k in range(tp.n_critic):
                    critic = run.d_step(step * tp.n_critic + k, rng, draws)
                loss_g = run.g_step(critic, draws)
            run.average_weights(step)
            run.log_losses(step, critic, loss_g, progress)
            run.now_and_then(step)
    seconds = time.perf_counter() - began

    # Publish: rank 0 writes every file, and only now, so a run that stops keeps the last outputs.
    if world.is_main:
        run.publish(paths)
    return TrainResult(
        steps=total,
        fingerprint=run_id,
        **_live_summary(state.live),
        resumed_from=start,
        seconds=seconds,
        images_per_second=(total - start) * tp.batch_size / max(seconds, 1e-9),
        processes=world.size,
    )


@dataclass(frozen=True)
class _Critic:
    """What D's last update of a step leaves for G's update and the log."""

    real: torch.Tensor  # this rank's real images (with a gradient under R1)
    pair: Pair  # G's inputs and what D sees beside an image, from the task
    fake: torch.Tensor  # G's output, not detached: G's update backpropagates through it
    loss_d: torch.Tensor
    logits_real: torch.Tensor
    logits_fake: torch.Tensor


@dataclass(frozen=True, kw_only=True)
class _Run:
    """One training run's parts, built by ``train``, and the named steps its loop takes with them.
    What changes from step to step lives in ``state`` (a TrainState, which checkpoints save)."""

    params: Params
    world: distributed.World
    task: Task
    batches: RealBatches
    examples: np.ndarray  # the training images, uint8, which the sample grids start from
    spec: ArchSpec
    G: torch.nn.Module
    D: torch.nn.Module
    G_step: torch.nn.Module  # G (or D) as forward passes run it: through DDP, torch.compile
    D_step: torch.nn.Module
    loss: AdversarialLoss
    lr_g: float
    lr_d: float
    state: TrainState  # also holds the optimizers, the EMA and the latent noise
    live: LiveQuality | None  # live quality, on rank 0 when train.eval_every asks for it
    total: int
    grid_every: int
    run_dir: Path
    grids: Path

    @property
    def tp(self) -> TrainParams:
        return self.params.train

    def begin_step(self, step: int) -> tuple[torch.Generator, Draws]:
        """Seed the step's random streams, so that a resumed run replays them, and set the learning
        rates of a schedule that decays over the run."""
        tp, world = self.tp, self.world
        torch.manual_seed(_dropout_seed(self.params.seed, step, world.rank))  # replayable, per rank
        rng = stream(self.params.seed, Stream.AUGMENT, step)  # augmentation and GP mixing, replayable too
        draws = world.draws(rng)  # ... drawn per image of the global batch
        if schedule.depends_on_length(tp.lr_schedule):
            factor = schedule.lr_factor(tp.lr_schedule, step, self.total)
            schedule.set_lr(self.state.opt_g, self.lr_g, factor)
            schedule.set_lr(self.state.opt_d, self.lr_d, factor)
        return rng, draws

    def d_step(self, batch: int, rng: torch.Generator, draws: Draws) -> _Critic:
        """D learns to tell real from fake (fakes detached: no gradient into G), on batch number
        ``batch`` of the run. The task makes G's input (noise, or a degraded image) and says what
        D sees beside an image, for the global batch; this rank keeps its rows."""
        tp, world, loss, D_step = self.tp, self.world, self.loss, self.D_step
        real, y_real = self.batches.get(batch, rng)
        pair = self.task.pair(real, y_real, batch, self.G).share(world.share)
        real = pair.real  # this rank's rows of the images D sees as real
        real.requires_grad_(tp.r1_gamma > 0)
        with _autocast(world.device, tp.mixed_precision):
            fake = self.G_step(*pair.inputs)
            fake_in = fake.detach().requires_grad_(tp.r2_gamma > 0)  # R2's point
            shown_real, shown_fake = pair.shown(real), pair.shown(fake_in)  # D's inputs
            logits_real = D_step(_augment(shown_real, tp, draws), pair.y_real).float()
            logits_fake = D_step(_augment(shown_fake, tp, draws), pair.y_fake).float()
            loss_d = loss.d(logits_real, logits_fake, tp.label_smoothing)
            loss_d = loss_d + _penalty(
                tp,
                loss,
                D_step,
                (shown_real, logits_real),
                (shown_fake, logits_fake),
                pair.y_real,
                draws,
            )
        opt_d = self.state.opt_d
        opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        opt_d.step()
        if loss.weight_clip:
            clip_weights(self.D, tp.clip_value)
        return _Critic(
            real=real, pair=pair, fake=fake, loss_d=loss_d, logits_real=logits_real, logits_fake=logits_fake
        )

    def g_step(self, critic: _Critic, draws: Draws) -> torch.Tensor:
        """G learns to fool the freshly updated D (on the last critic step's fakes; a relativistic
        loss pairs them with the freshly updated D's logits on that step's reals). Besides fooling
        D, the task may ask more of G (restoration: L1 to the original). Returns G's loss."""
        tp, world, loss, D_step = self.tp, self.world, self.loss, self.D_step
        pair, real, fake = critic.pair, critic.real, critic.fake
        with fast.frozen(self.D, enabled=world.size == 1), _autocast(world.device, tp.mixed_precision):
            paired = _paired_real_logits(loss, D_step, pair, real, tp, draws)
            loss_g = loss.g(D_step(_augment(pair.shown(fake), tp, draws), pair.y_fake).float(), paired)
            for term in self.task.g_terms(fake, real).values():
                loss_g = loss_g + term
        opt_g = self.state.opt_g
        opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        opt_g.step()
        return loss_g

    def pixel_step(self, batch: int, rng: torch.Generator) -> torch.Tensor:
        """Warm-up (ESRGAN's PSNR-oriented start): G learns from the task's pixel terms alone on batch
        number ``batch`` (the one the step's first D update would see); D is neither run nor updated."""
        real, y_real = self.batches.get(batch, rng)
        pair = self.task.pair(real, y_real, batch, self.G).share(self.world.share)
        with _autocast(self.world.device, self.tp.mixed_precision):
            fake = self.G_step(*pair.inputs)
            loss_g = sum(self.task.g_terms(fake, pair.real).values())
        opt_g = self.state.opt_g
        opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        opt_g.step()
        return loss_g

    def average_weights(self, step: int) -> None:
        """G's moving average follows the update; then the step counts as done."""
        self.state.ema.update(self.G, step)
        self.state.step = step + 1

    def log_losses(self, step: int, critic: _Critic | None, loss_g: torch.Tensor, progress: Progress) -> None:
        """Log the step's losses (the history, the progress line); stop on NaN. A warm-up step has no
        ``critic``: its D columns are empty."""
        epoch = self.batches.epoch_of(step * self.tp.n_critic)
        row = _history_row(self.world, step + 1, epoch, critic, loss_g)
        _stop_if_diverged(row, self.run_dir)
        self.state.history.append(row)
        progress.update(loss_d=row.loss_d, loss_g=row.loss_g)

    def now_and_then(self, step: int) -> None:
        """Now and then: a sample grid (per epoch or k epochs), live quality, a checkpoint; each at
        the last step too."""
        tp, world, state, done = self.tp, self.world, self.state, step + 1
        epoch = self.batches.epoch_of(step * tp.n_critic)
        epoch_ends = self.batches.epoch_of(done * tp.n_critic) != epoch
        shadow = state.ema.shadow
        if world.is_main and ((epoch_ends and (epoch + 1) % self.grid_every == 0) or done == self.total):
            _save_grid(self.task, shadow, self.examples, self.grids / f"epoch_{epoch + 1:03d}.png")
        if self.live is not None and (done % tp.eval_every == 0 or done == self.total):
            state.live.append(_measure(self.live, shadow, done, state.live, self.run_dir, self.spec))
            _check_collapse(state.live[-1], tp, self.run_dir, state)
        if world.is_main and (done % tp.checkpoint_every == 0 or done == self.total):
            checkpoint.save_checkpoint(self.run_dir, done, state.state_dict())

    def publish(self, paths: TrainPaths) -> None:
        """Rank 0 writes the run's outputs: the history and live quality CSVs, the grids, the EMA
        generator; then it marks the run finished and prunes the other runs' folders."""
        state = self.state
        write_csv(paths.history, state.history, HistoryRow)
        if paths.live is not None:  # written even when empty (train.eval_every 0): DVC declares it a plot
            write_csv(paths.live, state.live, LiveRow)
        checkpoint.publish_folder(self.grids, paths.samples)
        save_generator(paths.generator, state.ema.shadow, self.spec, step=self.total)
        checkpoint.mark_finished(self.run_dir, self.total)
        checkpoint.prune_runs(paths.checkpoints, keep=self.run_dir)
        _say_which_weights(state.live, self.total)


def _total_steps(tp: TrainParams, per_epoch: int, n_images: int, budget: tuple[int | None, str]) -> int:
    """Optimizer steps of the budget (train.epochs if set, else the task's images budget), logged as passes."""
    images, named = budget
    batches = per_epoch * tp.epochs if tp.epochs is not None else max(1, images // tp.batch_size)
    total = max(1, batches // tp.n_critic)
    if tp.max_steps is not None:
        total = min(total, tp.max_steps)
    seen = total * tp.n_critic * tp.batch_size
    log.info(
        "budget: %d steps = %d real images = %.1f passes over the %d training images (%s)",
        total,
        seen,
        seen / n_images,
        n_images,
        f"train.epochs={tp.epochs}" if tp.epochs is not None else f"{named}={images}",
    )
    return total


def _resume(
    state: TrainState, world: distributed.World, run_dir: Path, material: dict, total: int, checkpoints: Path
) -> int:
    """Load the run's newest checkpoint into ``state``, if it has one, and open the run's folder;
    returns the step training starts from (the same on every rank)."""
    run_id = state.fingerprint
    saved = checkpoint.load_latest(run_dir, run_id, total)
    world.barrier()  # every rank has read the checkpoints before rank 0 writes new ones
    if world.is_main:
        checkpoint.open_run(run_dir, material)
    if saved is None:
        _refuse_another_world_size(checkpoints, material, total, world.size)
        log.info("training run %s starts at step 0 (%s)", run_id[:16], run_dir)
    else:
        state.load_state_dict(saved)
        log.info("resuming from step %d of %d (%s)", state.step, total, run_dir)
    start = state.step
    world.same_on_all_ranks(start, "the step training resumes from")
    return start


def _refuse_another_world_size(checkpoints: Path, material: dict, total: int, world_size: int) -> None:
    """Resuming is exact or it does not happen: another world size would continue other bits."""
    found = checkpoint.unfinished_with_other_world_size(checkpoints, material, total)
    if found is None:
        return
    folder, theirs, step = found
    raise TrainingError(
        f"{folder} holds this run's checkpoints up to step {step} of {total}, trained by {theirs} "
        f"process(es); resuming them with {world_size} would not continue the same run (the world size "
        f"changes the bits). Set train.processes={theirs} to resume it, or delete {folder} to start over"
    )


def _grid_every(batches: int, per_epoch: int, most: int = 20) -> int:
    """One sample grid per epoch, or per k epochs when a small dataset makes epochs many."""
    return max(1, math.ceil(batches / per_epoch / most))


def _say_which_weights(live_rows: list[LiveRow], total: int) -> None:
    """The last step's EMA weights are what is exported; say so when live FID preferred another."""
    if not live_rows:
        return
    best = min(live_rows, key=lambda row: row.fid_live)
    last = live_rows[-1]
    if best.step != last.step and best.fid_live < last.fid_live:
        log.info(
            "models/generator.pt holds the last step's EMA weights (step %d, live FID %.3f), which evaluate, "
            "export and register use; the best live FID was %.3f at step %d (its weights are best.pt in the "
            "run's checkpoint folder). Live FID is measured on train.eval_samples images, so a small gap is noise",
            total,
            last.fid_live,
            best.fid_live,
            best.step,
        )


def _double_backward(tp: TrainParams, loss: AdversarialLoss) -> bool:
    return tp.r1_gamma > 0 or tp.r2_gamma > 0 or (loss.gradient_penalty and tp.gp_weight > 0)


def _dropout_seed(seed: int, step: int, rank: int) -> int:
    """Dropout draws from torch's global stream, per rank (rank 0 as one process): ranks never repeat."""
    return int(stream(seed, Stream.DROPOUT, step, *([rank] if rank else [])).initial_seed())


def _augment(x: torch.Tensor, tp: TrainParams, draws: Draws) -> torch.Tensor:
    """DiffAugment of what D sees (real and fake alike); identity when train.augment has none."""
    return diff_augment(x, tp.augment, draws)


def _penalty(
    tp: TrainParams,
    loss: AdversarialLoss,
    D: torch.nn.Module,
    real: tuple[torch.Tensor, torch.Tensor],
    fake: tuple[torch.Tensor, torch.Tensor],
    y_real: torch.Tensor | None,
    draws: Draws,
) -> torch.Tensor | float:
    """D's regularizers on (images, logits) of reals and fakes: WGAN-GP's gradient penalty, R1 on
    the reals, R2 on the fakes (each only when its weight is above zero)."""
    total: torch.Tensor | float = 0.0
    if loss.gradient_penalty and tp.gp_weight > 0:
        total = total + tp.gp_weight * gradient_penalty(D, real[0], fake[0], y_real, draws)
    if tp.r1_gamma > 0:
        total = total + 0.5 * tp.r1_gamma * zero_centred_penalty(real[1], real[0])
    if tp.r2_gamma > 0:
        total = total + 0.5 * tp.r2_gamma * zero_centred_penalty(fake[1], fake[0])
    return total


def _paired_real_logits(
    loss: AdversarialLoss,
    D: torch.nn.Module,
    pair: Pair,
    real: torch.Tensor,
    tp: TrainParams,
    draws: Draws,
) -> torch.Tensor | None:
    """D's logits on the reals that a relativistic G loss compares its fakes with (no gradient:
    G's gradient flows through the fakes only); None for the other losses, at no cost."""
    if not loss.relativistic:
        return None
    with torch.no_grad():
        return D(_augment(pair.shown(real.detach()), tp, draws), pair.y_real).float()


def _history_row(
    world: distributed.World, step: int, epoch: int, critic: _Critic | None, loss_g: torch.Tensor
) -> HistoryRow:
    """The step's losses and D's mean outputs over the global batch: the same row on every rank
    (D's columns NaN in a warm-up step, where D does not run)."""
    if critic is None:
        (mean_loss_g,) = world.mean([loss_g.item()])
        return HistoryRow(step, epoch, math.nan, mean_loss_g, math.nan, math.nan)
    d_real = torch.sigmoid(critic.logits_real).mean().item()
    d_fake = torch.sigmoid(critic.logits_fake).mean().item()
    mean_loss_d, mean_loss_g, mean_d_real, mean_d_fake = world.mean(
        [critic.loss_d.item(), loss_g.item(), d_real, d_fake]
    )
    return HistoryRow(
        step=step,
        epoch=epoch,
        loss_d=mean_loss_d,
        loss_g=mean_loss_g,
        d_real=mean_d_real,
        d_fake=mean_d_fake,
    )


def _stop_if_diverged(row: HistoryRow, run_dir: Path) -> None:
    d_ran = not math.isnan(row.d_real)  # a warm-up step leaves D's columns NaN
    if not math.isfinite(row.loss_g) or (d_ran and not math.isfinite(row.loss_d)):
        raise TrainingError(
            f"loss became {row.loss_d} (D) / {row.loss_g} (G) at step {row.step}; the last good checkpoint "
            f"is kept in {run_dir}. Lower train.lr (or train.lr_d), or stabilize D with a penalty "
            "(train.r1_gamma, train.loss=wgan_gp) or model.spectral_norm"
        )


def _live_quality(params: Params, paths: TrainPaths, task: Task, device: torch.device) -> LiveQuality | None:
    tp = params.train
    if tp.eval_every == 0:
        return None
    if paths.evaluator is None or not paths.evaluator.is_file():
        log.warning(
            "train.eval_every: no evaluator at %s; live FID is off (run the evaluator stage)", paths.evaluator
        )
        return None
    cache = paths.feature_cache or paths.checkpoints.parent / "feature_cache"
    return LiveQuality(
        evaluator=paths.evaluator,
        prepared=paths.prepared,
        cache=cache,
        samples=tp.eval_samples,
        inputs=task.live_inputs,
        device=device,
    )


def _measure(
    live: LiveQuality,
    G: torch.nn.Module,
    step: int,
    earlier: list[LiveRow],
    run_dir: Path,
    spec: ArchSpec,
) -> LiveRow:
    """Live FID of the EMA generator; a new best is saved as best.pt in the run's folder."""
    result = live.measure(G)
    row = LiveRow(
        step=step,
        fid_live=result["fid_live"],
        class_coverage=result["class_coverage"],
        class_kl=result["class_kl"],
    )
    if all(row.fid_live < old.fid_live for old in earlier):
        save_generator(run_dir / "best.pt", G, spec, step=step, note=f"best fid_live {row.fid_live:.4g}")
    log.info("step %d: fid_live %.3f, class coverage %.2f, class KL %.3f", *row)
    return row


def _check_collapse(row: LiveRow, tp: TrainParams, run_dir: Path, state: TrainState) -> None:
    """Warn when live class coverage falls under train.collapse_coverage; with train.stop_on_collapse,
    save a checkpoint (to go on from, with other settings) and stop."""
    coverage = row.class_coverage
    if math.isnan(coverage) or coverage >= tp.collapse_coverage:
        return
    message = (
        f"mode collapse at step {row.step}: only {coverage:.0%} of the classes have >= 1% of the samples "
        f"(threshold train.collapse_coverage={tp.collapse_coverage})"
    )
    if not tp.stop_on_collapse:
        log.warning("%s; training goes on (set train.stop_on_collapse to stop)", message)
        return
    checkpoint.save_checkpoint(run_dir, row.step, state.state_dict())
    raise TrainingError(
        f"{message}; stopped (train.stop_on_collapse), checkpoint kept in {run_dir}. Try train.loss=hinge "
        "with model.spectral_norm, a lower train.lr_g, or model.conditional"
    )


def _live_summary(live_rows: list[LiveRow]) -> dict:
    if not live_rows:
        return {}
    best = min(live_rows, key=lambda row: row.fid_live)
    return {
        "best_step": best.step,
        "best_fid_live": best.fid_live,
        "last_fid_live": live_rows[-1].fid_live,
        "last_class_coverage": live_rows[-1].class_coverage,
    }


@torch.no_grad()
def _save_grid(task: Task, G: torch.nn.Module, examples, path: Path) -> None:
    images, per_row = task.grid(G, examples)
    with atomic_path(path) as tmp:
        save_image(images, tmp, format="png", nrow=per_row, normalize=True, value_range=(-1, 1))
