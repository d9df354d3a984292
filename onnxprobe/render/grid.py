"""The toolbox's layer pane: every unit of a layer tiled into one image, with its boosts."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from onnxprobe.render.images import clip_unit, unit_to_uint8

PER_CHANNEL_BOOSTS = (0.0, 0.3, 0.5, 0.8, 1.0)  # key T
GAMMA_BOOSTS = (1.0, 0.7, 0.5, 0.3)  # key t
NEG_POS_COLORS = ((1.0, 0.0, 0.0), (0.0, 1.0, 0.0))  # back diffs: negative red, positive green


@dataclass(frozen=True)
class GridLayout:
    """Where each unit's tile sits in the grid image (for drawing selections and mouse picking)."""

    count: int
    rows: int
    columns: int
    tile_h: int
    tile_w: int
    pad: int

    @property
    def size(self) -> tuple[int, int]:
        return (self.rows * (self.tile_h + self.pad) - self.pad, self.columns * (self.tile_w + self.pad) - self.pad)

    def tile_rect(self, unit: int) -> tuple[int, int, int, int]:
        """(y, x, h, w) of the unit's tile in grid pixels."""
        r, c = divmod(unit, self.columns)
        return r * (self.tile_h + self.pad), c * (self.tile_w + self.pad), self.tile_h, self.tile_w

    def unit_at(self, y: float, x: float) -> int | None:
        """The unit under a grid pixel, or None (padding or outside)."""
        if y < 0 or x < 0:
            return None
        r, ry = divmod(int(y), self.tile_h + self.pad)
        c, rx = divmod(int(x), self.tile_w + self.pad)
        if ry >= self.tile_h or rx >= self.tile_w or c >= self.columns:
            return None
        unit = r * self.columns + c
        return unit if unit < self.count else None


def grid_shape(count: int, aspect: float = 1.0) -> tuple[int, int]:
    """Rows and columns for `count` tiles, as close to square (in tiles of `aspect` h/w) as possible."""
    columns = max(1, int(np.ceil(np.sqrt(count * aspect))))
    rows = int(np.ceil(count / columns))
    return rows, columns


def units_first(activation: np.ndarray, channel_axis: int, spatial_axes: tuple[int, ...]) -> np.ndarray:
    """One batch element's activation (without batch axis) -> (units, H, W) (non-spatial: (units, 1, 1))."""
    act = np.asarray(activation, dtype=np.float32)
    c = channel_axis - 1
    spatial = [a - 1 for a in spatial_axes]
    others = [a for a in range(act.ndim) if a != c and a not in spatial]
    act = np.transpose(act, [c] + spatial + others)
    if others:  # extra axes (e.g. tokens) are folded by their max so each unit still gets one tile
        act = act.reshape(act.shape[: 1 + len(spatial)] + (-1,)).max(axis=-1)
    while act.ndim < 3:
        act = act[..., None]
    if act.ndim > 3:
        act = act.reshape(act.shape[0], act.shape[1], -1)
    return act


def normalize_tiles(tiles: np.ndarray, boost_indiv: float = 0.0, boost_gamma: float = 1.0,
                    neg_pos_colors=None) -> np.ndarray:
    """The original toolbox's tile_images_normalize: (units, H, W) -> (units, H, W, 3) in 0..1.

    The whole layer is scaled to 0..1 (so units compare), then each unit is divided by its own
    max ** boost_indiv (1 = every unit normalised on its own), then raised to boost_gamma.
    """
    if neg_pos_colors is None:
        return np.repeat(_normalize_gray(tiles, boost_indiv, boost_gamma)[..., None], 3, axis=-1)
    data = np.array(tiles, dtype=np.float32, copy=True)
    neg, pos = (np.asarray(c, np.float32) for c in neg_pos_colors)
    data /= max(float(data.max(initial=0)), float(-data.min(initial=0))) + 1e-10
    data = (np.maximum(data, 0)[..., None] * pos) + (np.maximum(-data, 0)[..., None] * neg)
    return clip_unit(_scale_boost(data, boost_indiv, boost_gamma))


def _scale_boost(data: np.ndarray, boost_indiv: float, boost_gamma: float) -> np.ndarray:
    """The layer scaled to 0..1 and boosted, in place where it can (data: a float32 array of its own)."""
    data -= data.min(initial=0) if data.size else 0
    data *= 1.0 / (data.max(initial=0) + 1e-10)
    if boost_indiv > 0:
        peaks = data.reshape(data.shape[0], -1).max(axis=1) + 1e-10
        data *= (peaks ** -boost_indiv).astype(np.float32).reshape((-1,) + (1,) * (data.ndim - 1))
    if boost_gamma != 1.0:
        np.maximum(data, 0, out=data)
        data **= np.float32(boost_gamma)
    return data


def _normalize_gray(tiles: np.ndarray, boost_indiv: float, boost_gamma: float) -> np.ndarray:
    """normalize_tiles without colours, one channel: (units, H, W) in 0..1. The layer pane is gray
    (its three channels are equal), so the viewer's grid works on one channel, a third of the data."""
    data = _scale_boost(np.array(tiles, dtype=np.float32, copy=True), boost_indiv, boost_gamma)
    return clip_unit(data, out=data)


def layer_grid(tiles: np.ndarray, boost_indiv: float = 0.0, boost_gamma: float = 1.0, min_tile: int = 1,
               pad: int = 1, neg_pos_colors=None, images: np.ndarray | None = None) -> tuple[np.ndarray, GridLayout]:
    """Tile (units, H, W) activations into one RGB uint8 image; or tile ready RGB `images`
    (units, H, W, 3 uint8, pattern mode) instead. Returns the image and its layout.

    The viewer draws this every frame: a gray grid (no colours, no pattern images) is tiled on one
    channel and made RGB once at the end, and tiles are upscaled and placed with whole-array copies."""
    if images is not None:
        rgb = np.asarray(images, dtype=np.uint8)
    elif neg_pos_colors is not None:
        rgb = unit_to_uint8(normalize_tiles(tiles, boost_indiv, boost_gamma, neg_pos_colors))
    else:
        gray = unit_to_uint8(_normalize_gray(tiles, boost_indiv, boost_gamma), in_place=True)
        out, layout = _tile(gray, min_tile, pad)
        return cv2.cvtColor(out, cv2.COLOR_GRAY2RGB), layout
    return _tile(rgb, min_tile, pad)


def _tile(pixels: np.ndarray, min_tile: int, pad: int) -> tuple[np.ndarray, GridLayout]:
    """(units, h, w[, 3]) uint8 -> the grid image (tiles upscaled by a whole factor to at least
    `min_tile`, `pad` pixels of black between them) and its layout."""
    count, h, w = pixels.shape[:3]
    scale = max(1, int(np.ceil(min_tile / max(1, min(h, w)))))
    th, tw = h * scale, w * scale
    rows, columns = grid_shape(count, aspect=th / tw)
    layout = GridLayout(count, rows, columns, th, tw, pad)
    depth = pixels.shape[3:]
    cells = np.zeros((rows * columns, th + pad, tw + pad, *depth), np.uint8)
    # nearest-neighbour upscale and placement in one copy: (units, h, s, w, s) -> (units, h*s, w*s)
    cells[:count, :th, :tw] = np.broadcast_to(
        pixels[:, :, None, :, None], (count, h, scale, w, scale, *depth)).reshape(count, th, tw, *depth)
    grid = cells.reshape(rows, columns, th + pad, tw + pad, *depth).swapaxes(1, 2)
    grid = grid.reshape(rows * (th + pad), columns * (tw + pad), *depth)
    height, width = layout.size
    return np.ascontiguousarray(grid[:height, :width]), layout


FONT = 0  # cv2.FONT_HERSHEY_SIMPLEX
CAPTION_SCALE = 0.33
TITLE_SCALE = 0.45


def _text_width(text: str, scale: float) -> int:
    import cv2

    return cv2.getTextSize(text, FONT, scale, 1)[0][0]


def _fit(text: str, width: int, scale: float) -> str:
    """`text` cut (with a trailing '.') to fit `width` pixels at `scale`."""
    if _text_width(text, scale) <= width:
        return text
    while len(text) > 1 and _text_width(text + ".", scale) > width:
        text = text[:-1]
    return text + "."


def labelled_grid(tiles: np.ndarray, title: str, unit_labels=None, boost_indiv: float = 0.0,
                  boost_gamma: float = 1.0, min_tile: int = 48, pad: int = 3) -> np.ndarray:
    """A layer pane a person can read as a file (the `--grid` PNG and the demo): every unit's tile
    upscaled (nearest neighbour, integer factor) to at least `min_tile` pixels, a caption under
    each tile (`unit_labels[i]`, e.g. class names on a logits layer, else the unit index) and a
    title bar (`title`: layer name and shape). Tiles are normalised as the toolbox's layer pane
    (`normalize_tiles`). Returns HxWx3 uint8 RGB."""
    import cv2

    rgb = unit_to_uint8(normalize_tiles(tiles, boost_indiv, boost_gamma), in_place=True)
    count, h, w = rgb.shape[:3]
    scale = max(1, int(np.ceil(min_tile / max(1, min(h, w)))))
    rgb = np.repeat(np.repeat(rgb, scale, axis=1), scale, axis=2)
    h, w = h * scale, w * scale
    if unit_labels is not None and h * w == min(h, w) ** 2 and w < 2 * min_tile:
        # class names need room: vector units (1x1 tiles) get wider cells
        rgb = np.repeat(rgb, int(np.ceil(2 * min_tile / w)), axis=2)
        w = rgb.shape[2]
    caption_h = 14
    labels = [str(u) for u in range(count)] if unit_labels is None else [str(t) for t in unit_labels]
    cell_h, cell_w = h + caption_h, w
    rows, columns = grid_shape(count, aspect=cell_h / cell_w)
    title_h = 22
    width = max(columns * (cell_w + pad) + pad, _text_width(title, TITLE_SCALE) + 2 * pad)
    out = np.full((title_h + rows * (cell_h + pad) + pad, width, 3), 24, np.uint8)
    cv2.putText(out, title, (pad + 2, 15), FONT, TITLE_SCALE, (235, 235, 235), 1, cv2.LINE_AA)
    for unit in range(count):
        r, c = divmod(unit, columns)
        y, x = title_h + r * (cell_h + pad), pad + c * (cell_w + pad)
        out[y:y + h, x:x + w] = rgb[unit]
        text = _fit(labels[unit], cell_w - 2, CAPTION_SCALE)
        cv2.putText(out, text, (x + 1, y + h + 10), FONT, CAPTION_SCALE, (200, 200, 200), 1, cv2.LINE_AA)
    return out
