"""The train stage's own data-parallel workers: ``train.processes`` above one starts them here.

PyTorch's elastic launcher (what ``torchrun`` runs) starts N copies of ``ganops train`` on this
node, each told its rank by its environment (training.distributed), and waits for them. DVC and
the Prefect flow see one stage that succeeds or fails, so a data-parallel run is recorded in
``dvc.lock`` like any other, and a failed worker fails the stage with its rank and its error. The
stage's lock stays with this process, which holds it for its workers. The workers publish the
outputs only when every step is done and keep their checkpoints, so a failed run writes no output
and the next run resumes. (DVC itself sets a stage's last outputs aside in its cache before it
runs the stage; they are not marked ``persist``, which would cost the train stage DVC's run cache.)

Several nodes run the same stage, one launcher per node, told the rendezvous by the environment
under the names torchrun reads (and Kubeflow's PyTorchJob sets): PET_NNODES (the node count),
PET_NODE_RANK (this node's, 0 to PET_NNODES - 1), PET_MASTER_ADDR and PET_MASTER_PORT (node 0's
address and a free port on it). Node 0 holds global rank 0, which writes every output, so it is
the node that runs `dvc repro` or the Prefect flow; the others run `ganops train`. Without them
the launcher runs one node on a free local port.
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import yaml

from ganops.config import Params, TrainParams
from ganops.errors import ConfigError, TrainingError
from ganops.locks import HELD_BY_LAUNCHER

log = logging.getLogger(__name__)


def is_worker() -> bool:
    """Whether this process is one of a launcher's workers (ours or torchrun's by hand)."""
    return "WORLD_SIZE" in os.environ


def nodes() -> int:
    return int(os.environ.get("PET_NNODES", "1"))


def node_rank() -> int:
    return int(os.environ.get("PET_NODE_RANK", "0"))


def processes(train: TrainParams) -> int:
    """The workers to start on this node: ``train.processes``, where auto is one per visible GPU."""
    import torch

    gpus = torch.cuda.device_count() if train.device != "cpu" else 0
    if train.processes == "auto":
        return max(1, gpus)
    if gpus and train.processes > gpus:
        raise ConfigError(
            f"train.processes: {train.processes} processes on {gpus} visible GPUs; each process trains on "
            f"its own GPU, so use at most {gpus} (or auto)"
        )
    return train.processes


def run_workers(count: int, params: Params, root: Path) -> None:
    """Train ``params`` with ``count`` workers on this node (and those of the other nodes, if any);
    returns when all have finished, or raises TrainingError naming the first that failed and why."""
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.launcher.api import elastic_launch
    from torch.distributed.run import config_from_args, parse_args

    log.info("train: launching %d processes on this node (%d node(s))", count, nodes())
    try:
        with _workers_environment(root), tempfile.TemporaryDirectory(prefix="ganops-train-") as folder:
            # The workers read the params this process validated, whatever params.yaml says meanwhile.
            params_file = Path(folder) / "params.yaml"
            params_file.write_text(yaml.safe_dump(params.model_dump(), sort_keys=False))
            arguments = [
                f"--nproc-per-node={count}",
                *(["--standalone"] if nodes() == 1 else _static_rendezvous()),
                "--max-restarts=0",  # a failed worker fails the stage: the next run resumes
                "-m",
                "ganops",
                "train",
                f"--params={params_file}",
            ]
            config, command, command_args = config_from_args(_standalone(parse_args(arguments)))
            elastic_launch(config=config, entrypoint=command)(*command_args)
    except ChildFailedError as failed:
        rank, failure = failed.get_first_failure()
        raise TrainingError(
            f"train: worker rank {rank} of {count * nodes()} failed: {_cause(failure)}. No output was written "
            "(DVC keeps the last ones in its cache: `dvc checkout train` restores them), and the run's "
            "checkpoints are kept: running the stage again resumes from the last one"
        ) from None


def _cause(failure) -> str:
    """A worker's error as it said it (clitools.user_errors writes it for the launcher), or its end."""
    if failure.exitcode < 0:
        return f"killed by {failure.signal_name()}"
    if failure.error_file_data:
        return str(failure.message)
    return f"exit code {failure.exitcode} (its log above says why)"


def _static_rendezvous() -> list[str]:
    """Several nodes meet at node 0 with fixed node ranks (torchrun's static rendezvous, which reads
    them from the environment), so global rank 0, the writer, is on the node that runs DVC."""
    missing = [
        name for name in ("PET_NODE_RANK", "PET_MASTER_ADDR", "PET_MASTER_PORT") if name not in os.environ
    ]
    if missing:
        raise ConfigError(
            f"PET_NNODES={nodes()} asks for several nodes, but {', '.join(missing)} is not set; set PET_NODE_RANK "
            "(0 on the node that runs dvc repro), PET_MASTER_ADDR and PET_MASTER_PORT (node 0's address and a "
            "free port) on every node (docs/speed.md), or unset PET_NNODES"
        )
    # The other nodes may start while node 0 still runs the stages before train: wait up to an hour.
    return ["--rdzv-backend=static", *([] if "PET_RDZV_CONF" in os.environ else ["--rdzv-conf=timeout=3600"])]


def _standalone(args):
    """torchrun's --standalone, which its parser leaves to its main(): c10d on a free local port."""
    if args.standalone:
        import uuid

        args.rdzv_backend, args.rdzv_endpoint, args.rdzv_id = "c10d", "localhost:0", str(uuid.uuid4())
    return args


@contextlib.contextmanager
def _workers_environment(root: Path) -> Iterator[None]:
    """Workers start in the project's folder, knowing that this process holds the stage's lock."""
    before = os.environ.get(HELD_BY_LAUNCHER)
    os.environ[HELD_BY_LAUNCHER] = str(os.getpid())
    try:
        with contextlib.chdir(root):  # the Prefect flow may run from another folder
            yield
    finally:
        if before is None:
            del os.environ[HELD_BY_LAUNCHER]
        else:
            os.environ[HELD_BY_LAUNCHER] = before
