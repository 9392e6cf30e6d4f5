"""params.yaml schema.

Every knob of the pipeline lives here, one section per stage plus a global ``seed``. Loading
validates the whole file before any stage touches an output: an unknown key, a wrong type or
an out-of-range value raises ConfigError with one line per problem, each naming the key path
and the rule (``train.lr: must be > 0, got -1``).
"""

from __future__ import annotations

import difflib
import warnings
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from ganops import catalog
from ganops.errors import ConfigError

DEFAULT_PARAMS = Path("params.yaml")


def _one_of(valid: list[str], name: str) -> str:
    if name not in valid:
        raise ValueError(f"must be one of {', '.join(valid)}, got {name!r}")
    return name


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DataParams(Section):
    source: str = "fashion-mnist"
    # Folder holding the source's files; null means the source's default places
    # (Debian's /usr/share/datasets/... first, then data/raw/ via torchvision's downloader).
    root: str | None = None
    image_size: int = Field(32, ge=8, le=1024)
    # Caps on the number of images taken (the first N of each split; with random_patches, the
    # first N patches, a file's patches being consecutive); null keeps them all.
    max_train: int | None = Field(None, ge=1)
    max_test: int | None = Field(None, ge=1)
    # Channel conversion: 1 (gray) or 3 (RGB); null keeps the source's own.
    channels: Literal[1, 3] | None = None
    # Drop exact duplicate images (after preprocessing) within each split.
    deduplicate: bool = False
    # Unreadable image files: skip them and count them in the manifest, or stop naming the file.
    on_corrupt: Literal["skip", "fail"] = "skip"
    # Share of images held out as the test split for sources without one (imagefolder, celeba, digits).
    test_fraction: float = Field(0.1, gt=0, lt=1)
    # What transparent pixels (alpha, palette or PNG transparency) are composited onto:
    # white, black, or an RGB triple [r, g, b] of 0..255.
    background: str | list[int] = "white"
    # How a file becomes image_size x image_size. resize: shorter side resized, centre crop (one
    # image per file). random_patches: patches_per_image squares cut at native resolution (shorter
    # side capped at 1024 px), at seeded positions, after the train/test split by file; for
    # restoration tasks (super-resolution) on a few large photos. Folder sources only
    # (imagefolder, celeba); a file smaller than image_size is refused, not upscaled.
    crop: Literal["resize", "random_patches"] = "resize"
    # Patches cut from each file with crop: random_patches (labels are repeated per patch).
    patches_per_image: int = Field(16, ge=1)
    # With crop: random_patches, photos whose shorter side is longer are shrunk to it (Lanczos) before
    # patches are cut: the scale training sees (match it to whole_test_side's to train as you score).
    native_max_side: int = Field(1024, ge=8, le=8192)
    # With crop: random_patches, the held-out files are also kept whole (data/prepared/test_whole.npz),
    # the longer side shrunk to at most this many px: the restoration tasks are scored on them, as a
    # user brings them, while training sees patches. null: score on the test patches instead.
    whole_test_side: int | None = Field(512, ge=64, le=4096)
    # Paired images for task translate (imagefolder only). folders: data.root/A and data.root/B hold
    # files of the same names; side_by_side: each file is pix2pix's A and B halves side by side;
    # null: unpaired images (translate then pairs each image with its edges); auto: folders when
    # the task learns from pairs and data.root holds A/ and B/, else null.
    pairs: Literal["auto", "folders", "side_by_side"] | None = "auto"
    direction: Literal["AtoB", "BtoA"] = (
        "AtoB"  # which of a pair is the model's input (pix2pix's --direction)
    )

    @field_validator("crop")
    @classmethod
    def _patches_need_files(cls, crop: str, info: ValidationInfo) -> str:
        source = info.data.get("source")
        if crop == "random_patches" and source is not None and source not in catalog.FILE_SOURCES:
            raise ValueError(
                f"random_patches cuts patches from image files at native resolution, and {source}'s "
                f"images are already small arrays; use data.crop=resize, or a folder source "
                f"({', '.join(catalog.FILE_SOURCES)})"
            )
        return crop

    @field_validator("pairs")
    @classmethod
    def _pairs_are_files(cls, pairs: str | None, info: ValidationInfo) -> str | None:
        source = info.data.get("source")
        if pairs in ("auto", None):
            return pairs
        if source is not None and source != "imagefolder":
            raise ValueError(
                f"{pairs} pairs are read from a folder of image files; set data.source=imagefolder with "
                f"data.root=DIR, or data.pairs=null for {source}"
            )
        if info.data.get("crop") == "random_patches":
            raise ValueError("paired images are resized whole; use data.crop=resize with data.pairs")
        return pairs

    @field_validator("background")
    @classmethod
    def _white_black_or_rgb(cls, background: str | list[int]) -> str | list[int]:
        named = background in ("white", "black")
        triple = (
            isinstance(background, list) and len(background) == 3 and all(0 <= v <= 255 for v in background)
        )
        if not (named or triple):
            raise ValueError(
                f"must be white, black or three integers 0..255 like [128, 128, 128], got {background!r}"
            )
        return background

    @property
    def background_rgb(self) -> tuple[int, int, int]:
        named = {"white": (255, 255, 255), "black": (0, 0, 0)}
        return named[self.background] if isinstance(self.background, str) else tuple(self.background)

    @field_validator("source")
    @classmethod
    def _known_source(cls, name: str) -> str:
        return _one_of(catalog.SOURCES.names, name)


class EvaluatorParams(Section):
    # supervised: a classifier on the data's labels; self_supervised: the same network trained
    # without labels (contrastive views); auto: supervised when the labels give a usable classifier.
    objective: Literal["auto", "supervised", "self_supervised"] = "auto"
    # The label-free objective: rotation (predict a 0/90/180/270 turn) or contrastive (SimCLR);
    # chosen by measurement, docs/evaluator.md.
    self_supervised: Literal["rotation", "contrastive"] = "rotation"
    epochs: int = Field(3, ge=1)
    # Small sets get more passes: training runs at least this many steps, whatever the epochs.
    min_steps: int = Field(1000, ge=0)
    batch_size: int = Field(128, ge=2)
    lr: float = Field(1e-3, gt=0)
    width: int = Field(32, ge=4)
    feature_dim: int = Field(128, ge=8)
    # A classifier is usable when its test accuracy recovers at least this share of the way from
    # chance (the majority class's share) to 1, and beats chance in a binomial test (p < 0.001).
    min_skill: float = Field(0.25, ge=0, le=1)


class ModelParams(Section):
    # The sampling network (task generate). The restoration tasks always train a U-Net against a
    # PatchGAN (arch unet), sized by the restore section; spectral_norm and d_dropout apply to both.
    arch: str = "dcgan"
    latent_dim: int = Field(64, ge=1)
    g_width: int = Field(32, ge=1)
    d_width: int = Field(32, ge=1)
    # Class-conditional G (label embedding) and D (projection); needs a labelled dataset.
    conditional: bool = False
    # Spectral normalization of D's layers (D then has no batch norm).
    spectral_norm: bool = False
    d_dropout: float = Field(0.0, ge=0, lt=1)

    @field_validator("arch")
    @classmethod
    def _known_arch(cls, name: str) -> str:
        return _one_of(catalog.ARCHITECTURES.names, name)

    @field_validator("conditional")
    @classmethod
    def _conditional_exists(cls, conditional: bool, info: ValidationInfo) -> bool:
        arch = info.data.get("arch")
        if conditional and arch is not None and arch not in catalog.CONDITIONAL_ARCHITECTURES:
            raise ValueError(
                f"{arch} has no class-conditional variant; use one of "
                f"{', '.join(catalog.CONDITIONAL_ARCHITECTURES)} or set model.conditional to false"
            )
        return conditional


class TrainParams(Section):
    device: str = "auto"
    # The budget: how many real images D sees (steps = images / batch_size / n_critic), the same
    # on a folder of 2,000 icons as on 60,000 garments. epochs, when set, wins: passes over the
    # training split.
    images: int | None = Field(120_000, ge=1)
    epochs: int | None = Field(None, ge=1)
    # Optional cap on optimizer steps (for smoke runs); null trains the whole budget.
    max_steps: int | None = Field(None, ge=1)
    batch_size: int = Field(64, ge=1)
    loss: str = "non_saturating"
    lr: float = Field(2e-4, gt=0)
    # Two time-scale update rule (Heusel et al., 2017): separate rates; null means train.lr.
    lr_g: float | None = Field(None, gt=0)
    lr_d: float | None = Field(None, gt=0)
    # Learning rates over the run: constant, or decayed to zero at the run's last step (linear or
    # cosine). A decaying schedule depends on the run's length, so a longer run trains from step 0
    # instead of resuming a shorter one (the resume fingerprint includes the length then).
    lr_schedule: Literal["constant", "linear", "cosine"] = "constant"
    beta1: float = Field(0.5, ge=0, lt=1)
    beta2: float = Field(0.999, ge=0, lt=1)
    # D steps per G step (WGAN's critic iterations); each D step takes the next real batch.
    n_critic: int = Field(1, ge=1)
    # One-sided label smoothing: D's target for real images is 1 - this (cross-entropy losses only).
    label_smoothing: float = Field(0.0, ge=0, lt=0.5)
    clip_value: float = Field(0.01, gt=0)  # WGAN weight clipping range
    gp_weight: float = Field(10.0, ge=0)  # WGAN-GP penalty weight
    # Zero-centred gradient penalties, any loss (0: off): R1 on real images, R2 on generated ones.
    # relativistic + both is the R3GAN recipe (Huang et al., 2024).
    r1_gamma: float = Field(0.0, ge=0)
    r2_gamma: float = Field(0.0, ge=0)
    # Train-time augmentation: hflip (real images) and DiffAugment's color, translation, cutout
    # (applied to real and fake images alike, differentiably; Zhao et al., 2020).
    augment: list[Literal["hflip", "color", "translation", "cutout"]] = []
    # Exponential moving average of G's weights; the averaged weights are evaluated and exported.
    ema_decay: float = Field(0.999, ge=0, lt=1)
    checkpoint_every: int = Field(200, ge=1)
    grid_size: int = Field(64, ge=1, le=1024)
    # bf16 autocast and channels_last; "auto" turns them on for CUDA only.
    mixed_precision: Literal["auto", "off", "bf16"] = "auto"
    # torch.compile of G and D's training forward passes; "auto" turns it on for CUDA only. A failed
    # compilation falls back to eager with one notice.
    compile: Literal["auto", "on", "off"] = "auto"
    # Live quality: every eval_every steps (0: off), FID of eval_samples EMA samples and class
    # coverage go to reports/train/live.csv; the best step by that FID is kept as best.pt.
    eval_every: int = Field(0, ge=0)
    eval_samples: int = Field(1000, ge=2)
    # Fewer than this share of classes covered (>= 1% of samples each) is a mode-collapse warning.
    collapse_coverage: float = Field(0.5, ge=0, le=1)
    stop_on_collapse: bool = False
    # Data-parallel training processes on this node, which the train stage launches itself
    # (training.launch): auto is one per visible GPU, else 1. On a CPU they share cpu.threads.
    # Above 1 the bits differ from one process's, so the run fingerprint includes the world size.
    processes: Literal["auto"] | Annotated[int, Field(ge=1)] = "auto"

    @field_validator("device")
    @classmethod
    def _known_device(cls, device: str) -> str:
        if device in ("auto", "cpu") or device == "cuda" or device.startswith("cuda:"):
            return device
        raise ValueError(f"must be auto, cpu, cuda or cuda:N, got {device!r}")

    @model_validator(mode="after")
    def _has_a_budget(self) -> TrainParams:
        if self.images is None and self.epochs is None:
            raise ValueError("set train.images (real images to train on) or train.epochs")
        return self

    @model_validator(mode="after")
    def _batch_splits_over_processes(self) -> TrainParams:
        if self.processes != "auto" and self.batch_size % self.processes:
            raise ValueError(
                f"train.batch_size {self.batch_size} (the global batch) is not divisible by train.processes "
                f"{self.processes}; use a multiple of {self.processes}"
            )
        return self

    @field_validator("loss")
    @classmethod
    def _known_loss(cls, name: str) -> str:
        return _one_of(catalog.LOSSES.names, name)

    @field_validator("label_smoothing")
    @classmethod
    def _smoothing_fits_loss(cls, smoothing: float, info: ValidationInfo) -> float:
        loss = info.data.get("loss")
        if smoothing > 0 and loss is not None and loss not in catalog.SMOOTHABLE_LOSSES:
            raise ValueError(
                f"applies to the cross-entropy losses ({', '.join(catalog.SMOOTHABLE_LOSSES)}), "
                f"not {loss}; set it to 0"
            )
        return smoothing


class EvaluateParams(Section):
    num_samples: int = Field(10_000, ge=2)
    num_real: int = Field(10_000, ge=2)
    batch_size: int = Field(500, ge=1)
    kid_subsets: int = Field(50, ge=1)
    kid_subset_size: int = Field(1000, ge=2)
    # Which metrics to compute (see ganops.metrics.METRICS); fid is always computed.
    metrics: list[str] = ["fid", "kid", "is", "prdc", "classes", "fid_bootstrap", "fid_inception"]
    prdc_samples: int = Field(5000, ge=10)  # per side, for precision/recall/density/coverage
    prdc_k: int = Field(5, ge=1)
    bootstrap: int = Field(50, ge=2)  # resamples of the generated features for FID's 95% interval
    # Inception-v3 FID weights (torch-fidelity's pt_inception-2015-12-05 file); null looks in the
    # torch hub cache. Without the file fid_inception is omitted, never faked.
    inception_weights: str | None = None
    inception_samples: int = Field(10_000, ge=2)

    @field_validator("metrics")
    @classmethod
    def _known_metrics(cls, names: list[str]) -> list[str]:
        for name in names:
            _one_of(catalog.METRICS.names, name)
        return names


class ExportParams(Section):
    opset: int = Field(18, ge=17)
    parity_samples: int = Field(64, ge=1)
    parity_tolerance: float = Field(1e-3, gt=0)


class RegisterParams(Section):
    model_name: str = Field("ganops-generator", min_length=1)
    experiment: str = Field("ganops", min_length=1)
    # null: $MLFLOW_TRACKING_URI if set, else a SQLite file in the working directory.
    tracking_uri: str | None = None
    champion_alias: str = Field("champion", min_length=1)
    challenger_alias: str = Field("challenger", min_length=1)
    # The challenger must beat the champion's fid_domain by more than this to take the alias.
    promotion_margin: float = Field(0.0, ge=0)


def _share_range(shares: list[float], example: str) -> list[float]:
    """A [low, high] range of shares of an image, from which one is drawn per image."""
    if len(shares) != 2 or not 0 < shares[0] <= shares[1] < 1:
        raise ValueError(f"must be [low, high] with 0 < low <= high < 1, like {example}, got {shares!r}")
    return shares


class InpaintParams(Section):
    """The holes an inpainting model learns to fill (free-form strokes and boxes, as LaMa trains on)."""

    # Share of the image a mask hides, drawn uniformly from [low, high] per mask.
    coverage: list[float] = [0.1, 0.4]

    @field_validator("coverage")
    @classmethod
    def _a_range(cls, coverage: list[float]) -> list[float]:
        return _share_range(coverage, "[0.1, 0.4]")


class SuperresParams(Section):
    """The low-resolution images a super-resolution model learns to upscale (Real-ESRGAN-style options)."""

    factor: Literal[2, 4] = 2  # output size / input size
    # Before the downscale: Gaussian blur with sigma drawn from [0, blur] high-resolution pixels.
    blur: float = Field(0.0, ge=0, le=5)
    # After it: Gaussian noise with std drawn from [0, noise], in units of the [0, 1] pixel range.
    noise: float = Field(0.0, ge=0, le=0.5)
    # Then JPEG compression at a quality drawn from [jpeg_quality, 95]; null: none.
    jpeg_quality: int | None = Field(None, ge=10, le=95)


class TranslateParams(Section):
    """Paired translation (task: translate). With unpaired data (data.pairs: null), each image is paired
    with its edges, drawn as pix2pix's edges2* data sets are (dark lines on white): a Sobel edge detector
    on the blurred luminance, its threshold drawn per image from the seed."""

    # Gaussian blur (sigma, in pixels) before the edge detector: what counts as an edge, not as texture.
    edge_blur: float = Field(1.0, ge=0, le=5)
    # Share of each image's strongest gradients drawn as edges, drawn from [low, high] per image.
    edge_share: list[float] = [0.08, 0.16]

    @field_validator("edge_share")
    @classmethod
    def _a_share(cls, share: list[float]) -> list[float]:
        return _share_range(share, "[0.08, 0.16]")


class RestoreParams(Section):
    """The image-to-image tasks (task: inpaint | superres | colorize | translate): a U-Net generator learns
    to undo a degradation of the prepared images, or to translate the input of a pair into its image,
    against a PatchGAN that sees its input and output (pix2pix)."""

    g_width: int = Field(16, ge=1)  # U-Net channels at full resolution (doubling per level, at most 8x)
    d_width: int = Field(16, ge=1)  # PatchGAN channels of its first layer
    # Real images to train on (as train.images, which it replaces for these tasks; train.epochs still
    # wins when set): L1 to the original teaches fast, and a U-Net step costs several DCGAN steps.
    images: int | None = Field(40_000, ge=1)
    l1_weight: float = Field(100.0, ge=0)  # weight of |G(x) - y|_1 beside the adversarial loss (pix2pix: 100)
    # Feature matching: weight of |f(G(x)) - f(y)|_1, f the domain evaluator's features (models/evaluator.pt,
    # trained here on the same data: nothing downloaded); 0 = off.
    feature_weight: float = Field(0.0, ge=0)
    # Share of the run's steps in which G learns from the pixel terms alone (L1, features) while D
    # waits, before the adversarial term joins (ESRGAN's PSNR-oriented start): the GAN then sharpens
    # a model that already beats the classical tool, instead of starting from noise. 0: from step 1;
    # 1: no GAN at all (the L1-only U-Net, to set beside the GAN).
    warmup: float = Field(0.0, ge=0, le=1)
    depth: int = Field(3, ge=2, le=6)  # U-Net levels: inputs are padded to a multiple of 2**depth
    # Dilated residual blocks at the U-Net's bottleneck (dilations 1, 2, 4, ...): each widens what an
    # output pixel sees, so holes wider than the plain U-Net's view get context (docs/restoration.md).
    dilated: int = Field(0, ge=0, le=6)
    patch_depth: int = Field(
        3, ge=1, le=5
    )  # PatchGAN strided layers: receptive field 16, 34, 70 px for 2, 3, 4
    eval_images: int = Field(500, ge=4)  # test images (or whole held-out photos) in the evaluation set
    inpaint: InpaintParams = InpaintParams()
    superres: SuperresParams = SuperresParams()
    translate: TranslateParams = TranslateParams()

    @model_validator(mode="after")
    def _warmup_has_a_loss(self) -> RestoreParams:
        if self.warmup > 0 and self.l1_weight == 0 and self.feature_weight == 0:
            raise ValueError(
                f"warmup {self.warmup} trains G on the pixel terms alone, and l1_weight and feature_weight "
                "are both 0; set restore.l1_weight above 0, or restore.warmup to 0"
            )
        return self


class CpuParams(Section):
    """How the stages that write DVC outputs run on a CPU (ganops.cpu, docs/reproducibility.md)."""

    # avx2: kernels capped at AVX2 (the same bits on any x86-64 CPU with AVX2; the committed
    # reference's mode) | native: this CPU's fastest kernels (AVX-512, AMX), bits vary by CPU.
    kernels: Literal["avx2", "native"] = "avx2"
    # Intra-op threads: results depend on the count, so it is fixed; null uses every core (bits
    # then vary by machine).
    threads: int | None = Field(2, ge=1)


class ScheduleParams(Section):
    """When the Prefect deployment retrains (pipelines/flow.py serve)."""

    cron: str = "0 3 * * *"  # nightly at 03:00
    timezone: str = "UTC"

    @field_validator("cron")
    @classmethod
    def _five_fields(cls, cron: str) -> str:
        if len(cron.split()) != 5:
            raise ValueError(f"must be a 5-field cron expression like '0 3 * * *', got {cron!r}")
        return cron


# pydantic warns that the field name ``register`` shadows ``BaseModel.register`` (ABCMeta's
# classmethod, which nothing here uses); the section keeps the stage's name.
warnings.filterwarnings("ignore", message='Field name "register"', category=UserWarning)


GRAY_SOURCES = ("digits", "fashion-mnist", "mnist")  # sources whose images have one channel


class Params(Section):
    seed: int = Field(42, ge=0, lt=2**32)
    # What the GAN learns: generate (noise -> image) or a restoration (image -> image; see restore).
    task: str = "generate"
    data: DataParams = DataParams()
    evaluator: EvaluatorParams = EvaluatorParams()
    model: ModelParams = ModelParams()
    train: TrainParams = TrainParams()
    evaluate: EvaluateParams = EvaluateParams()
    export: ExportParams = ExportParams()
    register: RegisterParams = RegisterParams()
    cpu: CpuParams = CpuParams()
    schedule: ScheduleParams = ScheduleParams()
    restore: RestoreParams = RestoreParams()

    @field_validator("task")
    @classmethod
    def _known_task(cls, name: str) -> str:
        return _one_of(catalog.TASKS.names, name)

    @model_validator(mode="after")
    def _network_fits_task(self) -> Params:
        if (
            self.task not in catalog.IMAGE_TO_IMAGE_TASKS
            and self.model.arch in catalog.IMAGE_TO_IMAGE_ARCHITECTURES
        ):
            samplers = [
                a for a in catalog.ARCHITECTURES.names if a not in catalog.IMAGE_TO_IMAGE_ARCHITECTURES
            ]
            raise ValueError(
                f"model.arch: {self.model.arch} maps images to images, the network of the image-to-image tasks "
                f"(task: {', '.join(catalog.IMAGE_TO_IMAGE_TASKS)}); for task {self.task} use one of {', '.join(samplers)}"
            )
        return self

    @model_validator(mode="after")
    def _colour_to_colorize(self) -> Params:
        gray = self.data.channels == 1 or (self.data.channels is None and self.data.source in GRAY_SOURCES)
        if self.task in catalog.COLOUR_TASKS and gray:
            raise ValueError(
                f"task: {self.task} learns colour from colour images, and data.source {self.data.source} "
                f"{'is converted to' if self.data.channels == 1 else 'has'} one channel; use an RGB source "
                "(data.source=imagefolder with data.root=DIR of colour photos, or cifar10) with data.channels 3 or null"
            )
        return self

    @model_validator(mode="after")
    def _pairs_for_translation(self) -> Params:
        if self.data.pairs not in ("auto", None) and self.task not in catalog.PAIRED_TASKS:
            raise ValueError(
                f"data.pairs: {self.data.pairs} pairs are what task {' or '.join(catalog.PAIRED_TASKS)} "
                f"learns from, not {self.task}; set task accordingly, or data.pairs=auto"
            )
        return self

    @model_validator(mode="after")
    def _kid_fits(self) -> Params:
        smallest = min(self.evaluate.num_samples, self.evaluate.num_real)
        if self.evaluate.kid_subset_size > smallest:
            raise ValueError(
                f"evaluate.kid_subset_size: must be <= num_samples and num_real ({smallest}), "
                f"got {self.evaluate.kid_subset_size}"
            )
        return self


_RULES = {
    "greater_than": "must be > {gt:g}",
    "greater_than_equal": "must be >= {ge:g}",
    "less_than": "must be < {lt:g}",
    "less_than_equal": "must be <= {le:g}",
}


def _valid_keys(loc: tuple) -> list[str]:
    """The keys allowed beside the last part of ``loc`` (a section's fields, or the sections)."""
    model: Any = Params
    for part in loc[:-1]:
        field = model.model_fields.get(str(part)) if isinstance(model, type) else None
        model = field.annotation if field is not None else None
    return list(model.model_fields) if isinstance(model, type) and issubclass(model, BaseModel) else []


def _unknown_key(path: str, loc: tuple) -> str:
    valid = _valid_keys(loc)
    close = difflib.get_close_matches(str(loc[-1]), valid, n=3, cutoff=0.6)
    prefix = ".".join(str(p) for p in loc[:-1])
    spelled = lambda k: f"{prefix}.{k}" if prefix else k  # noqa: E731
    hint = f"did you mean {' or '.join(spelled(k) for k in close)}?" if close else "check its spelling"
    return f"{path}: unknown key; {hint} (valid: {', '.join(valid)})"


def _describe(error: dict[str, Any]) -> str:
    path = ".".join(str(part) for part in error["loc"]) or "<top level>"
    kind = error["type"]
    if kind == "extra_forbidden":
        return _unknown_key(path, error["loc"])
    if kind in _RULES:
        return f"{path}: {_RULES[kind].format(**error['ctx'])}, got {error['input']!r}"
    message = error["msg"].removeprefix("Value error, ")
    if kind == "value_error" or "got" in message:
        return f"{path}: {message}" if path != "<top level>" else message
    return f"{path}: {message[0].lower()}{message[1:]}, got {error['input']!r}"


def parse_params(raw: Any, origin: str = "params") -> Params:
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{origin}: must be a mapping of sections, got {type(raw).__name__}")
    try:
        return Params.model_validate(raw)
    except ValidationError as err:
        lines = [_describe(e) for e in err.errors(include_url=False)]
        raise ConfigError(f"{origin}: " + "; ".join(lines)) from None


def load_params(path: str | Path = DEFAULT_PARAMS) -> Params:
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"{path}: not found; run from the project root or pass --params PATH")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML ({err}); fix the syntax") from None
    try:
        return parse_params(raw, origin=str(path))
    except ConfigError as err:
        # `dvc exp run -S` writes its value into the file before any stage runs, and leaves it there.
        raise ConfigError(
            f"{err}. Nothing was run or deleted; if `dvc exp run -S` wrote the bad value, "
            f"`git checkout {path.name}` puts the committed file back"
        ) from None
