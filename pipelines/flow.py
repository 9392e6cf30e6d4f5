"""The ganops pipeline as a Prefect flow: the same stage functions as `dvc repro`, wired as tasks.

    python pipelines/flow.py            run the pipeline once
    python pipelines/flow.py serve      serve a deployment that retrains on params' schedule.cron

The flow and `dvc repro` share one record of what has been computed: dvc.lock. Before a stage,
the flow asks DVC whether its deps, params and outputs on disk are exactly what dvc.lock recorded;
if so the stage is a cache hit (Prefect's result under the stage's key, or the stage's report read
back from disk when DVC computed it), otherwise it runs and is committed to dvc.lock, so DVC skips
it afterwards too. Each task's cache key is what DVC hashes for the stage (ganops.stagekeys: its
command, the content of its deps and its params keys, read from dvc.yaml), and a cached result is
only used when DVC confirms the outputs, so a workspace that another runner changed since is never
trusted on the key alone. No stage logic lives here.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

# Prefect's temporary API server gets 20 s to start by default, which a loaded 2-core machine
# misses; give it more. Its telemetry prints a long 'database is locked' traceback on some first
# runs; turn it off. (An explicit setting still wins.)
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")

from prefect import flow, get_run_logger, task  # noqa: E402
from prefect.artifacts import create_markdown_artifact  # noqa: E402
from prefect.tasks import exponential_backoff  # noqa: E402

from ganops.errors import TransientRegistryError  # noqa: E402
from ganops.stagekeys import read_stages, stage_key  # noqa: E402
from ganops.stages import STAGES, Layout, run_stage  # noqa: E402

PROJECT = Path(__file__).resolve().parents[1]


def _cache_key(context, parameters: dict) -> str:
    root, params_file = Path(parameters["root"]), Path(parameters["params_file"])
    return stage_key(root, read_stages(root)[parameters["name"]], params_file)


def _transient(task, task_run, state) -> bool:
    """Retry only what may pass on its own: an unreachable or busy registry."""
    try:
        state.result()
    except TransientRegistryError:
        return True
    except Exception:
        return False
    return False


def _up_to_date(name: str, root: Path) -> bool:
    """DVC confirms the stage's inputs and outputs match dvc.lock, and its report is there to read."""
    from ganops import dvcstate

    with dvcstate.locked_repo(root) as repo:
        return not dvcstate.changes(repo, name) and Layout(root).report(name).exists()


@task(cache_key_fn=_cache_key, persist_result=True, task_run_name="{name}")
def stage(name: str, root: str, params_file: str) -> dict:
    from ganops import dvcstate
    from ganops.files import read_json

    project = Path(root)
    with dvcstate.locked_repo(project) as repo:
        if not dvcstate.changes(repo, name) and Layout(project).report(name).exists():
            return read_json(Layout(project).report(name))  # computed by `dvc repro`: read it back
        result = run_stage(name, Path(params_file), project)
        dvcstate.record(repo, name)
        return result


def _report(results: dict[str, dict], cached: dict[str, bool], layout: Layout) -> str:
    from ganops.files import read_json

    metrics, registry = results["evaluate"], results["register"]
    measured = layout.timings("export")  # this machine's ONNX Runtime numbers (not DVC-tracked)
    parity = read_json(measured).get("parity_max_abs_diff") if measured.exists() else None
    rows = [("fid_domain", metrics["fid_domain"]), ("kid_domain", metrics.get("kid_domain"))]
    if "floor" in metrics:  # sampling: what real images score
        rows += [
            ("floor fid_domain", metrics["floor"]["fid_domain"]),
            ("fid_domain / floor", metrics["fid_domain_floor_ratio"]),
        ]
    if "baseline" in metrics:  # restoration: the task's metrics beside the classical method's
        baseline = metrics["baseline"]
        for name in (metrics["primary"]["metric"], "psnr_y", "ssim_y", "fid_domain"):
            rows.append((f"{name}, {baseline['method']} baseline", baseline.get(name)))
    rows.append(("ONNX parity max abs diff", parity))
    table = "\n".join(f"| {name} | {value:.6g} |" for name, value in rows if value is not None)
    stages = ", ".join(f"{name} ({'cached' if hit else 'ran'})" for name, hit in cached.items())
    verdict = "promoted to champion" if registry["promoted"] else "not promoted"
    return (
        f"# ganops pipeline\n\n| metric | value |\n|---|---|\n{table}\n\n"
        f"**Registry:** {registry['model_name']} v{registry['version']} {verdict}: {registry['reason']}  \n"
        f"aliases: {', '.join(registry['aliases']) or 'none'} · tracking: `{registry['tracking_uri']}`\n\n"
        f"**Stages:** {stages}\n"
    )


@flow(name="ganops-pipeline", log_prints=True)
def pipeline(root: str = str(PROJECT), params_file: str = "params.yaml") -> dict:
    from ganops.summary import format_summary

    project = Path(root).resolve()
    params_path = (project / params_file).resolve()
    results, cached = {}, {}
    for name in STAGES:  # validate runs first and stops the flow on bad params, before any output goes
        hit = name != "validate" and _up_to_date(name, project)
        options = {"refresh_cache": not hit, "result_storage": project / ".prefect" / "results"}
        if name == "register":
            options.update(
                retries=3,
                retry_delay_seconds=exponential_backoff(backoff_factor=5),
                retry_condition_fn=_transient,
            )
        state = stage.with_options(**options)(name, str(project), str(params_path), return_state=True)
        results[name], cached[name] = state.result(), hit
    get_run_logger().info(
        format_summary(
            [n for n in STAGES if not cached[n]], [n for n in STAGES if cached[n]], Layout(project)
        )
    )
    create_markdown_artifact(
        markdown=_report(results, cached, Layout(project)),
        key="ganops-pipeline",
        description="metrics and registry decision",
    )
    return {"results": results, "cached": cached}


def deployment(project: Path = PROJECT):
    """The retraining deployment: this flow on params' schedule.cron (nightly by default)."""
    from prefect.schedules import Cron

    from ganops.config import load_params

    schedule = load_params(project / "params.yaml").schedule
    return pipeline.to_deployment(
        name="ganops-retrain",
        schedules=[Cron(schedule.cron, timezone=schedule.timezone)],
        parameters={"root": str(project), "params_file": "params.yaml"},
        tags=["ganops"],
        description="Retrain, evaluate, export and register the generator; champion moves only if better.",
        concurrency_limit=1,  # one retraining at a time on this workspace, as in pipelines/prefect.yaml
    )


def serve() -> None:
    from prefect import serve as serve_deployments

    serve_deployments(deployment())


if __name__ == "__main__":
    if sys.argv[1:] == ["serve"]:
        serve()
    elif sys.argv[1:]:
        sys.exit("usage: python pipelines/flow.py [serve]")
    else:
        pipeline()
