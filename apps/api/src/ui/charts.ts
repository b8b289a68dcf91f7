import { type Html, html } from "./html.ts";

export interface Bar {
  /** What the bar's tooltip says it is. */
  label: string;
  value: number | null;
  /** A second, smaller value drawn over the bar (e.g. the median over the 95th percentile). */
  inner?: number | null;
}

const WIDTH = 600;
const HEIGHT = 140;
const AXIS = 28;

/**
 * A bar chart as inline SVG, drawn on the server: no script, no library, and it prints. One bar per entry,
 * scaled to the largest; the axis names the largest value and the first and last labels.
 */
export function barChart({ bars, unit, format, title }: { bars: readonly Bar[]; unit: string; format: (n: number) => string; title: string }): Html {
  const max = Math.max(0, ...bars.map((b) => b.value ?? 0));
  const plot = HEIGHT - AXIS;
  const step = WIDTH / Math.max(1, bars.length);
  const y = (v: number) => (max === 0 ? 0 : (v / max) * (plot - 4));
  const rects = bars.map((bar, i) => {
    const x = (i * step + 1).toFixed(1);
    const w = Math.max(1, step - 2).toFixed(1);
    const tip = bar.value === null ? `${bar.label}: none` : `${bar.label}: ${format(bar.value)}${bar.inner == null ? "" : ` (median ${format(bar.inner)})`}`;
    const outer = bar.value === null ? 0 : y(bar.value);
    const inner = bar.inner == null ? 0 : y(bar.inner);
    return html`<g><title>${tip}</title><rect class="bar" x="${x}" y="${(plot - outer).toFixed(1)}" width="${w}" height="${outer.toFixed(1)}"></rect>${
      bar.inner == null ? "" : html`<rect class="bar-inner" x="${x}" y="${(plot - inner).toFixed(1)}" width="${w}" height="${inner.toFixed(1)}"></rect>`
    }<rect class="hit" x="${x}" y="0" width="${w}" height="${plot}"></rect></g>`;
  });
  return html`<figure class="chart">
  <figcaption>${title}</figcaption>
  <svg viewBox="0 0 ${WIDTH} ${HEIGHT}" role="img" aria-label="${title}">
    <line class="axis" x1="0" y1="${plot}" x2="${WIDTH}" y2="${plot}"></line>
    ${rects}
    <text class="tick" x="2" y="11">${max === 0 ? `0 ${unit}` : `${format(max)}`}</text>
    <text class="tick" x="2" y="${HEIGHT - 8}">${bars[0]?.label ?? ""}</text>
    <text class="tick" x="${WIDTH - 2}" y="${HEIGHT - 8}" text-anchor="end">${bars.at(-1)?.label ?? ""}</text>
  </svg>
</figure>`;
}
