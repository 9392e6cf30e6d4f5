import re
import subprocess
import sys

from ganops.config import parse_params
from ganops.stages import STAGES, Layout
from ganops.stages.prepare import run as prepare

from conftest import tiny_params, write_params


def ganops(*args, cwd):
    return subprocess.run(
        [sys.executable, "-m", "ganops", *args], cwd=cwd, capture_output=True, text=True, timeout=300
    )


def test_bad_params_fail_with_one_line_and_keep_outputs(tiny_idx, tmp_path):
    prepare(parse_params(tiny_params(tiny_idx)), Layout(tmp_path))
    manifest = (tmp_path / "data/prepared/manifest.json").read_bytes()
    params = tiny_params(tiny_idx)
    params["data"]["image_size"] = "big"
    write_params(tmp_path / "params.yaml", params)

    result = ganops("prepare", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "error: params.yaml: data.image_size: input should be a valid integer, unable to parse string as an integer, got 'big'."
        " Nothing was run or deleted; if `dvc exp run -S` wrote the bad value, `git checkout params.yaml` puts the"
        " committed file back"
    ]
    assert (tmp_path / "data/prepared/manifest.json").read_bytes() == manifest


def test_stage_without_its_inputs_says_which_stage_to_run(tmp_path):
    write_params(tmp_path / "params.yaml", {})
    result = ganops("evaluate", cwd=tmp_path)
    assert result.returncode == 2
    assert "models/generator.pt: not found; run the train stage first" in result.stderr


def listed_commands(help_text: str) -> list[str]:
    """The command names --help lists, whole words in their own column: rich's panel (`│ name  doc`)
    or click's plain list (`  name  doc`); wrapped lines of a description start with spaces."""
    commands = help_text.split("Commands", 1)[1]
    return re.findall(r"^(?:│ | {2})([a-z][\w-]*)(?: {2,}|\s*$)", commands, flags=re.MULTILINE)


def test_help_lists_every_stage(tmp_path):
    result = ganops("--help", cwd=tmp_path)
    assert result.returncode == 0
    listed = listed_commands(result.stdout)
    assert [name for name in listed if name in STAGES] == list(STAGES)  # each stage once, in pipeline order


def test_help_does_not_import_heavy_libraries(tmp_path):
    probe = "import sys; from ganops.cli import app; print(sorted({'torch', 'mlflow', 'prefect', 'onnxruntime'} & set(sys.modules)))"
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert result.stdout.strip() == "[]"


def test_each_preset_prints_a_dvc_exp_run_whose_params_validate(tmp_path):
    import shlex
    from pathlib import Path

    import yaml

    from ganops.presets import PRESETS

    listed = ganops("preset", cwd=tmp_path)
    assert listed.returncode == 0 and [line.split(":")[0] for line in listed.stdout.splitlines()] == list(
        PRESETS
    )
    repository_params = yaml.safe_load((Path(__file__).parents[1] / "params.yaml").read_text())
    for name in PRESETS:
        printed = ganops("preset", name, "--root", "/my photos", cwd=tmp_path)
        assert printed.returncode == 0, printed.stderr
        command = shlex.split(printed.stdout)
        assert command[:5] == ["dvc", "exp", "run", "-n", name] and command[5::2] == ["-S"] * len(
            command[5::2]
        )
        raw = yaml.safe_load(yaml.safe_dump(repository_params))  # a copy, as `dvc exp run -S` edits the file
        for assignment in command[6::2]:
            dotted, _, value = assignment.partition("=")
            *sections, key = dotted.split(".")
            place = raw
            for section in sections:
                place = place[section]
            assert key in place, f"{name}: {dotted} is not a key of params.yaml"
            place[key] = yaml.safe_load(value)
        params = parse_params(raw)
        assert params.data.root == "/my photos" and params.task in name
    unknown = ganops("preset", "photos-nothing", cwd=tmp_path)
    assert unknown.returncode != 0 and "the presets are: photos-" in unknown.stderr
