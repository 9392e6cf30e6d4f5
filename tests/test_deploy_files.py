"""The deploy files, checked with the tools that install here: Kubernetes' own schemas for k8s.yaml,
and the rules compose.yaml must keep (no Docker engine or compose plugin runs here)."""

from __future__ import annotations

import re
from pathlib import Path

import kubernetes_validate
import yaml

DEPLOY = Path(__file__).resolve().parents[1] / "deploy"


def test_k8s_manifests_validate_strictly_and_drain_before_shutdown():
    documents = list(yaml.safe_load_all((DEPLOY / "k8s.yaml").read_text()))
    for document in documents:
        kubernetes_validate.validate(document, "1.37.0", strict=True)
    deployment = next(d for d in documents if d["kind"] == "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    drain = container["args"][container["args"].index("--drain-file") + 1]
    assert drain in " ".join(container["lifecycle"]["preStop"]["exec"]["command"])
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert pod["terminationGracePeriodSeconds"] > 20  # the server's --graceful-timeout default


def test_compose_binds_to_loopback_and_takes_credentials_from_the_env_file():
    text = (DEPLOY / "compose.yaml").read_text()
    services = yaml.safe_load(text)["services"]
    for name, service in services.items():
        for port in service.get("ports", []):
            if name not in (
                "serve",
                "restore",
            ):  # the model servers are what the stack is for; the rest stays private
                assert str(port).startswith("127.0.0.1:"), f"{name} publishes {port} on every interface"
    assert "mlflow:5000" in services["mlflow"]["command"]  # --allowed-hosts: MLflow 3 refuses other names
    example = (DEPLOY / "stack.env.example").read_text()
    defined = set(re.findall(r"^([A-Z_0-9]+)=", example, re.M))
    used = set(re.findall(r"\$\$([A-Z_0-9]+)", text))
    assert used <= defined, f"compose uses {used - defined}, which stack.env.example does not define"
    assert "password" not in text.lower().replace("_password", ""), "a literal password in compose.yaml"
