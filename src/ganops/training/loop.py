"""The GAN training loop.

The whole algorithm is visible in ``train``: sample a batch, update D on real and fake,
update G, average G's weights, log. Everything else (checkpoints, EMA, grids, progress) sits
behind small helpers. Randomness comes from three seeded sources so that a resumed run
replays it exactly: the weights' init (``seed``), each epoch's shuffle (``seed``, epoch) and the
latent noise (a generator whose state is checkpointed).
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

from ganops.config import Params
from ganops.data.prepared import dataset_fingerprint, load_split, to_unit_range
from ganops.errors import DataError, TrainingError
from ganops.files import atomic_path, save_torch
from ganops.losses import LOSSES
from ganops.models import ArchSpec, build_discriminator, build_generator
from ganops.progress import Progress
from ganops.runtime import pick_device, seed_everything, seeded_generator
from ganops.training import checkpoint
from ganops.training.ema import EMA

log = logging.getLogger(__name__)

HISTORY_COLUMNS = ("step", "epoch", "loss_d", "loss_g", "d_real", "d_fake")


@dataclass(frozen=True)
class TrainPaths:
    prepared: Path
    generator: Path  # models/generator.pt: EMA weights + ArchSpec
    checkpoints: Path  # persist: true under DVC
    samples: Path  # one grid PNG per epoch
    history: Path  # per-step losses CSV (a DVC plot)


@dataclass(frozen=True)
class TrainResult:
    steps: int
    resumed_from: int
    seconds: float
    images_per_second: float


def fingerprint(params: Params, data_sha256: str) -> str:
    """What makes two training runs the same run. Epochs, step caps and logging are left out,
    so a longer run resumes a shorter one's checkpoints."""
    shaping = params.train.model_dump(exclude={"epochs", "max_steps", "checkpoint_every", "device"})
    blob = json.dumps([params.seed, params.model.model_dump(), shaping, data_sha256], sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()


def _autocast(device: torch.device, mode: str):
    if mode == "bf16" or (mode == "auto" and device.type == "cuda"):
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def train(params: Params, paths: TrainPaths) -> TrainResult:
    tp = params.train
    device = pick_device(tp.device)
    split = load_split(paths.prepared, "train")
    n_images = len(split.images)
    if n_images < tp.batch_size:
        raise DataError(f"train.batch_size: {tp.batch_size} exceeds the {n_images} prepared training images")
    # The whole uint8 dataset stays on the device; batches are normalized on the fly.
    images = torch.from_numpy(split.images).to(device)
    spec = ArchSpec(
        params.model.arch,
        params.model.latent_dim,
        images.shape[-1],
        images.shape[1],
        params.model.g_width,
        params.model.d_width,
    )

    seed_everything(params.seed)
    G, D = build_generator(spec).to(device), build_discriminator(spec).to(device)
    memory_format = torch.channels_last if device.type == "cuda" else torch.contiguous_format
    G, D = G.to(memory_format=memory_format), D.to(memory_format=memory_format)
    loss = LOSSES.get(tp.loss)
    opt_g = torch.optim.Adam(G.parameters(), lr=tp.lr, betas=(tp.beta1, tp.beta2))
    opt_d = torch.optim.Adam(D.parameters(), lr=tp.lr, betas=(tp.beta1, tp.beta2))
    ema = EMA(G, tp.ema_decay)
    noise = seeded_generator(params.seed, 1)
    fixed_z = torch.randn(tp.grid_size, spec.latent_dim, generator=seeded_generator(params.seed, 2)).to(
        device
    )

    steps_per_epoch = n_images // tp.batch_size
    total = (
        steps_per_epoch * tp.epochs
        if tp.max_steps is None
        else min(tp.max_steps, steps_per_epoch * tp.epochs)
    )
    run_id = fingerprint(params, dataset_fingerprint(paths.prepared))
    history: list[list[float]] = []
    start = 0
    state = checkpoint.load_latest(paths.checkpoints, run_id, total)
    if state is None:
        checkpoint.clear(paths.checkpoints)
        checkpoint.clear(paths.samples)
    else:
        G.load_state_dict(state["G"]), D.load_state_dict(state["D"])
        opt_g.load_state_dict(state["opt_g"]), opt_d.load_state_dict(state["opt_d"])
        ema.load_state_dict(state["ema"])
        noise.set_state(state["noise"])
        history = state["history"].tolist()
        start = state["step"]
        log.info("resuming from step %d of %d (%s)", start, total, paths.checkpoints)

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
        }

    G.train(), D.train()
    perm, perm_epoch = None, -1
    began = time.perf_counter()
    with Progress(total, "train", initial=start) as progress:
        for step in range(start, total):
            epoch, i = divmod(step, steps_per_epoch)
            if epoch != perm_epoch:
                perm, perm_epoch = (
                    torch.randperm(n_images, generator=seeded_generator(params.seed, 3, epoch)),
                    epoch,
                )
            idx = perm[i * tp.batch_size : (i + 1) * tp.batch_size].to(device)
            real = to_unit_range(images[idx]).contiguous(memory_format=memory_format)
            z = torch.randn(tp.batch_size, spec.latent_dim, generator=noise).to(device)

            # 1. D learns to tell real from fake (fake detached: no gradient into G here).
            with _autocast(device, tp.mixed_precision):
                fake = G(z)
                logits_real, logits_fake = D(real), D(fake.detach())
                loss_d = loss.d(logits_real.float(), logits_fake.float())
            opt_d.zero_grad(set_to_none=True)
            loss_d.backward()
            opt_d.step()

            # 2. G learns to fool the freshly updated D.
            with _autocast(device, tp.mixed_precision):
                loss_g = loss.g(D(fake).float())
            opt_g.zero_grad(set_to_none=True)
            loss_g.backward()
            opt_g.step()
            ema.update(G, step)

            row = [
                step + 1,
                epoch,
                loss_d.item(),
                loss_g.item(),
                torch.sigmoid(logits_real.float()).mean().item(),
                torch.sigmoid(logits_fake.float()).mean().item(),
            ]
            if not all(math.isfinite(v) for v in row[2:4]):
                raise TrainingError(
                    f"loss became {row[2]} (D) / {row[3]} (G) at step {step + 1}; the last good checkpoint is kept "
                    f"in {paths.checkpoints}. Lower train.lr or choose a more stable train.loss"
                )
            history.append(row)
            progress.update(loss_d=row[2], loss_g=row[3])

            done = step + 1
            if done % steps_per_epoch == 0 or done == total:
                _save_grid(ema.shadow, fixed_z, paths.samples / f"epoch_{epoch + 1:03d}.png")
            if done % tp.checkpoint_every == 0 or done == total:
                checkpoint.save_checkpoint(paths.checkpoints, done, snapshot(done))
                _write_history(paths.history, history)

    seconds = time.perf_counter() - began
    if start == total:  # nothing left to train: the state comes from the final checkpoint
        _write_history(paths.history, history)
    _save_generator(paths.generator, ema.shadow, spec, step=total, run_id=run_id)
    trained = total - start
    return TrainResult(total, start, seconds, trained * tp.batch_size / max(seconds, 1e-9))


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


def _save_generator(path: Path, G: torch.nn.Module, spec: ArchSpec, step: int, run_id: str) -> None:
    weights = {k: v.detach().cpu().contiguous() for k, v in G.state_dict().items()}
    save_torch({"arch": spec.to_dict(), "state_dict": weights, "step": step, "fingerprint": run_id}, path)


def load_generator(path: str | Path, device: torch.device | str = "cpu") -> tuple[torch.nn.Module, ArchSpec]:
    """Rebuild the generator from models/generator.pt (weights only: nothing is unpickled)."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: not found; run the train stage first (`ganops train`)")
    try:
        saved = torch.load(path, map_location=device, weights_only=True)
        spec = ArchSpec(**saved["arch"])
        G = build_generator(spec)
        G.load_state_dict(saved["state_dict"])
    except (RuntimeError, KeyError, TypeError) as err:
        raise DataError(f"{path}: not a ganops generator file ({err}); rerun the train stage") from None
    return G.to(device).eval(), spec
