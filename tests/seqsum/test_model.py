"""CnnGru: shapes, agreement with a plain per-sequence nn.GRU reference, padding inertness."""

from __future__ import annotations

import pytest
import torch

from seqsum.config import ModelConfig, RunConfig
from seqsum.data import eval_sets, sample
from seqsum.evaluate import predict
from seqsum.model import CnnGru, build
from tests.helpers import tiny_config

LOSSES = ["mse", "log", "classify"]


def small_model_config(**kw) -> ModelConfig:
    base = {"conv_channels": (4, 6), "conv_kernels": (5, 3), "gru_hidden": (12, 7), "dropout": 0.3}
    base.update(kw)
    return ModelConfig(**base)


def model_for(loss: str, task: str = "product", seed: int = 0) -> tuple[CnnGru, object]:
    cfg = RunConfig(model=small_model_config()).replace({"train.loss": loss, "train.task": task})
    torch.manual_seed(seed)
    model, codec = build(cfg)
    return model.eval(), codec


def padded_batch(pools, n=48, max_len=4, seed=0):
    seqs = sample(pools, pools.test, n, 1, max_len, torch.Generator().manual_seed(seed))
    return seqs, pools.images[seqs.idx]  # (n, T, 28, 28) uint8


def reference_forward(model: CnnGru, images: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """The textbook computation, one sequence at a time over its real steps only, with the
    model's own modules: CNN per image -> nn.GRU layers -> last step -> dropout -> head."""
    outs = []
    for img, n in zip(images, lengths.tolist()):
        x = model.cnn(img[:n].unsqueeze(1).float() / 255.0)[None]  # (1, n, F)
        for gru in model.grus:
            x, _ = gru(x)
        outs.append(model.head(model.drop(x[0, -1])))
    return torch.stack(outs)


def test_seed_model_shapes():
    model = CnnGru(RunConfig().model)
    assert model.feat_dim == 16 * 23 * 23 == 8464  # 28 -> 25 (4x4) -> 23 (3x3), 16 channels
    assert [g.hidden_size for g in model.grus] == [200, 100]
    assert model.grus[0].weight_ih_l0.shape == (600, 8464)
    assert model.head.weight.shape == (1, 100)
    assert model.first_conv.out_channels == 8 and model.first_conv.kernel_size == (4, 4)
    assert isinstance(model.cnn[1], torch.nn.Tanh)
    assert model.drop.p == 0.2
    convs = 8 * 16 + 8 + 16 * 8 * 9 + 16
    grus = sum(3 * h * (i + h) + 6 * h for i, h in ((8464, 200), (200, 100)))
    assert sum(p.numel() for p in model.parameters()) == convs + grus + 101


def test_conv_free_model_reads_pixels():
    model = CnnGru(ModelConfig(conv_channels=(), conv_kernels=(), gru_hidden=(5,)))
    assert model.feat_dim == 784 and model.first_conv is None
    out = model(torch.zeros(2, 3, 28, 28, dtype=torch.uint8), torch.tensor([1, 3]))
    assert out.shape == (2, 1)


@pytest.mark.parametrize("loss, out_dim", [("mse", 1), ("log", 1), ("classify", 226)])
def test_output_shape_per_codec(pools, loss, out_dim):
    model, codec = model_for(loss)
    seqs, images = padded_batch(pools, n=10)
    assert model(images, seqs.lengths).shape == (10, out_dim) == (10, codec.out_dim)


@pytest.mark.parametrize("loss", LOSSES)
def test_matches_plain_gru_reference(pools, loss):
    model, _ = model_for(loss)
    seqs, images = padded_batch(pools)
    with torch.no_grad():
        got = model(images, seqs.lengths)
        want = reference_forward(model, images, seqs.lengths)
    assert torch.allclose(got, want, atol=1e-5, rtol=1e-4), (got - want).abs().max()


def test_gradients_match_plain_gru_reference(pools):
    model, _ = model_for("mse")
    seqs, images = padded_batch(pools, n=16)
    w = torch.randn(16, 1)
    (model(images, seqs.lengths) * w).sum().backward()
    got = {n: p.grad.clone() for n, p in model.named_parameters()}
    model.zero_grad()
    (reference_forward(model, images, seqs.lengths) * w).sum().backward()
    for n, p in model.named_parameters():
        assert torch.allclose(got[n], p.grad, atol=1e-5, rtol=1e-3), n


@pytest.mark.parametrize("loss", LOSSES)
def test_garbage_in_padded_steps_never_changes_a_prediction(pools, loss):
    model, codec = model_for(loss)
    seqs, images = padded_batch(pools)
    assert (seqs.lengths < 4).sum() > 10  # plenty of padded sequences
    pad = ~seqs.mask
    noisy, inverted = images.clone(), images.clone()
    noisy[pad] = torch.randint(0, 256, noisy[pad].shape, dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    inverted[pad] = 255 - inverted[pad]
    with torch.no_grad():
        clean = model(images, seqs.lengths)
        for garbage in (
            noisy,
            inverted,
            torch.zeros_like(images).masked_scatter(seqs.mask[..., None, None], images[seqs.mask]),
        ):
            out = model(garbage, seqs.lengths)
            assert torch.equal(out, clean)
            assert torch.equal(codec.decode(out), codec.decode(clean))


@pytest.mark.parametrize("loss", LOSSES)
def test_extra_padding_columns_never_change_a_prediction(pools, loss):
    model, codec = model_for(loss)
    seqs, images = padded_batch(pools)
    longer = torch.cat([images, torch.randint(0, 256, (len(seqs), 3, 28, 28), dtype=torch.uint8)], dim=1)  # T 4 -> 7
    with torch.no_grad():
        a, b = model(images, seqs.lengths), model(longer, seqs.lengths)
    assert torch.allclose(a, b, atol=1e-6, rtol=1e-5)
    assert torch.equal(codec.decode(a).round(), codec.decode(b).round())


@pytest.mark.parametrize("loss", LOSSES)
def test_padded_indices_never_change_predict(pools, loss):
    """At the Sequences level: pointing padded steps at other images leaves predict() unchanged."""
    model, codec = model_for(loss)
    sets = eval_sets(pools, tiny_config().data)
    seqs = sets.test
    moved = type(seqs)(seqs.idx.clone(), seqs.lengths, seqs.digits)
    pad = ~seqs.mask
    moved.idx[pad] = pools.train[torch.arange(int(pad.sum())) % len(pools.train)]
    assert not torch.equal(moved.idx, seqs.idx)
    assert torch.equal(predict(model, codec, pools, seqs, batch=50), predict(model, codec, pools, moved, batch=50))


def test_prediction_does_not_depend_on_batch_mates(pools):
    model, _ = model_for("mse")
    seqs, images = padded_batch(pools, n=20)
    with torch.no_grad():
        together = model(images, seqs.lengths)
        alone = torch.cat([model(images[i : i + 1], seqs.lengths[i : i + 1]) for i in range(20)])
    assert torch.allclose(together, alone, atol=1e-5, rtol=1e-4)


def test_uint8_and_float_pixels_agree(pools):
    model, _ = model_for("mse")
    seqs, images = padded_batch(pools, n=8)
    with torch.no_grad():
        assert torch.allclose(model(images, seqs.lengths), model(images.float(), seqs.lengths))


def test_dropout_only_in_train_mode(pools):
    model, _ = model_for("mse")
    seqs, images = padded_batch(pools, n=32)
    model.train()
    with torch.no_grad():
        a, b = model(images, seqs.lengths), model(images, seqs.lengths)
    assert not torch.equal(a, b)
    model.eval()
    with torch.no_grad():
        assert torch.equal(model(images, seqs.lengths), model(images, seqs.lengths))


def test_state_dict_is_the_plain_modules():
    """Checkpoints hold exactly the parameters of nn.Conv2d / nn.GRU / nn.Linear modules."""
    model = CnnGru(small_model_config())
    keys = set(model.state_dict())
    assert {"grus.0.weight_ih_l0", "grus.0.weight_hh_l0", "grus.1.bias_hh_l0", "head.weight", "cnn.0.weight"} <= keys
    assert keys == {n for n, _ in model.named_parameters()}


@pytest.mark.parametrize("loss", LOSSES)
def test_forward_pool_is_forward_on_the_gathered_images(pools, loss):
    """Inference with one CNN pass per distinct image gives the plain forward's outputs."""
    model, _ = model_for(loss)
    seqs = sample(pools, pools.test[:40], 300, 1, 5, torch.Generator().manual_seed(3))  # images repeat
    with torch.no_grad():
        plain = model(pools.images[seqs.idx], seqs.lengths)
    pooled = model.forward_pool(pools.images, seqs.idx, seqs.lengths)
    assert len(seqs.idx[seqs.mask].unique()) <= 40 < int(seqs.lengths.sum())
    torch.testing.assert_close(pooled, plain, rtol=1e-5, atol=1e-5)
    assert torch.allclose(pooled, reference_forward(model, pools.images[seqs.idx], seqs.lengths), atol=1e-4)
