"""What "works on a phone" means for a page of either UI, checked in the browser (issue #22).

At 390 px the operator UI's signed-in pages were 725 px wide, the top bar's Sign out sat outside
the screen, and the explorer chart's axis labels were drawn over each other. ``problems`` lists
every such fault of the page shown, so one assertion reports them all.
"""

from __future__ import annotations

from typing import Any

PHONE_WIDTHS = (360, 430)

# Runs in the page. Every chart is drawn on a canvas, so its labels are not elements: their boxes
# come from the chart library's own layout (Chart.js's label items, uPlot's axis splits), with
# the text measured in the font they are drawn in.
_PROBLEMS_JS = r"""
(width) => {
  const problems = [];
  const page = document.scrollingElement.scrollWidth;
  if (page > width) problems.push(`the page is ${page} px wide`);

  for (const table of document.querySelectorAll("main table:not(.uplot table)")) {
    let box = table.parentElement, scrolls = false;
    while (box && box !== document.body) {
      const overflow = getComputedStyle(box).overflowX;
      if (overflow === "auto" || overflow === "scroll") { scrolls = true; break; }
      box = box.parentElement;
    }
    const name = table.id || table.className || "a table";
    if (!scrolls) problems.push(`${name} is not in a container that scrolls sideways`);
    else if (box.getBoundingClientRect().right > width + 0.5)
      problems.push(`${name}'s scrolling container ends past the screen`);
  }

  const ctx = document.createElement("canvas").getContext("2d");
  // labels of one axis need a few px between them to read as two; other axes' may touch
  const overlap = (a, b) => {
    const gap = a.axis === b.axis ? 3 : -1;
    return a.l < b.r + gap && b.l < a.r + gap && a.t < b.b + gap && b.t < a.b + gap;
  };
  const rotatedBox = (x, y, w, h, vc, align, rotation) => {
    // the text box as drawn (anchor at x, y; its middle vc below the anchor), rotated about
    // the anchor: its bounding box
    const left = align === "right" || align === "end" ? -w : align === "center" ? -w / 2 : 0;
    const corners = [[left, vc - h / 2], [left + w, vc - h / 2], [left, vc + h / 2], [left + w, vc + h / 2]];
    const c = Math.cos(rotation), s = Math.sin(rotation);
    const xs = corners.map(([u, v]) => x + u * c - v * s), ys = corners.map(([u, v]) => y + u * s + v * c);
    return { l: Math.min(...xs), r: Math.max(...xs), t: Math.min(...ys), b: Math.max(...ys) };
  };
  const labelsClash = (chart, boxes, sameAxisOnly) => {
    for (let i = 0; i < boxes.length; i++)
      for (let j = i + 1; j < boxes.length; j++) {
        const a = boxes[i], b = boxes[j];
        if (sameAxisOnly && a.axis !== b.axis) continue;
        const clash = a.axis === b.axis && a.rotation !== 0 ? rotatedClash(a, b) : overlap(a, b);
        if (clash) problems.push(`${chart}: labels "${a.text}" and "${b.text}" overlap`);
      }
  };
  // two labels of one axis, rotated alike: apart if their baselines are a line apart
  const rotatedClash = (a, b) =>
    Math.abs((a.x - b.x) * Math.sin(a.rotation) - (a.y - b.y) * Math.cos(a.rotation)) < a.h - 1 &&
    overlap(a, b);

  if (window.Chart) {
    for (const canvas of document.querySelectorAll("canvas")) {
      const chart = window.Chart.getChart(canvas);
      if (!chart) continue;
      const boxes = [];
      for (const scale of Object.values(chart.scales)) {
        if (!scale.options.display || !scale.options.ticks.display) continue;
        for (const item of scale.getLabelItems()) {
          const o = item.options, font = item.font;
          ctx.font = font.string;
          const lines = [].concat(item.label).map(String);
          const w = Math.max(...lines.map((line) => ctx.measureText(line).width));
          const h = font.lineHeight * lines.length;
          const base = o.textBaseline === "top" ? h / 2 : o.textBaseline === "bottom" ? -h / 2 : 0;
          const [x, y] = o.translation;
          const box = rotatedBox(x, y, w, h, item.textOffset + base, o.textAlign, o.rotation);
          boxes.push({ ...box, x, y, h, rotation: o.rotation, axis: scale.id, text: lines.join(" ") });
        }
      }
      labelsClash(`chart ${canvas.dataset.chart || canvas.id || ""}`, boxes, false);
      if (chart.width > width) problems.push(`chart ${canvas.dataset.chart} is ${chart.width} px wide`);
    }
  }
  for (const holder of document.querySelectorAll(".chart")) {
    const plot = holder.uplot;  // the local UI's charts (web/static/app.js)
    if (!plot) continue;
    const boxes = [];
    plot.axes.forEach((axis, n) => {
      if (!axis.show || !axis._values) return;
      ctx.font = (axis.font ? axis.font[0] : "12px sans-serif").replace(
        /([0-9.]+)px/, (_, px) => `${parseFloat(px) / (window.devicePixelRatio || 1)}px`);
      const h = parseFloat(/([0-9.]+)px/.exec(ctx.font)[1]) * 1.2;
      axis._values.forEach((text, i) => {
        if (text == null || text === "") return;
        const lines = String(text).split("\n");
        const w = Math.max(...lines.map((line) => ctx.measureText(line).width));
        const at = plot.valToPos(axis._splits[i], axis.scale, false);
        const box = axis.side % 2 === 0
          ? { l: at - w / 2, r: at + w / 2, t: 0, b: h * lines.length }
          : { l: 0, r: w, t: at - h / 2, b: at + h / 2 };
        boxes.push({ ...box, x: at, y: 0, h, rotation: 0, axis: n, text: lines.join(" ") });
      });
    });
    labelsClash(`chart ${holder.id || holder.className}`, boxes, true);
    if (plot.width > width) problems.push(`a chart is ${plot.width} px wide`);
  }
  return problems;
}
"""


def problems(page: Any, width: int, sign_out: str) -> list[str]:
    """What keeps the page shown from working at ``width`` px: its own width, the tables, the
    charts' labels, and whether ``sign_out`` (a selector) is on the screen and can be clicked."""
    found: list[str] = list(page.evaluate(_PROBLEMS_JS, width))
    button = page.locator(sign_out)
    if not button.is_visible():
        found.append("Sign out is not visible")
        return found
    box = button.bounding_box()
    if box is None or box["x"] < 0 or box["x"] + box["width"] > width + 0.5:
        found.append(f"Sign out is off the screen ({box})")
    try:
        button.click(trial=True, timeout=3000)  # visible, enabled, not covered by anything
    except Exception as err:  # Playwright's TimeoutError names what is in the way
        found.append(f"Sign out cannot be clicked: {str(err).splitlines()[0]}")
    return found
