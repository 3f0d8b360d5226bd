"""helpers.numpy_nn: every layer, loss and optimizer step against PyTorch (float64),
finite-difference gradient checks, the tape, BatchNorm's two modes, and the error
messages for bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from helpers import numpy_nn as nn

TRIALS = 5
RTOL = 1e-8


def rel_err(a, b) -> float:
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-300))


def t(a, grad=False) -> torch.Tensor:
    return torch.tensor(np.asarray(a), dtype=torch.float64, requires_grad=grad)


def random_shape(rng, low=2, high=9):
    return int(rng.integers(low, high)), int(rng.integers(low, high))


def tape_grads(layer, inputs, upstream):
    """Output of ``layer(*inputs)`` and the gradients of ``sum(output * upstream)``
    w.r.t. the inputs and the layer's trainable variables, through the tape."""
    with nn.GradientTape() as tape:
        out = layer(*inputs)
        # d/d(out) = 2/size * upstream
        loss = nn.MeanSquaredError()(out, out - upstream)
    variables = layer.trainable_variables
    grads = tape.gradient(loss, [*inputs, *variables])
    scale = out.size / 2.0
    return out, [None if g is None else g * scale for g in grads]


# -------------------------------------------------------------------------- activations
ACTIVATIONS = [
    (nn.ReLU, lambda: torch.nn.ReLU()),
    (lambda: nn.LeakyReLU(0.2), lambda: torch.nn.LeakyReLU(0.2)),
    (lambda: nn.LeakyReLU(0.0), lambda: torch.nn.LeakyReLU(0.0)),
    (nn.Sigmoid, lambda: torch.nn.Sigmoid()),
    (nn.Tanh, lambda: torch.nn.Tanh()),
    (nn.Softmax, lambda: torch.nn.Softmax(dim=1)),
]


@pytest.mark.parametrize(
    "ours, theirs",
    ACTIVATIONS,
    ids=["relu", "leaky0.2", "leaky0", "sigmoid", "tanh", "softmax"],
)
def test_activation_forward_and_backward_match_torch(ours, theirs):
    rng = np.random.default_rng(1)
    for _ in range(TRIALS):
        shape = random_shape(rng)
        x = rng.normal(0, 3, shape)
        g = rng.normal(size=shape)
        out, (gx,) = tape_grads(ours(), [x], g)
        xt = t(x, grad=True)
        yt = theirs()(xt)
        yt.backward(t(g))
        assert rel_err(out, yt.detach()) <= RTOL
        assert rel_err(gx, xt.grad) <= RTOL


def test_sigmoid_does_not_overflow():
    y, _ = nn.Sigmoid().forward(np.array([[-1000.0, 0.0, 1000.0]]))
    assert np.isfinite(y).all() and np.allclose(y, [[0.0, 0.5, 1.0]])


def test_leaky_relu_is_elementwise_on_mixed_signs():
    """The source tested ``inputs.all()``: one negative entry switched the whole
    array.
    """
    x = np.array([[1.0, -2.0], [3.0, 4.0]])
    y, _ = nn.LeakyReLU(0.1).forward(x)
    np.testing.assert_allclose(y, [[1.0, -0.2], [3.0, 4.0]])


def test_softmax_normalises_each_row():
    """The source divided by the sum over the whole batch."""
    z = np.random.default_rng(0).normal(size=(5, 4))
    s, _ = nn.Softmax().forward(z)
    np.testing.assert_allclose(s.sum(axis=1), np.ones(5), rtol=1e-12)
    s_big, _ = nn.Softmax().forward(z + 1000.0)  # shift invariant and no overflow
    np.testing.assert_allclose(s_big, s, rtol=1e-12)


# ------------------------------------------------------------------ Dense and BatchNorm
def test_dense_matches_torch_linear():
    rng = np.random.default_rng(2)
    for trial in range(TRIALS):
        n, d_in = random_shape(rng)
        d_out = int(rng.integers(1, 9))
        layer = nn.Dense(d_in, d_out, "normal", rng=trial)
        layer.b.assign(rng.normal(size=d_out))
        x = rng.normal(size=(n, d_in))
        g = rng.normal(size=(n, d_out))
        out, (gx, gW, gb) = tape_grads(layer, [x], g)
        lin = torch.nn.Linear(d_in, d_out).double()
        with torch.no_grad():
            lin.weight.copy_(t(layer.W.value.T))
            lin.bias.copy_(t(layer.b.value))
        xt = t(x, grad=True)
        yt = lin(xt)
        yt.backward(t(g))
        assert rel_err(out, yt.detach()) <= RTOL
        assert rel_err(gx, xt.grad) <= RTOL
        assert rel_err(gW, lin.weight.grad.T) <= RTOL
        assert rel_err(gb, lin.bias.grad) <= RTOL


def test_dense_backward_leaves_weights_unchanged():
    """The source's Dense updated its own weights inside the backward pass."""
    layer = nn.Dense(4, 3, "normal", rng=0)
    before = layer.W.value.copy(), layer.b.value.copy()
    tape_grads(layer, [np.ones((2, 4))], np.ones((2, 3)))
    np.testing.assert_array_equal(layer.W.value, before[0])
    np.testing.assert_array_equal(layer.b.value, before[1])


def _torch_bn(layer: nn.BatchNorm) -> torch.nn.BatchNorm1d:
    bn = torch.nn.BatchNorm1d(
        layer.num_features, momentum=layer.momentum, eps=layer.eps
    ).double()
    with torch.no_grad():
        bn.weight.copy_(t(layer.gamma.value))
        bn.bias.copy_(t(layer.beta.value))
    return bn


def test_batchnorm_training_matches_torch_values_gradients_and_running_stats():
    rng = np.random.default_rng(3)
    for _ in range(TRIALS):
        n, d = random_shape(rng)
        layer = nn.BatchNorm(d)
        layer.gamma.assign(rng.normal(1, 0.3, d))
        layer.beta.assign(rng.normal(0, 0.3, d))
        bn = _torch_bn(layer)
        for _step in range(3):  # running statistics after several batches
            x = rng.normal(2, 3, (n, d))
            g = rng.normal(size=(n, d))
            bn.zero_grad()
            _assert_batchnorm_matches_torch(layer, bn, x, g)
        assert rel_err(layer.running_mean.value, bn.running_mean) <= RTOL
        assert rel_err(layer.running_var.value, bn.running_var) <= RTOL


def _assert_batchnorm_matches_torch(layer, bn, x, g):
    """Output and the gradients of input, gamma and beta of ``layer`` equal those of
    torch's ``bn``; returns the layer's output."""
    out, (gx, ggamma, gbeta) = tape_grads(layer, [x], g)
    xt = t(x, grad=True)
    yt = bn(xt)
    yt.backward(t(g))
    assert rel_err(out, yt.detach()) <= RTOL
    assert rel_err(gx, xt.grad) <= RTOL
    assert rel_err(ggamma, bn.weight.grad) <= RTOL
    assert rel_err(gbeta, bn.bias.grad) <= RTOL
    return out


def test_batchnorm_eval_uses_running_stats_like_torch():
    rng = np.random.default_rng(4)
    layer = nn.BatchNorm(5)
    bn = _torch_bn(layer)
    for _ in range(4):
        x = rng.normal(1, 2, (8, 5))
        layer(x)
        bn(t(x))
    layer.training = False
    bn.eval()
    x = rng.normal(1, 2, (3, 5))
    g = rng.normal(size=(3, 5))
    means_before = layer.running_mean.value.copy()
    out = _assert_batchnorm_matches_torch(layer, bn, x, g)
    # eval does not update them
    np.testing.assert_array_equal(layer.running_mean.value, means_before)
    # and eval differs from train mode on the same batch (the modes are really
    # different)
    layer.training = True
    assert rel_err(layer(x), out) > 1e-3


def test_batchnorm_on_a_batch_of_one_row_trains_as_keras():
    """Keras's BatchNormalization, training on one row, normalises with that row's mean
    and variance (0): the output is beta, the input gets no gradient, and the moving
    variance moves towards 0."""
    rng = np.random.default_rng(7)
    layer = nn.BatchNorm(4, momentum=0.1)
    layer.gamma.assign(rng.normal(1, 0.3, 4))
    layer.beta.assign(rng.normal(0, 0.3, 4))
    layer.running_mean.assign(rng.normal(size=4))
    layer.running_var.assign(rng.uniform(0.5, 2, 4))
    mean0, var0 = layer.running_mean.value.copy(), layer.running_var.value.copy()
    x = rng.normal(2, 3, (1, 4))
    out, (gx, ggamma, gbeta) = tape_grads(layer, [x], g := rng.normal(size=(1, 4)))
    np.testing.assert_array_equal(out, layer.beta.value[None, :])
    np.testing.assert_array_equal(gx, np.zeros((1, 4)))
    np.testing.assert_array_equal(ggamma, np.zeros(4))
    np.testing.assert_allclose(gbeta, g[0], rtol=1e-12)
    np.testing.assert_allclose(
        layer.running_mean.value, 0.9 * mean0 + 0.1 * x[0], rtol=1e-12
    )
    np.testing.assert_allclose(layer.running_var.value, 0.9 * var0, rtol=1e-12)
    with pytest.raises(ValueError, match="empty batch"):
        layer(np.ones((0, 4)))


def test_fit_with_batchnorm_takes_a_last_batch_of_one_row():
    """15 rows in batches of 7: batches of 7, 7 and 1 in every epoch, as Keras's fit
    makes them.
    """
    X, Y, _ = _blobs()
    X, Y = X[:15], Y[:15]
    model = nn.SequentialModel(
        [
            nn.Dense(4, 8, rng=0),
            nn.BatchNorm(8),
            nn.LeakyReLU(0.0),
            nn.Dense(8, 3, rng=1),
            nn.Softmax(),
        ]
    )
    model.compile(nn.Adam(0.01), nn.CategoricalCrossentropy())
    sizes = []
    bn = model.layers[1]
    forward = bn.forward
    bn.forward = lambda x: (sizes.append(len(x)), forward(x))[1]
    hist = model.fit(X, Y, epochs=2, batch_size=7, rng=0)
    # (the 2 rows are fit's output-width check)
    assert [s for s in sizes if s != 2] == [7, 7, 1, 7, 7, 1]
    assert model.optimizer.iterations == 6
    assert all(np.isfinite(v) for key in ("train_loss", "train_acc") for v in hist[key])
    assert np.isfinite(model.predict(X)).all()


# --------------------------------------------------------------------------- losses
def test_mse_matches_torch():
    rng = np.random.default_rng(5)
    for _ in range(TRIALS):
        shape = random_shape(rng)
        p, y = rng.normal(size=shape), rng.normal(size=shape)
        with nn.GradientTape() as tape:
            loss = nn.MeanSquaredError()(p, y)
        (gp,) = tape.gradient(loss, [p])
        pt = t(p, grad=True)
        lt = torch.nn.functional.mse_loss(pt, t(y))
        lt.backward()
        assert rel_err(loss, lt.detach()) <= RTOL
        assert rel_err(gp, pt.grad) <= RTOL


def _one_hot(rng, n, c):
    return np.eye(c)[rng.integers(0, c, n)]


def test_crossentropy_from_logits_matches_torch():
    rng = np.random.default_rng(6)
    for _ in range(TRIALS):
        n, c = random_shape(rng)
        z, y = rng.normal(0, 5, (n, c)), _one_hot(rng, n, c)
        with nn.GradientTape() as tape:
            loss = nn.CategoricalCrossentropy(from_logits=True)(z, y)
        (gz,) = tape.gradient(loss, [z])
        zt = t(z, grad=True)
        lt = torch.nn.functional.cross_entropy(zt, torch.tensor(y.argmax(1)))
        lt.backward()
        assert rel_err(loss, lt.detach()) <= RTOL
        assert rel_err(gz, zt.grad) <= RTOL


def test_crossentropy_on_softmax_probabilities_matches_torch():
    rng = np.random.default_rng(7)
    for _ in range(TRIALS):
        n, c = random_shape(rng)
        z, y = rng.normal(size=(n, c)), _one_hot(rng, n, c)
        with nn.GradientTape() as tape:
            p = nn.Softmax()(z)
            loss = nn.CategoricalCrossentropy()(p, y)
        gz, gp = tape.gradient(loss, [z, p])
        zt = t(z, grad=True)
        pt = torch.softmax(zt, dim=1)
        pt.retain_grad()
        lt = -(t(y) * torch.log(pt)).sum() / n
        lt.backward()
        assert rel_err(loss, lt.detach()) <= RTOL
        assert rel_err(gp, pt.grad) <= RTOL
        assert rel_err(gz, zt.grad) <= RTOL


def test_fused_crossentropy_survives_extreme_logits():
    z = np.array([[1000.0, -1000.0], [-1000.0, 1000.0]])
    y = np.array([[0.0, 1.0], [0.0, 1.0]])
    loss, _ = nn.CategoricalCrossentropy(from_logits=True).forward(z, y)
    assert np.isfinite(loss) and abs(float(loss) - 1000.0) < 1e-9


# --------------------------------------------------------------------------- optimizers
OPTIMIZERS = [
    (lambda: nn.SGD(0.1), lambda p: torch.optim.SGD(p, lr=0.1)),
    (
        lambda: nn.SGD(0.05, momentum=0.9),
        lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9),
    ),
    (
        lambda: nn.RMSProp(0.01, rho=0.9, eps=1e-7),
        lambda p: torch.optim.RMSprop(p, lr=0.01, alpha=0.9, eps=1e-7),
    ),
    (
        lambda: nn.Adam(0.01),
        lambda p: torch.optim.Adam(p, lr=0.01, betas=(0.9, 0.999), eps=1e-8),
    ),
]


@pytest.mark.parametrize(
    "ours, theirs", OPTIMIZERS, ids=["sgd", "sgd-momentum", "rmsprop", "adam"]
)
def test_optimizer_steps_match_torch_for_every_variable(ours, theirs):
    """Several variables of different shapes, several steps: each variable keeps its own
    state (the source's RMSProp shared one state and threw its update away)."""
    rng = np.random.default_rng(8)
    for _ in range(3):
        shapes = [random_shape(rng), (int(rng.integers(1, 6)),), random_shape(rng)]
        variables = [
            nn.Variable(rng.normal(size=s), f"v{i}") for i, s in enumerate(shapes)
        ]
        params = [torch.nn.Parameter(t(v.value)) for v in variables]
        opt, topt = ours(), theirs(params)
        for _step in range(5):
            grads = [rng.normal(size=s) for s in shapes]
            opt.apply_gradients(zip(grads, variables))
            for p, g in zip(params, grads):
                p.grad = t(g)
            topt.step()
            for v, p in zip(variables, params):
                assert rel_err(v.value, p.detach()) <= RTOL
        assert len(opt.state) == len(variables) or isinstance(opt, nn.SGD)


def test_optimizer_really_changes_the_weights():
    v = nn.Variable(np.ones(3))
    nn.RMSProp(0.1).apply_gradients([(np.array([1.0, -1.0, 0.0]), v)])
    assert v.value[0] < 1 and v.value[1] > 1 and v.value[2] == 1


def test_optimizer_refuses_a_missing_gradient():
    with pytest.raises(ValueError, match="received no gradient"):
        nn.Adam().apply_gradients([(None, nn.Variable(np.ones(2), "w"))])


@pytest.mark.parametrize("lr", [0, -1, float("nan"), "0.1"])
def test_optimizer_rejects_bad_learning_rates(lr):
    with pytest.raises(ValueError, match="learning_rate"):
        nn.SGD(lr)


# ---------------------------------------------------------------------- gradient checks
def _small_net(rng, activation):
    return [
        nn.Dense(5, 6, "xavier", rng=rng),
        nn.BatchNorm(6),
        activation,
        nn.Dense(6, 4, "xavier", rng=rng),
    ]


@pytest.mark.parametrize(
    "activation",
    [nn.Tanh(), nn.Sigmoid(), nn.LeakyReLU(0.1)],
    ids=["tanh", "sigmoid", "leaky"],
)
def test_finite_difference_gradients(activation):
    """Central differences of the whole loss
    (Dense-BatchNorm-activation-Dense-softmax-CE) against the tape's gradients, for
    every trainable variable and for the input."""
    rng = np.random.default_rng(9)
    layers = _small_net(rng, activation)
    x = rng.normal(size=(7, 5))
    y = _one_hot(rng, 7, 4)
    loss_fn = nn.CategoricalCrossentropy(from_logits=True)

    def loss_value():
        h = x
        for layer in layers:
            h = layer.forward(h)[0]
        return float(loss_fn.forward(h, y)[0])

    with nn.GradientTape() as tape:
        h = x
        for layer in layers:
            h = layer(h)
        loss = loss_fn(h, y)
    variables = [v for layer in layers for v in layer.trainable_variables]
    grads = tape.gradient(loss, [x, *variables])
    for arr, g in zip([x, *[v.value for v in variables]], grads):
        numeric = np.zeros_like(arr)
        for i in np.ndindex(arr.shape):
            old = arr[i]
            arr[i] = old + 1e-6
            up = loss_value()
            arr[i] = old - 1e-6
            down = loss_value()
            arr[i] = old
            numeric[i] = (up - down) / 2e-6
        assert np.max(np.abs(g - numeric)) <= 1e-7 * max(
            1.0, np.max(np.abs(numeric))
        ), "gradient check failed"


# --------------------------------------------------------------------------- the tape
def test_tape_sums_the_gradients_of_a_reused_tensor():
    """h feeds two layers and an Add: its gradient is the sum over both paths (checked
    with torch).
    """
    rng = np.random.default_rng(10)
    d1, d2 = nn.Dense(3, 4, "normal", rng=0), nn.Dense(4, 4, "normal", rng=1)
    x = rng.normal(size=(5, 3))
    y = _one_hot(rng, 5, 4)
    with nn.GradientTape() as tape:
        h = d1(x)
        s = nn.Add()(d2(h), nn.Tanh()(h))  # h used twice
        loss = nn.CategoricalCrossentropy(from_logits=True)(s, y)
    gx, gh, gW1 = tape.gradient(loss, [x, h, d1.W])
    W1, b1, W2, b2 = (
        t(v, grad=True) for v in (d1.W.value, d1.b.value, d2.W.value, d2.b.value)
    )
    xt = t(x, grad=True)
    ht = xt @ W1 + b1
    ht.retain_grad()
    st = ht @ W2 + b2 + torch.tanh(ht)
    torch.nn.functional.cross_entropy(st, torch.tensor(y.argmax(1))).backward()
    assert rel_err(gh, ht.grad) <= RTOL
    assert rel_err(gx, xt.grad) <= RTOL
    assert rel_err(gW1, W1.grad) <= RTOL
    # one path alone is not enough: the sum differs from each term
    one_path = (1 - np.tanh(h) ** 2) * gh
    assert rel_err(one_path, gh) > 1e-3


def test_tape_accumulates_a_layer_called_twice():
    d = nn.Dense(3, 3, "normal", rng=0)
    x = np.random.default_rng(11).normal(size=(2, 3))
    with nn.GradientTape() as tape:
        out = d(d(x))
        loss = nn.MeanSquaredError()(out, np.zeros_like(out))
    (gW,) = tape.gradient(loss, [d.W])
    W, b = t(d.W.value, grad=True), t(d.b.value, grad=True)
    xt = t(x)
    (((xt @ W + b) @ W + b) ** 2).mean().backward()
    assert rel_err(gW, W.grad) <= RTOL


def test_tape_returns_a_gradient_for_every_variable():
    """The source's GradientTape.gradient returned nothing."""
    model = nn.SequentialModel(
        [nn.Dense(4, 3, rng=0), nn.ReLU(), nn.Dense(3, 2, rng=1)]
    )
    with nn.GradientTape() as tape:
        loss = nn.MeanSquaredError()(model.call(np.ones((2, 4))), np.zeros((2, 2)))
    grads = tape.gradient(loss, model.trainable_variables)
    assert len(grads) == 4 and all(
        g is not None and g.shape == v.shape
        for g, v in zip(grads, model.trainable_variables)
    )


def test_tape_errors():
    x = np.ones((2, 3))
    with nn.GradientTape() as tape:
        out = nn.Dense(3, 2, rng=0)(x)
    with pytest.raises(ValueError, match="must be a scalar"):
        tape.gradient(out, [x])
    with pytest.raises(ValueError, match="inside the `with GradientTape"):
        tape.gradient(np.float64(1.0), [x])
    with nn.GradientTape() as tape:
        loss = nn.MeanSquaredError()(nn.Dense(3, 2, rng=0)(x), np.zeros((2, 2)))
    tape.gradient(loss, [x])
    with pytest.raises(RuntimeError, match="persistent=True"):
        tape.gradient(loss, [x])


# ------------------------------------------------------------------------- initializers
def test_initializer_scales_use_the_right_fans():
    """Glorot: 2/(fan_in+fan_out); He: 2/fan_in (the source scaled by the output
    size).
    """
    fan_in, fan_out = 784, 40
    he = nn.initial_weights(fan_in, fan_out, "kaiming", rng=0)
    glorot = nn.initial_weights(fan_in, fan_out, "xavier", rng=0)
    normal = nn.initial_weights(fan_in, fan_out, "normal", rng=0)
    assert he.shape == (fan_in, fan_out)
    assert abs(he.std() / np.sqrt(2 / fan_in) - 1) < 0.03
    assert abs(glorot.std() / np.sqrt(2 / (fan_in + fan_out)) - 1) < 0.03
    assert abs(normal.std() / 0.05 - 1) < 0.03
    # truncated at 2 sigma
    assert np.abs(he).max() <= 2 * np.sqrt(2 / fan_in) / 0.87962566103423978 + 1e-12
    assert not nn.initial_weights(3, 4, "zero").any()
    with pytest.raises(ValueError, match="allowed"):
        nn.initial_weights(3, 4, "he_uniform")


# --------------------------------------------------------------- encoder, metric, model
def test_one_hot_encoder_round_trip_and_unknown_labels():
    enc = nn.OneHotEncoder().fit(np.arange(10))
    labels = np.array([3, 0, 9])
    rows = enc(labels)
    assert rows.shape == (3, 10) and rows.sum() == 3 and rows[0, 3] == 1
    np.testing.assert_array_equal(enc.inverse(rows), labels)
    with pytest.raises(ValueError, match=r"labels \[10\] are not among the classes"):
        enc(np.array([1, 10]))
    with pytest.raises(ValueError, match=r"labels \[-1\] are not among the classes"):
        enc(np.array([-1, 2]))


def test_categorical_accuracy():
    acc = nn.CategoricalAccuracy()
    y = np.eye(3)[[0, 1, 2, 2]]
    p = np.array([[0.9, 0.1, 0], [0.2, 0.7, 0.1], [0.5, 0.4, 0.1], [0, 0.1, 0.9]])
    assert acc(p, y) == 0.75


def _blobs(n=300, seed=0, dtype=np.float64):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 3, n)
    centres = np.array([[2.0, 0, 0, 0], [0, 2.0, 0, 0], [0, 0, 2.0, 0]])
    X = (centres[labels] + rng.normal(0, 0.5, (n, 4))).astype(dtype)
    return X, nn.OneHotEncoder(dtype).fit(labels)(labels), labels


def test_sequential_model_learns_and_records_history():
    X, Y, labels = _blobs()
    model = nn.SequentialModel(
        [
            nn.Dense(4, 8, rng=0),
            nn.BatchNorm(8),
            nn.LeakyReLU(0.0),
            nn.Dense(8, 3, rng=1),
            nn.Softmax(),
        ]
    )
    model.compile(nn.Adam(0.01), nn.CategoricalCrossentropy())
    hist = model.fit(X, Y, epochs=5, batch_size=32, validation_data=(X, Y), rng=0)
    assert set(hist) >= {
        "train_loss",
        "train_acc",
        "test_loss",
        "test_acc",
        "epoch_seconds",
    }
    assert all(len(v) == 5 for v in hist.values())
    assert hist["train_loss"][-1] < hist["train_loss"][0] and hist["test_acc"][-1] > 0.9
    probs = model.predict(X)
    np.testing.assert_allclose(probs.sum(axis=1), 1, rtol=1e-12)
    assert model.evaluate(X, Y)["acc"] == hist["test_acc"][-1]


def test_float32_option_keeps_float32():
    X, Y, _ = _blobs(dtype=np.float32)
    model = nn.SequentialModel([nn.Dense(4, 3, rng=0, dtype=np.float32), nn.Softmax()])
    model.compile(nn.RMSProp(0.01), nn.CategoricalCrossentropy())
    model.fit(X, Y, epochs=1, batch_size=50, rng=0)
    assert (
        model.layers[0].W.value.dtype == np.float32
        and model.predict(X).dtype == np.float32
    )
    with pytest.raises(ValueError, match="not supported"):
        nn.Dense(2, 2, dtype=np.int32)


# --------------------------------------------------------------------------- bad input
def _compiled_model(lr=0.01, optimizer=nn.RMSProp):
    model = nn.SequentialModel(
        [nn.Dense(4, 8, rng=0), nn.ReLU(), nn.Dense(8, 3, rng=1), nn.Softmax()]
    )
    model.compile(optimizer(lr), nn.CategoricalCrossentropy())
    return model


def test_wrong_input_width_stops_with_a_clear_message():
    X, Y, _ = _blobs()
    model = _compiled_model()
    with pytest.raises(
        ValueError, match=r"expects inputs of shape \(N, 4\), got \(300, 5\)"
    ):
        model.fit(np.hstack([X, X[:, :1]]), Y, epochs=1, batch_size=10)
    with pytest.raises(
        ValueError, match=r"Dense\(4->8\) expects inputs of shape \(batch, 4\)"
    ):
        model.layers[0](np.ones((2, 28, 28)))


def test_labels_out_of_range_stop_with_a_clear_message():
    X, _, labels = _blobs()
    enc = nn.OneHotEncoder().fit(labels)  # classes 0, 1, 2
    with pytest.raises(
        ValueError,
        match=r"labels \[3\] are not among the classes seen by fit \(\[0, 1, 2\]\)",
    ):
        enc(np.where(labels == 2, 3, labels))
    model = _compiled_model()
    with pytest.raises(
        ValueError, match="targets have 10 columns but the model outputs 3"
    ):
        model.fit(
            X, nn.OneHotEncoder().fit(np.arange(10))(labels), epochs=1, batch_size=10
        )
    with pytest.raises(ValueError, match="one-hot encode them"):
        nn.CategoricalCrossentropy()(np.ones((3, 3)) / 3, labels[:3])


# the divergence this test provokes
@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")
def test_too_large_learning_rate_stops_with_a_clear_message():
    X, Y, _ = _blobs()
    model = nn.SequentialModel([nn.Dense(4, 3, rng=0)])
    model.compile(nn.SGD(1e3), nn.MeanSquaredError())
    with pytest.raises(
        nn.TrainingDiverged,
        match=r"epoch \d+: The loss became (nan|inf).*Lower the learning rate "
        r"\(lr=1000.0\)",
    ):
        model.fit(X * 100, Y, epochs=50, batch_size=300, rng=0)


def test_inputs_with_nan_are_refused():
    X, Y, _ = _blobs()
    X[3, 1] = np.nan
    with pytest.raises(ValueError, match="NaN or inf"):
        _compiled_model().fit(X, Y, epochs=1, batch_size=10)


def test_softmax_with_from_logits_loss_is_refused():
    model = nn.SequentialModel([nn.Dense(4, 3, rng=0), nn.Softmax()])
    with pytest.raises(ValueError, match="second softmax"):
        model.compile(nn.SGD(0.1), nn.CategoricalCrossentropy(from_logits=True))
