const UNITS: Record<string, number> = { s: 1, m: 60, h: 3_600, d: 86_400, w: 604_800 };

/** Parses a retention like `7d`, `12h`, `90m`, `30s` or `1w` into seconds. */
export function parseDuration(text: string): number {
  const match = /^(\d+)\s*([smhdw])$/.exec(text.trim());
  if (!match) throw new Error(`"${text}" is not a duration: use a number and a unit s, m, h, d or w (e.g. 7d)`);
  const seconds = Number(match[1]) * UNITS[match[2]!]!;
  if (seconds <= 0) throw new Error(`"${text}" must be longer than zero`);
  return seconds;
}

/** Parses a wait like `500ms`, `2s` or `10m` (the units of parseDuration, plus ms) into milliseconds. */
export function parseMilliseconds(text: string): number {
  const ms = /^(\d+)\s*ms$/.exec(text.trim());
  if (!ms) return parseDuration(text) * 1000;
  const value = Number(ms[1]);
  if (value <= 0) throw new Error(`"${text}" must be longer than zero`);
  return value;
}
