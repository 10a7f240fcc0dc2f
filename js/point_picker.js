// DragPD Point Picker: the canvas editor inside the node. Logic lives in points_model.js;
// this file only draws and handles input. State is kept in image pixels and written to the
// node's (hidden) points_json widget in the version-1 format dragpd.DragPoints reads.
import { api } from "../../scripts/api.js";
import { app } from "../../scripts/app.js";
import {
  addStroke, clearAll, click, deletePair, emptyState, fitTransform, fromJSON, movePoint,
  resize, toJSON, undo,
} from "./points_model.js";

const COLORS = ["#e53935", "#1e88e5", "#43a047", "#fb8c00", "#8e24aa", "#00acc1"];
const GRAB_RADIUS = 8; // canvas px

function imageUrl(info) {
  const params = new URLSearchParams({ filename: info.filename, subfolder: info.subfolder || "",
                                       type: info.type || "temp", rand: Math.random() });
  return api.apiURL(`/view?${params}`);
}

/** The image file an "upload" widget value names ("sub/name.png" in the input folder). */
function uploadInfo(value) {
  const slash = value.lastIndexOf("/");
  return { filename: value.slice(slash + 1), subfolder: slash < 0 ? "" : value.slice(0, slash),
           type: "input" };
}

function hideWidget(widget) {
  widget.hidden = true;
  widget.computeSize = () => [0, -4];
  if (widget.element) widget.element.style.display = "none";
}

class PointEditor {
  constructor(node, jsonWidget, uploadWidget) {
    this.node = node;
    this.jsonWidget = jsonWidget;
    this.uploadWidget = uploadWidget;
    this.image = null;
    this.upstreamSource = null;
    this.brush = { on: false, erase: false, radius: 12 };
    this.stroke = null;
    this.drag = null;
    this.frame = 0;
    this.state = this.readState();
    this.root = document.createElement("div");
    this.root.style.cssText = "display:flex;flex-direction:column;gap:4px;width:100%;height:100%";
    this.toolbar = document.createElement("div");
    this.toolbar.style.cssText = "display:flex;gap:4px;flex-wrap:wrap;font-size:11px";
    this.file = document.createElement("input");
    Object.assign(this.file, { type: "file", accept: "image/*" });
    this.file.style.display = "none";
    this.file.onchange = () => this.upload(this.file.files[0]);
    for (const [label, action] of [["Upload", () => this.file.click()],
                                   ["Undo", () => this.apply(undo(this.state))],
                                   ["Clear", () => this.apply(clearAll(this.state))],
                                   ["Brush", () => this.toggleBrush(false)],
                                   ["Eraser", () => this.toggleBrush(true)]]) {
      const button = document.createElement("button");
      button.textContent = label;
      button.onclick = (e) => { e.preventDefault(); action(); this.redraw(); };
      this.toolbar.append(button);
    }
    this.toolButtons = { brush: this.toolbar.children[3], eraser: this.toolbar.children[4] };
    this.size = document.createElement("input");
    Object.assign(this.size, { type: "range", min: 1, max: 128, value: this.brush.radius,
                               title: "brush radius (image px)" });
    this.size.oninput = () => { this.brush.radius = Number(this.size.value); this.redraw(); };
    this.toolbar.append(this.size);
    this.canvas = document.createElement("canvas");
    this.canvas.style.cssText = "width:100%;flex:1;min-height:160px;background:#222;outline:none";
    this.canvas.tabIndex = 0; // focusable, so Ctrl+Z here undoes an edit of the points
    this.root.append(this.toolbar, this.canvas, this.file);
    this.listeners = [
      [this.canvas, "pointerdown", (e) => this.onDown(e)],
      [this.canvas, "pointermove", (e) => this.onMove(e)],
      [this.canvas, "pointerup", (e) => this.onUp(e)],
      [this.canvas, "contextmenu", (e) => this.onRightClick(e)],
      [this.canvas, "pointerleave", () => { this.hover = null; this.redraw(); }],
      [this.canvas, "keydown", (e) => this.onKey(e)],
    ];
    for (const [target, type, fn] of this.listeners) target.addEventListener(type, fn);
    this.observer = new ResizeObserver(() => this.redraw());
    this.observer.observe(this.canvas);
  }

  readState() {
    try {
      return fromJSON(this.jsonWidget.value);
    } catch {
      return emptyState([0, 0]);
    }
  }

  toggleBrush(erase) {
    this.brush = { ...this.brush, on: !(this.brush.on && this.brush.erase === erase), erase };
    const active = "outline:2px solid #4fc3f7";
    this.toolButtons.brush.style.cssText = this.brush.on && !erase ? active : "";
    this.toolButtons.eraser.style.cssText = this.brush.on && erase ? active : "";
  }

  onKey(e) {
    if ((e.ctrlKey || e.metaKey) && e.key.toLowerCase() === "z") {
      e.preventDefault();
      e.stopPropagation(); // the points' undo, not the graph's
      this.apply(undo(this.state));
    }
  }

  /** One line under the image: what the next click does. */
  hint() {
    if (this.brush.on) {
      return `${this.brush.erase ? "eraser" : "brush"} r=${this.brush.radius}px — click ` +
        `${this.brush.erase ? "Eraser" : "Brush"} again for points`;
    }
    const n = this.state.pairs.length;
    if (this.state.pending) return `pair ${n + 1}: click its target`;
    return `${n} pair${n === 1 ? "" : "s"} — click a handle; drag to move, right-click deletes`;
  }

  /** Show an image; points move with it when its size changes but not its shape. */
  setImage(url) {
    const image = new Image();
    image.onload = () => {
      this.image = image;
      const size = [image.naturalHeight, image.naturalWidth];
      const resized = resize(this.state, size);
      if (resized !== this.state) this.apply(resized);
      this.redraw();
    };
    image.src = url;
  }

  /** Upload a file to ComfyUI's input folder; the node uses it when no IMAGE is connected. */
  async upload(file) {
    if (!file) return;
    const body = new FormData();
    body.append("image", file);
    body.append("subfolder", "dragpd");
    body.append("type", "input");
    const response = await api.fetchApi("/upload/image", { method: "POST", body });
    if (response.status !== 200) {
      alert(`DragPD Point Picker: upload failed (${response.status} ${response.statusText})`);
      return;
    }
    const { name, subfolder } = await response.json();
    this.uploadWidget.value = subfolder ? `${subfolder}/${name}` : name;
    this.setImage(imageUrl(uploadInfo(this.uploadWidget.value)));
    this.file.value = "";
  }

  /** Follow the preview of the node feeding `image` (e.g. Load Image) when it changes. */
  followUpstream() {
    const link = this.node.inputs?.find((input) => input.name === "image")?.link;
    const upstream = link != null ? this.node.graph?.getNodeById(
      this.node.graph.links[link]?.origin_id) : null;
    const source = upstream?.imgs?.[0]?.src || null;
    if (source && source !== this.upstreamSource) this.setImage(source);
    this.upstreamSource = source;
  }

  apply(state) {
    this.state = state;
    this.jsonWidget.value = toJSON(state);
    this.redraw();
  }

  transform() {
    const rect = this.canvas.getBoundingClientRect();
    return fitTransform(this.state.imageSize, [rect.width || 1, rect.height || 1]);
  }

  eventPoint(e) {
    const rect = this.canvas.getBoundingClientRect();
    return this.transform().toImage([e.clientX - rect.left, e.clientY - rect.top]);
  }

  nearest(e) {
    const t = this.transform();
    const rect = this.canvas.getBoundingClientRect();
    const at = [e.clientX - rect.left, e.clientY - rect.top];
    let best = null;
    this.state.pairs.forEach((pair, index) => {
      for (const which of ["handle", "target"]) {
        const [x, y] = t.toCanvas(pair[which]);
        const d = Math.hypot(x - at[0], y - at[1]);
        if (d < GRAB_RADIUS && (!best || d < best.d)) best = { index, which, d };
      }
    });
    return best;
  }

  onDown(e) {
    if (!this.image || e.button !== 0) return;
    e.stopPropagation();
    if (this.brush.on) {
      this.stroke = { points: [this.eventPoint(e).map((v) => Math.round(v * 10) / 10)],
                      radius: this.brush.radius, erase: this.brush.erase };
      return;
    }
    const hit = this.nearest(e);
    if (hit) this.drag = hit;
    else this.apply(click(this.state, this.eventPoint(e)));
  }

  onMove(e) {
    if (this.brush.on) {
      this.hover = this.eventPoint(e);
      if (!this.stroke) this.redraw();
    }
    if (this.stroke) {
      this.stroke.points.push(this.eventPoint(e).map((v) => Math.round(v * 10) / 10));
      this.redraw();
    } else if (this.drag) {
      this.drag.moved = true;
      this.dragTo = this.eventPoint(e);
      this.redraw();
    }
  }

  onUp() {
    if (this.stroke) {
      this.apply(addStroke(this.state, this.stroke));
      this.stroke = null;
    } else if (this.drag) {
      if (this.drag.moved && this.dragTo) {
        this.apply(movePoint(this.state, this.drag.index, this.drag.which, this.dragTo));
      }
      this.drag = null;
      this.dragTo = null;
    }
  }

  onRightClick(e) {
    const hit = this.nearest(e);
    if (hit) {
      e.preventDefault();
      e.stopPropagation();
      this.apply(deletePair(this.state, hit.index));
    }
  }

  redraw() {
    cancelAnimationFrame(this.frame);
    this.frame = requestAnimationFrame(() => this.draw());
  }

  draw() {
    const rect = this.canvas.getBoundingClientRect();
    const ratio = window.devicePixelRatio || 1;
    this.canvas.width = Math.max(1, Math.round(rect.width * ratio));
    this.canvas.height = Math.max(1, Math.round(rect.height * ratio));
    const ctx = this.canvas.getContext("2d");
    ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
    ctx.clearRect(0, 0, rect.width, rect.height);
    if (!this.image) {
      ctx.fillStyle = "#aaa";
      ctx.fillText("Load or upload an image (or queue once),", 8, 16);
      ctx.fillText("then click handle → target.", 8, 30);
      return;
    }
    const t = this.transform();
    const [h, w] = this.state.imageSize;
    ctx.drawImage(this.image, t.offsetX, t.offsetY, w * t.scale, h * t.scale);
    const strokes = this.stroke ? [...this.state.strokes, this.stroke] : this.state.strokes;
    ctx.lineCap = "round";
    ctx.lineJoin = "round";
    for (const stroke of strokes) {
      ctx.strokeStyle = stroke.erase ? "rgba(0,0,0,0.45)" : "rgba(255,255,255,0.35)";
      ctx.lineWidth = 2 * stroke.radius * t.scale;
      ctx.beginPath();
      stroke.points.forEach((p, i) => {
        const [x, y] = t.toCanvas(p);
        if (i === 0) ctx.moveTo(x, y);
        ctx.lineTo(x, y);
      });
      ctx.stroke();
    }
    this.state.pairs.forEach((pair, i) => {
      const dragging = this.drag && this.drag.index === i && this.dragTo;
      const handle = dragging && this.drag.which === "handle" ? this.dragTo : pair.handle;
      const target = dragging && this.drag.which === "target" ? this.dragTo : pair.target;
      const [hx, hy] = t.toCanvas(handle);
      const [tx, ty] = t.toCanvas(target);
      const color = COLORS[i % COLORS.length];
      const angle = Math.atan2(ty - hy, tx - hx);
      const head = [[tx, ty], [tx - 10 * Math.cos(angle - 0.4), ty - 10 * Math.sin(angle - 0.4)],
                    [tx - 10 * Math.cos(angle + 0.4), ty - 10 * Math.sin(angle + 0.4)]];
      // a dark halo first, so an arrow stays visible on an object of its own colour
      for (const [style, width, dot] of [["rgba(0,0,0,0.7)", 4, 6.5], [color, 2, 5]]) {
        ctx.strokeStyle = style;
        ctx.fillStyle = style;
        ctx.lineWidth = width;
        ctx.beginPath();
        ctx.moveTo(hx, hy);
        ctx.lineTo(tx, ty);
        ctx.stroke();
        ctx.beginPath();
        head.forEach(([x, y], k) => (k === 0 ? ctx.moveTo(x, y) : ctx.lineTo(x, y)));
        ctx.closePath();
        ctx.fill();
        if (width > 2) ctx.stroke();
        ctx.beginPath();
        ctx.arc(hx, hy, dot, 0, 2 * Math.PI);
        ctx.fill();
      }
      ctx.fillStyle = "#fff";
      ctx.fillText(String(i + 1), hx + 7, hy - 7);
    });
    if (this.state.pending) {
      const [px, py] = t.toCanvas(this.state.pending);
      ctx.strokeStyle = "#fff";
      ctx.beginPath();
      ctx.arc(px, py, 6, 0, 2 * Math.PI);
      ctx.stroke();
    }
    if (this.brush.on && this.hover) { // the brush's footprint under the pointer
      const [bx, by] = t.toCanvas(this.hover);
      ctx.strokeStyle = "rgba(255,255,255,0.8)";
      ctx.lineWidth = 1;
      ctx.beginPath();
      ctx.arc(bx, by, this.brush.radius * t.scale, 0, 2 * Math.PI);
      ctx.stroke();
    }
    ctx.lineWidth = 3; // outlined text: readable on any image, hides nothing
    ctx.strokeStyle = "rgba(0,0,0,0.8)";
    ctx.strokeText(this.hint(), 4, rect.height - 5);
    ctx.fillStyle = "#eee";
    ctx.fillText(this.hint(), 4, rect.height - 5);
  }

  destroy() {
    cancelAnimationFrame(this.frame);
    for (const [target, type, fn] of this.listeners) target.removeEventListener(type, fn);
    this.observer.disconnect();
    this.root.remove();
  }
}

app.registerExtension({
  name: "DragPD.PointPicker",
  async beforeRegisterNodeDef(nodeType, nodeData) {
    if (nodeData.name !== "DragPDPointPicker") return;
    const onNodeCreated = nodeType.prototype.onNodeCreated;
    nodeType.prototype.onNodeCreated = function () {
      const result = onNodeCreated?.apply(this, arguments);
      const jsonWidget = this.widgets.find((w) => w.name === "points_json");
      const uploadWidget = this.widgets.find((w) => w.name === "upload");
      hideWidget(jsonWidget);
      hideWidget(uploadWidget);
      this.dragpdEditor = new PointEditor(this, jsonWidget, uploadWidget);
      this.addDOMWidget("point_editor", "dragpd_points", this.dragpdEditor.root, {
        serialize: false,
        getMinHeight: () => 220,
      });
      this.setSize([Math.max(this.size[0], 320), Math.max(this.size[1], 360)]);
      return result;
    };
    const onExecuted = nodeType.prototype.onExecuted;
    nodeType.prototype.onExecuted = function (message) {
      onExecuted?.apply(this, arguments);
      const info = message?.images?.[0];
      if (info && this.dragpdEditor) this.dragpdEditor.setImage(imageUrl(info));
    };
    const onConfigure = nodeType.prototype.onConfigure;
    nodeType.prototype.onConfigure = function () {
      const result = onConfigure?.apply(this, arguments);
      const editor = this.dragpdEditor;
      if (editor) {
        editor.state = editor.readState();
        const uploaded = editor.uploadWidget.value;
        if (uploaded) editor.setImage(imageUrl(uploadInfo(uploaded)));
        editor.redraw();
      }
      return result;
    };
    const onDrawBackground = nodeType.prototype.onDrawBackground;
    nodeType.prototype.onDrawBackground = function () {
      this.dragpdEditor?.followUpstream();
      return onDrawBackground?.apply(this, arguments);
    };
    const onRemoved = nodeType.prototype.onRemoved;
    nodeType.prototype.onRemoved = function () {
      this.dragpdEditor?.destroy();
      this.dragpdEditor = null;
      return onRemoved?.apply(this, arguments);
    };
  },
});
