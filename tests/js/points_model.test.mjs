import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import {
  click, clearAll, deletePair, emptyState, fitTransform, fromJSON, movePoint,
  rasterizeStrokes, resize, snapToPixel, toJSON, undo,
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

test("a state moves to a resized image of the same shape and is dropped otherwise", () => {
  let s = emptyState([64, 96]);
  s = click(click(s, [10, 20]), [30, 40]);
  s = { ...s, strokes: [{ points: [[10, 10], [20.5, 12]], radius: 4, erase: false }] };
  const doubled = resize(s, [128, 192]);
  // pixel centre (10, 20) covers [9.5, 10.5] → [19, 21] at twice the size: centre 20.5
  assert.deepEqual(doubled.pairs, [{ handle: [21, 41], target: [61, 81] }]);
  assert.deepEqual(doubled.strokes[0].points, [[20.5, 20.5], [41.5, 24.5]]);
  assert.equal(doubled.strokes[0].radius, 8);
  assert.deepEqual(doubled.undo, []);
  assert.equal(resize(s, [64, 96]), s);
  const square = resize(s, [64, 64]);
  assert.deepEqual([square.imageSize, square.pairs, square.strokes], [[64, 64], [], []]);
  assert.deepEqual(resize(emptyState([0, 0]), [8, 8]).imageSize, [8, 8]);
});
