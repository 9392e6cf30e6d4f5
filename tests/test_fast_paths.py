"""Training fast paths: torch.compile falls back to eager with one notice; fused Adam matches for-loop Adam."""

from __future__ import annotations

import logging

import torch

from ganops.training import fast


def test_a_failing_compile_falls_back_to_eager_with_one_notice(monkeypatch, caplog):
    def broken_compile(module):
        def run(*args, **kwargs):
            raise RuntimeError("no C++ compiler\nlong traceback")

        return run

    monkeypatch.setattr(torch, "compile", broken_compile)
    model = torch.nn.Linear(3, 2)
    wrapped = fast.compiled(model, "on", torch.device("cpu"))
    x = torch.randn(4, 3)
    with caplog.at_level(logging.WARNING, logger="ganops.training.fast"):
        outputs = [wrapped(x) for _ in range(3)]
    assert all(torch.equal(out, model(x)) for out in outputs)
    notices = [r.getMessage() for r in caplog.records]
    assert (
        len(notices) == 1
        and "RuntimeError: no C++ compiler" in notices[0]
        and "long traceback" not in notices[0]
    )


def test_compile_auto_is_on_for_cuda_only():
    model = torch.nn.Linear(3, 2)
    assert fast.compiled(model, "auto", torch.device("cpu")) is model
    assert fast.compiled(model, "off", torch.device("cuda")) is model
    assert fast.wants_compile("auto", torch.device("cuda")) and fast.wants_compile("on", torch.device("cpu"))


def test_fused_adam_takes_the_steps_of_for_loop_adam():
    torch.manual_seed(0)
    a, b = torch.nn.Linear(8, 4), torch.nn.Linear(8, 4)
    b.load_state_dict(a.state_dict())
    opt_a = fast.adam(a.parameters(), 1e-2, (0.5, 0.999), torch.device("cpu"))
    opt_b = torch.optim.Adam(b.parameters(), lr=1e-2, betas=(0.5, 0.999))
    assert opt_a.defaults["fused"] is True
    for _ in range(5):
        x = torch.randn(16, 8)
        for model, opt in ((a, opt_a), (b, opt_b)):
            opt.zero_grad()
            model(x).square().mean().backward()
            opt.step()
    for p, q in zip(a.parameters(), b.parameters(), strict=True):
        torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6)


def test_a_frozen_module_passes_gradients_through_without_computing_its_own():
    torch.manual_seed(0)
    D = torch.nn.Sequential(torch.nn.Linear(8, 8), torch.nn.LeakyReLU(0.2), torch.nn.Linear(8, 1))
    D[0].bias.requires_grad_(False)  # a parameter frozen on purpose stays frozen afterwards
    x = torch.randn(4, 8, requires_grad=True)
    expected = torch.autograd.grad(D(x).sum(), x)[0]
    with fast.frozen(D):
        out = D(x).sum()
    out.backward()
    assert torch.equal(x.grad, expected)
    assert all(p.grad is None for p in D.parameters())
    assert [p.requires_grad for p in D.parameters()] == [True, False, True, True]
    with fast.frozen(D, enabled=False):
        D(x).sum().backward()
    assert D[0].weight.grad is not None
