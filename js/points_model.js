// Pure logic of the DragPD Point Picker editor: no DOM, no ComfyUI, tested with `node --test`.
// Points are (x, y) image pixels, the centre of pixel (c, r) being (c, r) — the same
// convention and the same version-1 JSON as dragpd/points.py.

export const FORMAT_VERSION = 1;

/** Snap an (x, y) image-space position to the nearest pixel centre inside the image. */
export function snapToPixel([x, y], [height, width]) {
  const clamp = (v, hi) => Math.min(Math.max(Math.round(v), 0), hi - 1);
  return [clamp(x, width), clamp(y, height)];
}

/** The transform between image pixels and canvas pixels for an image drawn to fit a box. */
export function fitTransform([height, width], [boxWidth, boxHeight]) {
  const scale = Math.min(boxWidth / width, boxHeight / height);
  const offsetX = (boxWidth - width * scale) / 2;
  const offsetY = (boxHeight - height * scale) / 2;
  return {
    scale,
    offsetX,
    offsetY,
    // pixel (c, r) covers [c - ½, c + ½] in image space
    toCanvas: ([x, y]) => [offsetX + (x + 0.5) * scale, offsetY + (y + 0.5) * scale],
    toImage: ([cx, cy]) => [(cx - offsetX) / scale - 0.5, (cy - offsetY) / scale - 0.5],
  };
}

/** Squared distance from (px, py) to the segment a → b, as dragpd.points does it. */
function segmentDistance2(px, py, [ax, ay], [bx, by]) {
  const dx = bx - ax;
  const dy = by - ay;
  const length2 = dx * dx + dy * dy;
  let t = 0;
  if (length2 > 0) t = Math.min(1, Math.max(0, ((px - ax) * dx + (py - ay) * dy) / length2));
  const ex = px - (ax + t * dx);
  const ey = py - (ay + t * dy);
  return ex * ex + ey * ey;
}

/** Rasterise brush strokes into a Uint8Array of H×W (1 = editable), row-major. */
export function rasterizeStrokes(strokes, [height, width]) {
  const mask = new Uint8Array(height * width);
  for (const stroke of strokes) {
    const pts = stroke.points;
    const segments = pts.length > 1 ? pts.slice(1).map((b, i) => [pts[i], b]) : [[pts[0], pts[0]]];
    const r2 = stroke.radius * stroke.radius;
    for (let r = 0; r < height; r++) {
      for (let c = 0; c < width; c++) {
        if (segments.some(([a, b]) => segmentDistance2(c, r, a, b) <= r2)) {
          mask[r * width + c] = stroke.erase ? 0 : 1;
        }
      }
    }
  }
  return mask;
}

/** Editing state: pairs, a pending handle, strokes and an undo history. Immutable updates. */
export function emptyState([height, width]) {
  return { imageSize: [height, width], pairs: [], pending: null, strokes: [], undo: [] };
}

function remember(state, next) {
  const { undo, ...snapshot } = state;
  return { ...next, undo: [...undo, snapshot].slice(-100) };
}

/** A click: first places a handle, the second its target (both snapped to pixel centres). */
export function click(state, point) {
  const snapped = snapToPixel(point, state.imageSize);
  if (state.pending === null) return remember(state, { ...state, pending: snapped });
  const pairs = [...state.pairs, { handle: state.pending, target: snapped }];
  return remember(state, { ...state, pairs, pending: null });
}

/** Move the handle or target of pair `index` to `point`. */
export function movePoint(state, index, which, point) {
  const pairs = state.pairs.map((pair, i) =>
    i === index ? { ...pair, [which]: snapToPixel(point, state.imageSize) } : pair);
  return remember(state, { ...state, pairs });
}

export function deletePair(state, index) {
  return remember(state, { ...state, pairs: state.pairs.filter((_, i) => i !== index) });
}

export function addStroke(state, stroke) {
  return remember(state, { ...state, strokes: [...state.strokes, stroke] });
}

export function clearAll(state) {
  return remember(state, { ...state, pairs: [], pending: null, strokes: [] });
}

export function undo(state) {
  if (state.undo.length === 0) return state;
  const previous = state.undo[state.undo.length - 1];
  return { ...previous, undo: state.undo.slice(0, -1) };
}

/**
 * The state on an image of another size: points and strokes rescaled when the aspect ratio
 * is the same (within 1 %, as the Python side accepts), an empty state otherwise. Pixel
 * centres map as in dragpd.points.scale_points: x' = (x + ½)·s − ½.
 */
export function resize(state, [height, width]) {
  const [oldHeight, oldWidth] = state.imageSize;
  if (oldHeight === height && oldWidth === width) return state;
  const sy = height / oldHeight;
  const sx = width / oldWidth;
  if (!(oldHeight > 0 && oldWidth > 0) || Math.abs(sy - sx) > 0.01 * Math.max(sy, sx)) {
    return emptyState([height, width]);
  }
  const size = [height, width];
  const scale = ([x, y]) => [(x + 0.5) * sx - 0.5, (y + 0.5) * sy - 0.5];
  const round1 = ([x, y]) => [Math.round(x * 10) / 10, Math.round(y * 10) / 10];
  return {
    imageSize: size,
    pairs: state.pairs.map(({ handle, target }) => ({
      handle: snapToPixel(scale(handle), size),
      target: snapToPixel(scale(target), size),
    })),
    pending: state.pending && snapToPixel(scale(state.pending), size),
    strokes: state.strokes.map((stroke) => ({
      ...stroke,
      points: stroke.points.map((p) => round1(scale(p))),
      radius: Math.max(0.5, Math.round(stroke.radius * sx * 10) / 10),
    })),
    undo: [],
  };
}

/** The version-1 JSON that dragpd.DragPoints.from_json reads. */
export function toJSON(state) {
  return JSON.stringify({
    version: FORMAT_VERSION,
    image_size: state.imageSize,
    pairs: state.pairs.map(({ handle, target }) => ({ handle, target })),
    mask: { strokes: state.strokes },
  });
}

export function fromJSON(text) {
  const doc = JSON.parse(text);
  if (doc.version !== FORMAT_VERSION) throw new Error(`points JSON version ${doc.version}`);
  return {
    imageSize: doc.image_size,
    pairs: doc.pairs.map(({ handle, target }) => ({ handle, target })),
    pending: null,
    strokes: (doc.mask && doc.mask.strokes) || [],
    undo: [],
  };
}
