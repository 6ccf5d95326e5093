// The loss curve: an inline SVG drawn from the operation's snapshots (no library, no CDN).

const NS = "http://www.w3.org/2000/svg";
const W = 640, H = 260, PAD = { left: 56, right: 16, top: 16, bottom: 36 };

function s(tag, attrs = {}, text) {
  const el = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
  if (text !== undefined) el.textContent = text;
  return el;
}

function ticks(lo, hi, count) {
  if (hi <= lo) return [lo];
  const raw = (hi - lo) / count;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((v) => v >= raw) || raw;
  const out = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) out.push(+v.toPrecision(12));
  return out;
}

// snapshots: [{step, epoch, meanLoss}], totalSteps: the run's length (the x axis).
export function lossChart(snapshots, totalSteps) {
  const svg = s("svg", {
    viewBox: `0 0 ${W} ${H}`, class: "chart", role: "img",
    "aria-label": snapshots.length ? `Loss curve over ${snapshots.length} steps` : "No loss yet",
  });
  const pw = W - PAD.left - PAD.right, ph = H - PAD.top - PAD.bottom;
  const points = snapshots.map((p) => ({ step: Number(p.step), epoch: p.epoch, loss: Number(p.meanLoss) }));
  const maxStep = Math.max(totalSteps || 0, ...points.map((p) => p.step), 1);
  const losses = points.map((p) => p.loss);
  let lo = losses.length ? Math.min(...losses) : 0, hi = losses.length ? Math.max(...losses) : 1;
  const margin = (hi - lo) * 0.08 || Math.abs(hi) * 0.1 || 1;
  lo = Math.max(0, lo - margin);
  hi += margin;
  const x = (step) => PAD.left + (maxStep <= 1 ? pw : ((step - 1) / (maxStep - 1)) * pw);
  const y = (loss) => PAD.top + (1 - (loss - lo) / (hi - lo)) * ph;

  const grid = s("g", { class: "grid" });
  for (const t of ticks(lo, hi, 4)) {
    grid.append(s("line", { x1: PAD.left, x2: W - PAD.right, y1: y(t), y2: y(t) }));
    grid.append(s("text", { x: PAD.left - 8, y: y(t) + 4, "text-anchor": "end" }, +t.toFixed(4)));
  }
  for (const t of ticks(1, maxStep, 5).filter((v) => Number.isInteger(v))) {
    grid.append(s("text", { x: x(t), y: H - PAD.bottom + 18, "text-anchor": "middle" }, t));
  }
  grid.append(s("text", { x: PAD.left + pw / 2, y: H - 4, "text-anchor": "middle", class: "axis-label" }, "step"));
  grid.append(s("text", { x: 12, y: PAD.top + ph / 2, "text-anchor": "middle", class: "axis-label",
    transform: `rotate(-90 12 ${PAD.top + ph / 2})` }, "loss"));
  svg.append(grid);
  svg.append(s("rect", { x: PAD.left, y: PAD.top, width: pw, height: ph, class: "frame" }));

  if (!points.length) {
    svg.append(s("text", { x: PAD.left + pw / 2, y: PAD.top + ph / 2, "text-anchor": "middle", class: "empty" },
      "The curve appears with the first step"));
    return svg;
  }
  const line = points.map((p, i) => `${i ? "L" : "M"}${x(p.step).toFixed(1)},${y(p.loss).toFixed(1)}`).join("");
  const last = points[points.length - 1];
  svg.append(s("path", { d: `${line}L${x(last.step).toFixed(1)},${PAD.top + ph}L${x(points[0].step).toFixed(1)},${PAD.top + ph}Z`, class: "area" }));
  svg.append(s("path", { d: line, class: "line" }));
  svg.append(s("circle", { cx: x(last.step), cy: y(last.loss), r: 4, class: "last" }));

  // Hover: the nearest step's loss.
  const cursor = s("g", { class: "cursor", visibility: "hidden" });
  const dot = s("circle", { r: 4 });
  const label = s("text", { "text-anchor": "middle" });
  cursor.append(dot, label);
  svg.append(cursor);
  svg.addEventListener("mousemove", (ev) => {
    const box = svg.getBoundingClientRect();
    const px = ((ev.clientX - box.left) / box.width) * W;
    let best = points[0];
    for (const p of points) if (Math.abs(x(p.step) - px) < Math.abs(x(best.step) - px)) best = p;
    dot.setAttribute("cx", x(best.step));
    dot.setAttribute("cy", y(best.loss));
    label.setAttribute("x", Math.min(Math.max(x(best.step), PAD.left + 60), W - PAD.right - 60));
    label.setAttribute("y", Math.max(y(best.loss) - 10, PAD.top + 12));
    label.textContent = `step ${best.step} · epoch ${best.epoch} · loss ${best.loss.toFixed(4)}`;
    cursor.setAttribute("visibility", "visible");
  });
  svg.addEventListener("mouseleave", () => cursor.setAttribute("visibility", "hidden"));
  return svg;
}
