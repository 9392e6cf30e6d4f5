from pathlib import Path

import pytest

from ganops.config import load_params, parse_params
from ganops.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]


def error_of(raw: dict) -> str:
    with pytest.raises(ConfigError) as err:
        parse_params(raw)
    return str(err.value)


def test_repository_params_file_is_valid():
    params = load_params(REPO / "params.yaml")
    assert params.data.source == "fashion-mnist"
    assert params.model.arch == "dcgan"


def test_out_of_range_value_names_key_path_and_rule():
    assert "train.lr: must be > 0, got -1" in error_of({"train": {"lr": -1}})


def test_unknown_key_is_rejected_with_its_path():
    message = error_of({"train": {"learning_rate": 0.1}})
    assert "train.learning_rate: unknown key" in message


def test_unknown_section_is_rejected():
    assert "trian: unknown key" in error_of({"trian": {}})


def test_unknown_keys_are_answered_with_the_closest_valid_names():
    assert "train.lrr: unknown key; did you mean train.lr?" in error_of({"train": {"lrr": 1e-3}})
    assert "trian: unknown key; did you mean train?" in error_of({"trian": {}})
    message = error_of({"data": {"zzz": 1}})
    assert "check its spelling (valid: source, root, image_size" in message


def test_a_bad_params_file_says_how_to_put_it_back(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text("train:\n  epochs: two\n")
    with pytest.raises(ConfigError, match=r"train.epochs: .* `git checkout params.yaml` puts the committed"):
        load_params(path)


def test_wrong_type_names_key_and_value():
    message = error_of({"train": {"epochs": "many"}})
    assert message.startswith("params: train.epochs:")
    assert "'many'" in message


def test_unknown_architecture_lists_valid_names():
    message = error_of({"model": {"arch": "stylegan9"}})
    assert "model.arch" in message and "dcgan" in message and "mlp" in message


def test_unknown_loss_lists_valid_names():
    message = error_of({"train": {"loss": "magic"}})
    assert "train.loss" in message and "hinge" in message and "non_saturating" in message


def test_every_problem_is_reported_at_once():
    message = error_of({"train": {"lr": 0, "epochs": 0}})
    assert "train.lr" in message and "train.epochs" in message


def test_kid_subset_larger_than_sample_count_is_rejected():
    message = error_of({"evaluate": {"num_samples": 100, "kid_subset_size": 500}})
    assert "evaluate.kid_subset_size" in message


def test_missing_file_says_how_to_fix(tmp_path):
    with pytest.raises(ConfigError, match="not found; run from the project root or pass --params"):
        load_params(tmp_path / "params.yaml")


def test_invalid_yaml_is_reported(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text("train: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_params(path)


def test_device_must_be_known():
    assert "train.device" in error_of({"train": {"device": "tpu"}})


def test_repository_params_file_spells_out_every_key():
    """`dvc exp run -S section.key=value` can only set keys that params.yaml lists."""
    import yaml

    def keys(tree, prefix=""):
        for key, value in tree.items():
            yield from keys(value, f"{prefix}{key}.") if isinstance(value, dict) else [f"{prefix}{key}"]

    written = set(keys(yaml.safe_load((REPO / "params.yaml").read_text())))
    assert set(keys(load_params(REPO / "params.yaml").model_dump())) - written == set()


def test_the_catalog_lists_exactly_the_registered_names_and_traits():
    from ganops import catalog
    from ganops.data.sources import SOURCES
    from ganops.losses import LOSSES
    from ganops.metrics import METRICS
    from ganops.models import ARCHITECTURES, conditional_architectures

    for kind, registry in (
        (catalog.SOURCES, SOURCES),
        (catalog.ARCHITECTURES, ARCHITECTURES),
        (catalog.LOSSES, LOSSES),
        (catalog.METRICS, METRICS),
    ):
        assert registry.names() == sorted(kind.names), kind.label
    assert conditional_architectures() == sorted(catalog.CONDITIONAL_ARCHITECTURES)
    assert sorted(n for n in LOSSES.names() if LOSSES.get(n).smoothable) == sorted(catalog.SMOOTHABLE_LOSSES)


def test_a_registry_refuses_a_name_the_catalog_does_not_declare():
    from ganops.losses import LOSSES

    with pytest.raises(ValueError, match="not declared in ganops.catalog"):
        LOSSES.register("my_new_loss")


def test_validate_checks_every_name_without_importing_torch(tmp_path):
    """validate runs on every `dvc repro`; torch's import alone costs more than the rest of it."""
    import shutil
    import subprocess
    import sys

    code = (
        "import sys; from ganops.stages import run_stage; run_stage('validate', 'params.yaml'); "
        "assert 'torch' not in sys.modules, 'validate imported torch'"
    )
    shutil.copy(Path(__file__).resolve().parents[1] / "params.yaml", tmp_path / "params.yaml")
    subprocess.run([sys.executable, "-c", code], cwd=tmp_path, check=True, timeout=60)
