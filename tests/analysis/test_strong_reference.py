"""The strong reference: a reader trained on the training pool only, cached per machine by data split, read
back or rebuilt when damaged; on the embedded digits it reads the test pool far better than the seed stack."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from analysis.baselines import sequence_scores
from analysis.strong_reference import (
    FILES,
    _load,
    _save,
    augment,
    cache_key,
    get_strong,
    train_strong,
    user_cache,
)
from seqsum.config import RunConfig
from seqsum.data import Pools
from seqsum.errors import ConfigError
from seqsum.stats import wilson


def _small(pools: Pools, n: int = 300) -> Pools:
    """The same pools with only the first n training images (a one-epoch reader in a second or two)."""
    return dataclasses.replace(pools, train=pools.train[:n])


def test_augment_moves_digits_but_keeps_their_ink_and_shape():
    gen = torch.Generator().manual_seed(0)
    x = torch.zeros(8, 1, 28, 28)
    x[:, :, 10:18, 12:16] = 1.0
    y = augment(x, gen)
    assert y.shape == x.shape and float(y.min()) >= 0 and float(y.max()) <= 1 + 1e-6
    assert not torch.allclose(y, x)  # every copy is moved
    assert torch.allclose(y.sum((1, 2, 3)), x.sum((1, 2, 3)), rtol=0.3)  # the ink stays (up to the scale)
    assert torch.equal(augment(x, torch.Generator().manual_seed(0)), y)  # one generator, one augmentation


def test_the_reader_never_sees_the_test_pool(pools):
    small = _small(pools)
    a = train_strong(small, epochs=1)
    noisy = dataclasses.replace(small, images=small.images.clone())
    noisy.images[small.test] = torch.randint(0, 256, noisy.images[small.test].shape, dtype=torch.uint8)
    b = train_strong(noisy, epochs=1)
    assert all(torch.equal(a.model.state_dict()[k], b.model.state_dict()[k]) for k in a.model.state_dict())
    assert a.info["n_train"] == 300 and a.info["n_test"] == len(pools.test)


def test_cache_round_trip_and_a_damaged_file(pools, tmp_path):
    ref = train_strong(_small(pools), epochs=1)
    data = RunConfig().data
    folder = tmp_path / cache_key(data)
    _save(ref, folder)
    back = get_strong(data, pools, tmp_path, train_if_missing=False)
    assert back.info["cached"] and (back.test_predictions == ref.test_predictions).all()
    assert back.accuracy == ref.accuracy
    # another split is another key: nothing cached for it, and training off gives None
    other = dataclasses.replace(data, split_seed=1)
    assert cache_key(other) != cache_key(data) and get_strong(other, pools, tmp_path, train_if_missing=False) is None
    (folder / FILES[1]).write_bytes(b"not a checkpoint")
    with pytest.raises(ConfigError, match=r"damaged.*without --no-reference") as e:
        get_strong(data, pools, tmp_path, train_if_missing=False)
    assert "\n" not in str(e.value)
    (folder / FILES[0]).write_text('{"reader": "something else"}')
    with pytest.raises(ConfigError, match="does not describe strong reference"):
        _load(folder)


def test_the_user_cache_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("SEQSUM_REFERENCE_CACHE", str(tmp_path / "a"))
    assert user_cache() == tmp_path / "a"
    monkeypatch.delenv("SEQSUM_REFERENCE_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "x"))
    assert user_cache() == tmp_path / "x" / "seqsum" / "reference"


def test_on_the_embedded_digits_it_reads_the_test_pool_at_about_98_percent(pools):
    """The real reader (trained once per machine, then cached): ~98-99% on the 500 test-pool digits, and
    exact arithmetic on its readings beats the seed stack's reader on the same product sequences."""
    from analysis.reference import get_reference

    data = RunConfig().data
    strong = get_strong(data, pools)
    k, n = int((strong.test_labels == strong.test_predictions).sum()), len(strong.test_labels)
    low, _ = wilson(k, n)
    assert k / n >= 0.975 and float(low) > 0.95, (k, n)
    seed = get_reference(data, RunConfig().model, pools, user_cache())
    seqs = sequence_scores(pools, data, "product", seed, strong)
    exact = seqs.groupby("predictor").correct.mean()
    assert exact["strong_reference"] > exact["reference"] and exact["strong_reference"] > 0.93
