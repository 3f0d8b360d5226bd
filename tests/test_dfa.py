"""Tests of helpers.dfa: the PyTorch DFA/FA rules against the NumPy formulas, in
float64.
"""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import helpers
from helpers import dfa


def mlp(sizes, act=nn.Tanh, seed=0, dtype=torch.float64):
    torch.manual_seed(seed)
    layers = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(act())
    return nn.Sequential(*layers).to(dtype)


def batch(n=7, d=5, c=3, seed=1, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(n, d, generator=g, dtype=dtype)
    y = torch.randint(0, c, (n,), generator=g)
    return X, y


def numpy_params(model):
    lins = [m for m in model if isinstance(m, nn.Linear)]
    return [m.weight.detach().numpy() for m in lins], [
        m.bias.detach().numpy() for m in lins
    ]


def rule_grads(rule, X, y):
    model = rule.model
    model.zero_grad(set_to_none=True)
    loss, out = rule(model, X, y)
    lins = [m for m in model if isinstance(m, nn.Linear)]
    return (
        [m.weight.grad.numpy().copy() for m in lins],
        [m.bias.grad.numpy().copy() for m in lins],
        loss,
        out,
    )


# --------------------------------------------------------------------------- loss
def test_bce_sigmoid_loss_value_and_gradient():
    logits = torch.tensor(
        [[0.3, -1.2, 2.0], [0.0, 0.5, -0.7]], dtype=torch.float64, requires_grad=True
    )
    y = torch.tensor([2, 0])
    p = torch.sigmoid(logits.detach())
    onehot = F.one_hot(y, 3).double()
    expected = -(onehot * p.log() + (1 - onehot) * (1 - p).log()).sum(1)
    loss = dfa.bce_sigmoid_loss(logits, y)
    assert torch.allclose(loss, expected.mean())
    assert torch.allclose(
        dfa.bce_sigmoid_loss(logits, y, reduction="sum"), expected.sum()
    )
    loss.backward()
    # the output error e, averaged over N=2
    assert torch.allclose(logits.grad, (p - onehot) / 2)
    with pytest.raises(ValueError, match="reduction"):
        dfa.bce_sigmoid_loss(logits, y, reduction="max")


# ------------------------------------------------------------------ DFA == hand formula
@pytest.mark.parametrize(
    "act, np_act", [(nn.Tanh, "tanh"), (nn.Sigmoid, "sigmoid"), (nn.ReLU, "relu")]
)
@pytest.mark.parametrize("sizes", [(5, 4, 3), (5, 6, 4, 7, 3)])
def test_torch_dfa_equals_numpy_formula(act, np_act, sizes):
    model = mlp(sizes, act, seed=3)
    rule = dfa.DirectFeedbackAlignment(
        model, generator=torch.Generator().manual_seed(4)
    )
    X, y = batch(n=9, d=sizes[0], c=sizes[-1])
    dW, db, loss, out = rule_grads(rule, X, y)
    Ws, bs = numpy_params(model)
    Bs = [B.numpy() for B in rule.feedback]
    dW_np, db_np = dfa.numpy_dfa_grads(Ws, bs, Bs, X.numpy(), y.numpy(), act=np_act)
    for l, (a, b) in enumerate(zip(dW, dW_np)):
        assert np.abs(a - b).max() < 1e-10, f"layer {l + 1}"
    for a, b in zip(db, db_np):
        assert np.abs(a - b).max() < 1e-10
    # same forward as the model itself, and the same loss
    assert torch.allclose(out, model(X), atol=1e-12, rtol=0)
    assert float(loss.detach()) == pytest.approx(
        float(dfa.bce_sigmoid_loss(model(X), y).detach()), abs=1e-12
    )
    # the hidden layers really get DFA, not backprop, updates
    dW_bp, _ = dfa.numpy_bp_grads(Ws, bs, X.numpy(), y.numpy(), act=np_act)
    assert np.abs(dW[0] - dW_bp[0]).max() > 1e-6
    # the output layer gets its true gradient
    assert np.abs(dW[-1] - dW_bp[-1]).max() < 1e-10


def test_numpy_bp_formula_equals_autograd():
    model = mlp((6, 5, 4, 3), nn.Tanh, seed=5)
    X, y = batch(n=8, d=6, c=3)
    model.zero_grad()
    dfa.bce_sigmoid_loss(model(X), y).backward()
    Ws, bs = numpy_params(model)
    dW_np, db_np = dfa.numpy_bp_grads(Ws, bs, X.numpy(), y.numpy())
    lins = [m for m in model if isinstance(m, nn.Linear)]
    for m, gW, gb in zip(lins, dW_np, db_np):
        assert np.abs(m.weight.grad.numpy() - gW).max() < 1e-12
        assert np.abs(m.bias.grad.numpy() - gb).max() < 1e-12


def test_one_hidden_layer_with_B_equal_to_W_out_transposed_is_backprop():
    model = mlp((5, 6, 3), nn.Tanh, seed=7)
    X, y = batch(n=10, d=5, c=3)
    rule = dfa.DirectFeedbackAlignment(
        model, feedback=[model[2].weight.detach().T.clone()]
    )
    dW, db, _, _ = rule_grads(rule, X, y)
    model.zero_grad()
    dfa.bce_sigmoid_loss(model(X), y).backward()
    for m, gW, gb in zip([model[0], model[2]], dW, db):
        assert np.abs(m.weight.grad.numpy() - gW).max() < 1e-12
        assert np.abs(m.bias.grad.numpy() - gb).max() < 1e-12
    assert dfa.gradient_alignment(rule, X, y) == pytest.approx([0.0, 0.0], abs=1e-5)
    assert dfa.feedback_weight_angle(rule) == pytest.approx([0.0], abs=1e-5)


def test_fa_with_B_equal_to_W_is_backprop_and_differs_otherwise():
    model = mlp((5, 6, 4, 3), nn.Tanh, seed=8)
    X, y = batch(n=10, d=5, c=3)
    lins = [m for m in model if isinstance(m, nn.Linear)]
    same = dfa.FeedbackAlignment(
        model, feedback=[m.weight.detach().clone() for m in lins]
    )
    dW, db, _, _ = rule_grads(same, X, y)
    model.zero_grad()
    dfa.bce_sigmoid_loss(model(X), y).backward()
    bp = [m.weight.grad.numpy().copy() for m in lins]
    for gW_bp, gW in zip(bp, dW):
        assert np.abs(gW_bp - gW).max() < 1e-12
    random = dfa.FeedbackAlignment(model, generator=torch.Generator().manual_seed(0))
    dW_r, _, _, _ = rule_grads(random, X, y)
    assert np.abs(dW_r[-1] - bp[-1]).max() < 1e-12  # output layer: true gradient
    assert np.abs(dW_r[0] - bp[0]).max() > 1e-6
    # hand formula for FA: delta_l = (delta_{l+1} B_{l+1}) * f'(a_l)
    Ws, bs = numpy_params(model)
    A, H, y_hat = dfa.numpy_forward(Ws, bs, X.numpy())
    e = y_hat - np.eye(3)[y.numpy()]
    Bs = [B.numpy() for B in random.feedback]
    d2 = (e @ Bs[2]) * (1 - H[2] ** 2)
    d1 = (d2 @ Bs[1]) * (1 - H[1] ** 2)
    assert np.abs(dW_r[0] - d1.T @ H[0] / len(X)).max() < 1e-10
    assert np.abs(dW_r[1] - d2.T @ H[1] / len(X)).max() < 1e-10


# -------------------------------------------------------- fixed feedback, training loop
def test_feedback_is_fixed_and_training_works_through_fit(fake_mnist_root):
    data = helpers.load_mnist(
        n_train=256, n_test=64, root=fake_mnist_root, flatten=True
    )
    model = nn.Sequential(
        nn.Linear(784, 16), nn.Tanh(), nn.Linear(16, 16), nn.Tanh(), nn.Linear(16, 10)
    )
    dfa.zero_weights_(model)
    rule = dfa.DirectFeedbackAlignment(
        model, generator=torch.Generator().manual_seed(0)
    )
    before = rule.feedback
    assert all(abs(float(B.abs().max())) <= 1 / math.sqrt(16) for B in before)
    n_params = sum(p.numel() for p in model.parameters())
    opt = torch.optim.RMSprop(model.parameters(), lr=1e-3)
    # B is not a parameter
    assert sum(p.numel() for g in opt.param_groups for p in g["params"]) == n_params
    w0 = model[0].weight.detach().clone()
    hist = helpers.fit(model, data, opt, 2, 32, loss_fn=dfa.bce_sigmoid_loss, step=rule)
    assert len(hist["test_acc"]) == 2
    # zero-initialised hidden layers learn under DFA
    assert not torch.equal(model[0].weight.detach(), w0)
    for B0, B1 in zip(before, rule.feedback):
        assert torch.equal(B0, B1)
    b = rule.feedback[0]
    b.zero_()  # the copies handed out do not touch the rule's own matrices
    assert torch.equal(rule.feedback[0], before[0])


def test_flatten_prefix_and_float32():
    model = nn.Sequential(nn.Flatten(), nn.Linear(12, 5), nn.ReLU(), nn.Linear(5, 4))
    rule = dfa.DirectFeedbackAlignment(model, init="normal", scale=0.01)
    X = torch.randn(3, 1, 3, 4)
    loss, out = rule(model, X, torch.tensor([0, 1, 3]))
    assert out.shape == (3, 4) and out.dtype == torch.float32
    assert model[1].weight.grad is not None and model[1].weight.grad.abs().sum() > 0
    assert rule.feedback[0].std() < 0.05


def test_alignment_utilities_on_known_vectors():
    assert dfa.angle_deg([1.0, 0.0], [0.0, 2.0]) == pytest.approx(90.0)
    assert dfa.angle_deg([1.0, 1.0], [3.0, 3.0]) == pytest.approx(0.0, abs=1e-6)
    assert dfa.angle_deg([1.0, 0.0], [-1.0, 0.0]) == pytest.approx(180.0)
    assert dfa.angle_deg([1.0, 0.0], [1.0, 1.0]) == pytest.approx(45.0)
    # flattened
    assert dfa.angle_deg(torch.eye(2), torch.eye(2) * 5) == pytest.approx(0.0, abs=1e-6)
    assert math.isnan(dfa.angle_deg([0.0, 0.0], [1.0, 0.0]))
    with pytest.raises(ValueError, match="elements"):
        dfa.angle_deg([1.0, 0.0], [1.0, 0.0, 0.0])


def test_signal_alignment_matches_gradient_alignment_for_last_hidden_layer():
    model = mlp((5, 6, 4, 3), nn.Tanh, seed=9)
    X, y = batch(n=12, d=5, c=3)
    rule = dfa.DirectFeedbackAlignment(
        model, generator=torch.Generator().manual_seed(1)
    )
    grads = dfa.gradient_alignment(rule, X, y)
    signals = dfa.signal_alignment(rule, X, y)
    assert len(grads) == 3 and len(signals) == 2
    assert grads[-1] == pytest.approx(0.0, abs=1e-5)
    assert all(0 <= a <= 180 for a in grads + signals)
    assert len(dfa.feedback_weight_angle(rule)) == 2
    # gradient_alignment leaves the model's grads alone
    assert all(p.grad is None for p in model.parameters())


def test_feedback_weight_angle_is_nan_for_zero_weights():
    model = dfa.zero_weights_(mlp((5, 6, 3), nn.Tanh))
    rule = dfa.DirectFeedbackAlignment(model)
    assert math.isnan(dfa.feedback_weight_angle(rule)[0])


# --------------------------------------------------------------------------- errors
@pytest.mark.parametrize(
    "model, match",
    [
        (nn.Linear(4, 3), "nn.Sequential"),
        (nn.Sequential(nn.Linear(4, 3), nn.Softmax(dim=1), nn.Linear(3, 2)), "Softmax"),
        (nn.Sequential(nn.Conv2d(1, 2, 3), nn.Flatten(), nn.Linear(8, 2)), "Conv2d"),
        (
            nn.Sequential(nn.Linear(4, 3), nn.BatchNorm1d(3), nn.Linear(3, 2)),
            "BatchNorm1d",
        ),
        (nn.Sequential(nn.Tanh(), nn.Linear(4, 3)), "before the first"),
    ],
)
def test_unsupported_models_raise_type_errors(model, match):
    with pytest.raises(TypeError, match=match):
        dfa.DirectFeedbackAlignment(model)


def test_shape_errors_name_the_problem():
    with pytest.raises(ValueError, match="do not chain"):
        dfa.DirectFeedbackAlignment(
            nn.Sequential(nn.Linear(784, 50), nn.Tanh(), nn.Linear(400, 50))
        )
    with pytest.raises(ValueError, match="logits"):
        dfa.DirectFeedbackAlignment(
            nn.Sequential(nn.Linear(4, 3), nn.Tanh(), nn.Linear(3, 2), nn.Sigmoid())
        )
    model = nn.Sequential(nn.Linear(4, 3), nn.Tanh(), nn.Linear(3, 2))
    with pytest.raises(ValueError, match=r"\(3, 2\)"):
        dfa.DirectFeedbackAlignment(model, feedback=[torch.zeros(2, 3)])
    with pytest.raises(ValueError, match="needs 1 feedback"):
        dfa.DirectFeedbackAlignment(model, feedback=[])
    with pytest.raises(ValueError, match="needs a scale"):
        dfa.DirectFeedbackAlignment(model, init="normal")
    with pytest.raises(ValueError, match="init"):
        dfa.DirectFeedbackAlignment(model, init="orthogonal")
    with pytest.raises(ValueError, match="scale"):
        dfa.DirectFeedbackAlignment(model, scale=-1.0)
    rule = dfa.DirectFeedbackAlignment(model)
    with pytest.raises(ValueError, match="expects"):
        rule(model, torch.randn(2, 5), torch.tensor([0, 1]))
    other = nn.Sequential(nn.Linear(4, 3), nn.Tanh(), nn.Linear(3, 2))
    with pytest.raises(ValueError, match="another model"):
        rule(other, torch.randn(2, 4), torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="weights' shapes"):
        dfa.FeedbackAlignment(model, feedback=[torch.zeros(3, 4)])
    with pytest.raises(ValueError, match="shape"):
        dfa.numpy_dfa_grads(
            [np.zeros((3, 4)), np.zeros((2, 3))],
            [np.zeros(3), np.zeros(2)],
            [np.zeros((2, 2))],
            np.zeros((1, 4)),
            np.array([0]),
        )
