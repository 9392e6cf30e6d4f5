"""The GAN training loop.

The whole algorithm is visible in ``train``: take a batch, update D on real and fake
(``n_critic`` times), update G, average G's weights, log, now and then measure. Everything
else (checkpoints, EMA, penalties, augmentation, live FID, grids, progress) sits behind small
helpers. Randomness comes from seeded sources so that a resumed run replays it exactly: the
weights' init (``seed``), each epoch's shuffle (``seed``, epoch), the latent noise (a generator
whose state is checkpointed), and per step (``seed``, step) a generator for augmentation and
penalty mixing plus torch's global stream for dropout.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import json
import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from torchvision.utils import save_image

from ganops import codedeps
from ganops.config import Params, TrainParams
from ganops.data.prepared import dataset_fingerprint, load_split
from ganops.environment import library_versions
from ganops.errors import ConfigError, DataError, TrainingError
from ganops.files import atomic_path
from ganops.losses import LOSSES, AdversarialLoss, clip_weights, gradient_penalty, zero_centred_penalty
from ganops.models import ArchSpec, build_discriminator, build_generator
from ganops.models.io import load_generator, save_generator
from ganops.models.layers import labels_for
from ganops.progress import Progress
from ganops.runtime import Stream, seed_everything, stream
from ganops.training import checkpoint, distributed, fast, schedule
from ganops.training.augment import diff_augment
from ganops.training.batches import RealBatches
from ganops.training.ema import EMA
from ganops.training.live import LIVE_COLUMNS, LiveQuality

log = logging.getLogger(__name__)

HISTORY_COLUMNS = ("step", "epoch", "loss_d", "loss_g", "d_real", "d_fake")
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

    TIMING_FIELDS = ("resumed_from", "seconds", "images_per_second")


def fingerprint(params: Params, data_sha256: str, total_steps: int) -> tuple[str, dict]:
    """What makes two training runs the same run: the settings that shape training, the data, the
    code the train stage runs and the library versions. Epochs, step caps and logging are left
    out, so a longer run resumes a shorter one's checkpoints; anything else starts a new run. A
    learning-rate schedule that decays over the run makes the length shape training too: then
    the run's total steps are part of it, and a longer run starts from step 0."""
    shaping = params.train.model_dump(
        exclude={"images", "epochs", "max_steps", "checkpoint_every", "device", "compile", "eval_every"}
        | {"eval_samples"}
        | {"collapse_coverage", "stop_on_collapse", "grid_size"}
    )
    material = {
        "format": FORMAT,
        "seed": params.seed,
        "model": params.model.model_dump(),
        "train": shaping,
        "data_sha256": data_sha256,
        "code_sha256": codedeps.code_hash(codedeps.stage_closure("train")),
        "libraries": library_versions(),
    }
    if schedule.depends_on_length(params.train.lr_schedule):
        material["total_steps"] = total_steps
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
    split = load_split(paths.prepared, "train")
    n_images = len(split.images)
    if n_images < tp.batch_size * tp.n_critic:
        raise DataError(
            f"train.batch_size: {tp.batch_size} x train.n_critic {tp.n_critic} exceeds the "
            f"{n_images} prepared training images; lower them"
        )
    spec = _arch_spec(params, split)
    images = torch.from_numpy(split.images).to(device)  # uint8; batches are normalized on the fly
    labels = torch.from_numpy(split.labels).long().to(device) if spec.conditional else None

    seed_everything(params.seed)
    G, D = build_generator(spec).to(device), build_discriminator(spec).to(device)
    if spec.conditional:  # G(z) draws labels with the training data's class frequencies
        G.cond.classes.set_prior(torch.bincount(labels.cpu(), minlength=spec.num_classes))
    memory_format = fast.memory_format(device)
    G, D = G.to(memory_format=memory_format), D.to(memory_format=memory_format)
    loss = LOSSES.get(tp.loss)
    lr_g, lr_d = tp.lr_g or tp.lr, tp.lr_d or tp.lr
    opt_g = fast.adam(G.parameters(), lr_g, (tp.beta1, tp.beta2), device)
    opt_d = fast.adam(D.parameters(), lr_d, (tp.beta1, tp.beta2), device)
    ema = EMA(G, tp.ema_decay)
    noise = stream(params.seed, Stream.LATENT_NOISE)
    fixed_z = torch.randn(tp.grid_size, spec.latent_dim, generator=stream(params.seed, Stream.GRID_Z)).to(
        device
    )
    batches = RealBatches(
        images=images,
        labels=labels,
        batch_size=tp.batch_size,
        seed=params.seed,
        flip="hflip" in tp.augment,
        memory_format=memory_format,
        share=world.share,
    )
    live = _live_quality(params, paths, spec, device) if world.is_main else None

    total = _total_steps(tp, batches.per_epoch, n_images)
    grid_every = _grid_every(total * tp.n_critic, batches.per_epoch)
    run_id, material = fingerprint(params, dataset_fingerprint(paths.prepared), total)
    run_dir = checkpoint.run_folder(paths.checkpoints, run_id)
    grids = run_dir / "samples"
    history: list[list[float]] = []
    live_history: list[list[float]] = []
    start = 0
    state = checkpoint.load_latest(run_dir, run_id, total)
    world.barrier()  # every rank has read the checkpoints before rank 0 writes new ones
    if world.is_main:
        checkpoint.open_run(run_dir, material)
    if state is None:
        log.info("training run %s starts at step 0 (%s)", run_id[:16], run_dir)
    else:
        G.load_state_dict(state["G"]), D.load_state_dict(state["D"])
        opt_g.load_state_dict(state["opt_g"]), opt_d.load_state_dict(state["opt_d"])
        ema.load_state_dict(state["ema"])
        noise.set_state(state["noise"])
        history, live_history = state["history"].tolist(), state["live"].tolist()
        start = state["step"]
        log.info("resuming from step %d of %d (%s)", start, total, run_dir)
    world.same_on_all_ranks(start, "the step training resumes from")

    def snapshot(step: int) -> dict:
        return {
            "fingerprint": run_id,
            "step": step,
            "G": G.state_dict(),
            "D": D.state_dict(),
            "opt_g": opt_g.state_dict(),
            "opt_d": opt_d.state_dict(),
            "ema": ema.state_dict(),
            "noise": noise.get_state(),
            "history": torch.tensor(history, dtype=torch.float64),
            "live": torch.tensor(live_history, dtype=torch.float64).reshape(-1, len(LIVE_COLUMNS)),
        }

    # Forward passes run through DDP (gradient all-reduce) and torch.compile when on; state is read
    # from G and D. D stays eager under a gradient penalty: compiled graphs have no double backward.
    G_step = fast.compiled(world.wrap(G), tp.compile, device)
    D_step = fast.compiled(world.wrap(D), "off" if _double_backward(tp, loss) else tp.compile, device)
    G.train(), D.train()
    began = time.perf_counter()
    with Progress(total, "train", initial=start) as progress:
        for step in range(start, total):
            torch.manual_seed(_step_seed(params.seed, step))  # dropout: replayable from (seed, step)
            rng = stream(params.seed, Stream.AUGMENT, step)  # augmentation and GP mixing, replayable too
            if schedule.depends_on_length(tp.lr_schedule):
                factor = schedule.lr_factor(tp.lr_schedule, step, total)
                schedule.set_lr(opt_g, lr_g, factor), schedule.set_lr(opt_d, lr_d, factor)

            # 1. D learns to tell real from fake, n_critic times (fakes detached: no gradient into G).
            for k in range(tp.n_critic):
                real, y_real = batches.get(step * tp.n_critic + k, rng)
                z = world.share(torch.randn(tp.batch_size, spec.latent_dim, generator=noise)).to(device)
                y_fake = labels_for(G, z)
                real.requires_grad_(tp.r1_gamma > 0)
                with _autocast(device, tp.mixed_precision):
                    fake = G_step(z, y_fake)
                    fake_in = fake.detach().requires_grad_(tp.r2_gamma > 0)  # D's input, R2's point
                    logits_real = D_step(_augment(real, tp, rng), y_real).float()
                    logits_fake = D_step(_augment(fake_in, tp, rng), y_fake).float()
                    loss_d = loss.d(logits_real, logits_fake, tp.label_smoothing)
                    loss_d = loss_d + _penalty(
                        tp, loss, D_step, (real, logits_real), (fake_in, logits_fake), y_real, rng
                    )
                opt_d.zero_grad(set_to_none=True)
                loss_d.backward()
                opt_d.step()
                if loss.weight_clip:
                    clip_weights(D, tp.clip_value)

            # 2. G learns to fool the freshly updated D (on the last critic step's fakes; a
            #    relativistic loss pairs them with the freshly updated D's logits on that step's reals).
            with fast.frozen(D, enabled=world.size == 1), _autocast(device, tp.mixed_precision):
                paired = _paired_real_logits(loss, D_step, real, y_real, tp, rng)
                loss_g = loss.g(D_step(_augment(fake, tp, rng), y_fake).float(), paired)
            opt_g.zero_grad(set_to_none=True)
            loss_g.backward()
            opt_g.step()
            ema.update(G, step)

            done, epoch = step + 1, batches.epoch_of(step * tp.n_critic)
            row = [done, epoch, loss_d.item(), loss_g.item(), *_mean_d(logits_real, logits_fake)]
            row[2:] = world.mean(row[2:])  # the global batch's losses, the same on every rank
            _stop_if_diverged(row, run_dir)
            history.append(row)
            progress.update(loss_d=row[2], loss_g=row[3])

            # 3. Now and then: sample grid, live quality, checkpoint.
            epoch_ends = batches.epoch_of(done * tp.n_critic) != epoch
            if world.is_main and ((epoch_ends and (epoch + 1) % grid_every == 0) or done == total):
                _save_grid(ema.shadow, fixed_z, grids / f"epoch_{epoch + 1:03d}.png")
            if live is not None and (done % tp.eval_every == 0 or done == total):
                live_history.append(_measure(live, ema.shadow, done, live_history, run_dir, spec))
                _check_collapse(live_history[-1], tp, run_dir, snapshot)
            if world.is_main and (done % tp.checkpoint_every == 0 or done == total):
                checkpoint.save_checkpoint(run_dir, done, snapshot(done))

    seconds = time.perf_counter() - began
    if world.is_main:  # rank 0 writes every file, and only now: a run that stops keeps the last outputs
        _write_history(paths.history, history)
        _write_live(paths.live, live_history)
        checkpoint.publish_folder(grids, paths.samples)
        save_generator(paths.generator, ema.shadow, spec, step=total)
        checkpoint.prune_runs(paths.checkpoints, keep=run_dir)
        _say_which_weights(live_history, total)
    trained = total - start
    return TrainResult(
        steps=total,
        fingerprint=run_id,
        **_live_summary(live_history),
        resumed_from=start,
        seconds=seconds,
        images_per_second=trained * tp.batch_size / max(seconds, 1e-9),
    )


def _total_steps(tp: TrainParams, per_epoch: int, n_images: int) -> int:
    """Optimizer steps of the budget (train.epochs if set, else train.images), logged as passes."""
    batches = per_epoch * tp.epochs if tp.epochs is not None else max(1, tp.images // tp.batch_size)
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
        f"train.epochs={tp.epochs}" if tp.epochs is not None else f"train.images={tp.images}",
    )
    return total


def _grid_every(batches: int, per_epoch: int, most: int = 20) -> int:
    """One sample grid per epoch, or per k epochs when a small dataset makes epochs many."""
    return max(1, math.ceil(batches / per_epoch / most))


def _say_which_weights(live_history: list[list[float]], total: int) -> None:
    """The last step's EMA weights are what is exported; say so when live FID preferred another."""
    if not live_history:
        return
    best = min(live_history, key=lambda r: r[1])
    last = live_history[-1]
    if int(best[0]) != int(last[0]) and best[1] < last[1]:
        log.info(
            "models/generator.pt holds the last step's EMA weights (step %d, live FID %.3f), which evaluate, "
            "export and register use; the best live FID was %.3f at step %d (its weights are best.pt in the "
            "run's checkpoint folder). Live FID is measured on train.eval_samples images, so a small gap is noise",
            total,
            last[1],
            best[1],
            int(best[0]),
        )


def _arch_spec(params: Params, split) -> ArchSpec:
    m = params.model
    num_classes = 0
    if m.conditional:
        if split.labels is None:
            raise ConfigError(
                f"model.conditional: the prepared data ({params.data.source}) has no labels; "
                "set model.conditional to false or use a labelled source (or class sub-folders)"
            )
        num_classes = int(split.labels.max()) + 1
    return ArchSpec(
        arch=m.arch,
        latent_dim=m.latent_dim,
        image_size=split.images.shape[-1],
        channels=split.images.shape[1],
        g_width=m.g_width,
        d_width=m.d_width,
        num_classes=num_classes,
        spectral_norm=m.spectral_norm,
        d_dropout=m.d_dropout,
    )


def _double_backward(tp: TrainParams, loss: AdversarialLoss) -> bool:
    return tp.r1_gamma > 0 or tp.r2_gamma > 0 or (loss.gradient_penalty and tp.gp_weight > 0)


def _step_seed(seed: int, step: int) -> int:
    return int(stream(seed, Stream.DROPOUT, step).initial_seed())


def _augment(x: torch.Tensor, tp: TrainParams, rng: torch.Generator) -> torch.Tensor:
    """DiffAugment of what D sees (real and fake alike); identity when train.augment has none."""
    return diff_augment(x, tp.augment, rng)


def _penalty(
    tp: TrainParams,
    loss: AdversarialLoss,
    D: torch.nn.Module,
    real: tuple[torch.Tensor, torch.Tensor],
    fake: tuple[torch.Tensor, torch.Tensor],
    y_real: torch.Tensor | None,
    rng: torch.Generator,
) -> torch.Tensor | float:
    """D's regularizers on (images, logits) of reals and fakes: WGAN-GP's gradient penalty, R1 on
    the reals, R2 on the fakes (each only when its weight is above zero)."""
    total: torch.Tensor | float = 0.0
    if loss.gradient_penalty and tp.gp_weight > 0:
        total = total + tp.gp_weight * gradient_penalty(D, real[0], fake[0], y_real, rng)
    if tp.r1_gamma > 0:
        total = total + 0.5 * tp.r1_gamma * zero_centred_penalty(real[1], real[0])
    if tp.r2_gamma > 0:
        total = total + 0.5 * tp.r2_gamma * zero_centred_penalty(fake[1], fake[0])
    return total


def _paired_real_logits(
    loss: AdversarialLoss,
    D: torch.nn.Module,
    real: torch.Tensor,
    y_real: torch.Tensor | None,
    tp: TrainParams,
    rng: torch.Generator,
) -> torch.Tensor | None:
    """D's logits on the reals that a relativistic G loss compares its fakes with (no gradient:
    G's gradient flows through the fakes only); None for the other losses, at no cost."""
    if not loss.relativistic:
        return None
    with torch.no_grad():
        return D(_augment(real.detach(), tp, rng), y_real).float()


def _mean_d(logits_real: torch.Tensor, logits_fake: torch.Tensor) -> list[float]:
    return [torch.sigmoid(logits_real).mean().item(), torch.sigmoid(logits_fake).mean().item()]


def _stop_if_diverged(row: list[float], checkpoints: Path) -> None:
    if not all(math.isfinite(v) for v in row[2:4]):
        raise TrainingError(
            f"loss became {row[2]} (D) / {row[3]} (G) at step {row[0]}; the last good checkpoint is kept "
            f"in {checkpoints}. Lower train.lr (or train.lr_d), or stabilize D with a penalty "
            "(train.r1_gamma, train.loss=wgan_gp) or model.spectral_norm"
        )


def _live_quality(
    params: Params, paths: TrainPaths, spec: ArchSpec, device: torch.device
) -> LiveQuality | None:
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
        latent_dim=spec.latent_dim,
        seed=params.seed,
        device=device,
    )


def _measure(
    live: LiveQuality,
    G: torch.nn.Module,
    step: int,
    history: list[list[float]],
    run_dir: Path,
    spec: ArchSpec,
) -> list[float]:
    """Live FID of the EMA generator; a new best is saved as best.pt in the run's folder."""
    result = live.measure(G)
    row = [step, result["fid_live"], result["class_coverage"], result["class_kl"]]
    if all(row[1] < old[1] for old in history):
        save_generator(run_dir / "best.pt", G, spec, step=step, note=f"best fid_live {row[1]:.4g}")
    log.info("step %d: fid_live %.3f, class coverage %.2f, class KL %.3f", *row)
    return row


def _check_collapse(row: list[float], tp: TrainParams, checkpoints: Path, snapshot) -> None:
    coverage = row[2]
    if math.isnan(coverage) or coverage >= tp.collapse_coverage:
        return
    message = (
        f"mode collapse at step {int(row[0])}: only {coverage:.0%} of the classes have >= 1% of the samples "
        f"(threshold train.collapse_coverage={tp.collapse_coverage})"
    )
    if not tp.stop_on_collapse:
        log.warning("%s; training goes on (set train.stop_on_collapse to stop)", message)
        return
    checkpoint.save_checkpoint(checkpoints, int(row[0]), snapshot(int(row[0])))
    raise TrainingError(
        f"{message}; stopped (train.stop_on_collapse), checkpoint kept in {checkpoints}. Try train.loss=hinge "
        "with model.spectral_norm, a lower train.lr_g, or model.conditional"
    )


def _live_summary(live_history: list[list[float]]) -> dict:
    if not live_history:
        return {}
    best = min(live_history, key=lambda r: r[1])
    return {
        "best_step": int(best[0]),
        "best_fid_live": best[1],
        "last_fid_live": live_history[-1][1],
        "last_class_coverage": live_history[-1][2],
    }


@torch.no_grad()
def _save_grid(G: torch.nn.Module, z: torch.Tensor, path: Path) -> None:
    images = G(z).float()
    with atomic_path(path) as tmp:
        save_image(
            images, tmp, format="png", nrow=int(math.sqrt(len(z))), normalize=True, value_range=(-1, 1)
        )


def _write_history(path: Path, history: list[list[float]]) -> None:
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(HISTORY_COLUMNS)
        for row in history:
            writer.writerow([int(row[0]), int(row[1]), *(f"{v:.6g}" for v in row[2:])])


def _write_live(path: Path | None, live_history: list[list[float]]) -> None:
    if path is None:  # written even when empty (train.eval_every 0): DVC declares it as a plot
        return
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(LIVE_COLUMNS)
        for row in live_history:
            writer.writerow([int(row[0]), *(f"{v:.6g}" for v in row[1:])])
