import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import {
  click, clearAll, deletePair, emptyState, fitTransform, fromJSON, movePoint,
  rasterizeStrokes, snapToPixel, toJSON, undo,
} from "../../js/points_model.js";

const fixture = readFileSync(new URL("../fixtures/points_v1.json", import.meta.url), "utf8");
const expectedMask = JSON.parse(
  readFileSync(new URL("../fixtures/points_v1_mask.json", import.meta.url), "utf8"));

test("the stroke rasteriser matches Python's on the shared fixture", () => {
  const state = fromJSON(fixture);
  const mask = rasterizeStrokes(state.strokes, state.imageSize);
  assert.deepEqual(Array.from(mask), expectedMask.flat());
});

test("the fixture round-trips through the editor state", () => {
  assert.deepEqual(JSON.parse(toJSON(fromJSON(fixture))), JSON.parse(fixture));
});

test("image ↔ canvas transforms invert each other on non-square images", () => {
  const t = fitTransform([48, 64], [200, 300]);
  for (const p of [[0, 0], [63, 47], [10.25, 33.5]]) {
    const back = t.toImage(t.toCanvas(p));
    assert.ok(Math.abs(back[0] - p[0]) < 1e-9 && Math.abs(back[1] - p[1]) < 1e-9);
  }
  assert.equal(t.scale, 200 / 64);
  assert.deepEqual(t.toCanvas([-0.5, -0.5]), [t.offsetX, t.offsetY]);
});

test("clicks make numbered pairs snapped to pixel centres; edits and undo work", () => {
  let s = emptyState([10, 20]);
  s = click(s, [2.4, 3.6]);
  assert.deepEqual(s.pending, [2, 4]);
  s = click(s, [30, -2]);  // clamped inside the image
  assert.deepEqual(s.pairs, [{ handle: [2, 4], target: [19, 0] }]);
  s = movePoint(s, 0, "target", [7.6, 7.4]);
  assert.deepEqual(s.pairs[0].target, [8, 7]);
  s = undo(s);
  assert.deepEqual(s.pairs[0].target, [19, 0]);
  s = deletePair(s, 0);
  assert.equal(s.pairs.length, 0);
  s = clearAll(undo(s));
  assert.equal(s.pairs.length, 0);
  assert.deepEqual(snapToPixel([-3, 99], [10, 20]), [0, 9]);
});
