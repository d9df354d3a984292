"""Streaming top-k and statistics against a brute-force sort; merging shards; ties."""

from __future__ import annotations

import numpy as np
import pytest

from onnxprobe.maxact.topk import LayerState


def brute_force(acts: np.ndarray, k: int, by: str):
    """acts (N, C, H, W) -> per unit the k (score, image, (y, x)) by score desc, image asc."""
    n, c, h, w = acts.shape
    flat = acts.reshape(n, c, -1)
    out = []
    for unit in range(c):
        rows = []
        for image in range(n):
            score = flat[image, unit].max() if by == "max" else flat[image, unit].astype(np.float64).mean()
            position = int(np.argmax(flat[image, unit]))
            rows.append((-float(np.float32(score)), image, divmod(position, w)))
        rows.sort(key=lambda r: (r[0], r[1]))
        out.append([(-s, i, loc) for s, i, loc in rows[:k]])
    return out


def streamed(acts: np.ndarray, k: int, by: str, batch: int, order=None) -> LayerState:
    """Feed acts[order] in batches; images are numbered by their index in `acts`."""
    state = LayerState.empty(acts.shape[1], k, 2, by)
    order = np.arange(len(acts)) if order is None else np.asarray(order)
    for start in range(0, len(order), batch):
        idx = order[start:start + batch]
        state.update(acts[idx], idx, channel_axis=1, spatial_axes=(2, 3))
    return state


def as_lists(state: LayerState):
    out = []
    for unit in range(state.units):
        out.append([(float(state.score[unit, r]), int(state.index[unit, r]), tuple(int(v) for v in state.location[unit, r]))
                    for r in range(state.k) if state.filled()[unit, r]])
    return out


def _acts(seed, n=23, c=5, h=4, w=6, ties=False):
    rng = np.random.default_rng(seed)
    acts = rng.standard_normal((n, c, h, w)).astype(np.float32)
    if ties:  # whole images with equal peaks and equal values at several places
        acts = np.round(acts, 0)
    return acts


@pytest.mark.parametrize("by,k,batch,ties", [
    ("max", 3, 4, False), ("max", 9, 1, False), ("max", 30, 7, False), ("max", 4, 5, True),
    ("mean", 3, 4, False), ("mean", 5, 23, True), ("max", 1, 2, True),
])
def test_streaming_equals_brute_force(by, k, batch, ties):
    acts = _acts(k * 10 + batch, ties=ties)
    state = streamed(acts, k, by, batch)
    expected = brute_force(acts, k, by)
    got = as_lists(state)
    for unit in range(acts.shape[1]):
        assert [(i, loc) for _, i, loc in got[unit]] == [(i, loc) for _, i, loc in expected[unit]]
        np.testing.assert_allclose([s for s, _, _ in got[unit]], [s for s, _, _ in expected[unit]], rtol=1e-6)
    peaks = acts.reshape(acts.shape[0], acts.shape[1], -1).max(axis=2)
    np.testing.assert_allclose(state.mean_activation(), acts.astype(np.float64).mean(axis=(2, 3)).mean(axis=0), rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(state.mean_max(), peaks.mean(axis=0), rtol=1e-6)
    np.testing.assert_array_equal(state.max, peaks.max(axis=0))
    np.testing.assert_allclose(state.fire_rate(), (peaks > 0).mean(axis=0))
    assert state.count == len(acts)


@pytest.mark.parametrize("by", ["max", "mean"])
def test_merged_shards_equal_one_pass(by):
    acts = _acts(7, n=40, ties=True)
    whole = streamed(acts, 6, by, batch=5)
    rng = np.random.default_rng(0)
    order = rng.permutation(len(acts))
    parts = [order[:9], order[9:10], order[10:31], order[31:]]
    states = [streamed(acts, 6, by, batch=3, order=part) for part in parts]
    merged_forward = states[0].merge(states[1]).merge(states[2]).merge(states[3])
    merged_tree = states[3].merge(states[2]).merge(states[1].merge(states[0]))
    for merged in (merged_forward, merged_tree):
        assert as_lists(merged) == as_lists(whole)
        np.testing.assert_array_equal(merged.max, whole.max)
        np.testing.assert_array_equal(merged.fires, whole.fires)
        np.testing.assert_allclose(merged.sum_mean, whole.sum_mean, rtol=1e-12)
        assert merged.count == whole.count


def test_ties_break_by_image_index_whatever_the_order():
    acts = np.zeros((6, 2, 3, 3), np.float32)
    acts[:, 0, 1, 2] = 5.0  # six images tie on unit 0
    acts[:, 1] = 1.0  # unit 1: every position ties too -> first position
    shuffled = streamed(acts, 4, "max", batch=2, order=np.array([5, 3, 1, 0, 4, 2]))
    assert shuffled.index[0].tolist() == [0, 1, 2, 3]
    assert shuffled.location[0].tolist() == [[1, 2]] * 4
    assert shuffled.location[1].tolist() == [[0, 0]] * 4


def test_fewer_images_than_k_leaves_empty_slots_last():
    acts = _acts(3, n=2)
    state = streamed(acts, 5, "max", batch=1)
    assert state.filled().sum(axis=1).tolist() == [2] * acts.shape[1]
    assert np.isneginf(state.score[:, 2:]).all()


def test_non_spatial_and_channels_last_layers():
    rng = np.random.default_rng(2)
    fc = rng.standard_normal((8, 4)).astype(np.float32)
    state = LayerState.empty(4, 3, 0, "max")
    state.update(fc, np.arange(8), channel_axis=1, spatial_axes=())
    assert state.index.tolist() == np.argsort(-fc, axis=0, kind="stable")[:3].T.tolist()
    nhwc = rng.standard_normal((5, 3, 4, 2)).astype(np.float32)  # N, H, W, C
    channels_last = LayerState.empty(2, 2, 2, "max")
    channels_last.update(nhwc, np.arange(5), channel_axis=3, spatial_axes=(1, 2))
    expected = streamed(np.transpose(nhwc, (0, 3, 1, 2)), 2, "max", batch=5)
    assert as_lists(channels_last) == as_lists(expected)
