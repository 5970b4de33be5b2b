// ANSI SGR colours of terminal output turned into styled segments; other escapes dropped.

export interface Segment {
  text: string;
  fg?: string;
  bg?: string;
  bold?: boolean;
  italic?: boolean;
  underline?: boolean;
}

const BASE = ["#1e1e1e", "#e05561", "#3fb950", "#d9a400", "#4c9aff", "#c678dd", "#2bbac5", "#d0d0d0"];
const BRIGHT = ["#7f848e", "#ff7b86", "#56d364", "#f2cc60", "#79b8ff", "#d2a8ff", "#56d4dd", "#ffffff"];

function color256(n: number): string | undefined {
  if (n < 8) return BASE[n];
  if (n < 16) return BRIGHT[n - 8];
  if (n < 232) {
    const v = n - 16;
    const c = (x: number) => (x === 0 ? 0 : 55 + x * 40);
    return `rgb(${c(Math.floor(v / 36))},${c(Math.floor(v / 6) % 6)},${c(v % 6)})`;
  }
  if (n < 256) {
    const g = 8 + (n - 232) * 10;
    return `rgb(${g},${g},${g})`;
  }
  return undefined;
}

// CSI sequences (ESC [ ... letter) and OSC sequences (ESC ] ... BEL or ESC \).
// eslint-disable-next-line no-control-regex
const ESCAPES = /\u001b\[([0-9;?]*)([A-Za-z])|\u001b\][^\u0007\u001b]*(?:\u0007|\u001b\\)|\u001b[@-Z\\-_]/g;

/** The text without escape sequences (what search and download-free copies see). */
export function stripAnsi(text: string): string {
  return text.includes("\u001b") ? text.replace(ESCAPES, "") : text;
}

export function parseAnsi(text: string): Segment[] {
  if (!text.includes("\u001b")) return [{ text }];
  const out: Segment[] = [];
  let state: Omit<Segment, "text"> = {};
  let last = 0;
  ESCAPES.lastIndex = 0;
  for (let m = ESCAPES.exec(text); m; m = ESCAPES.exec(text)) {
    if (m.index > last) out.push({ text: text.slice(last, m.index), ...state });
    last = m.index + m[0].length;
    if (m[2] !== "m") continue;
    const codes = (m[1] || "0").split(";").map((c) => Number(c || "0"));
    for (let i = 0; i < codes.length; i++) {
      const c = codes[i]!;
      if (c === 0) state = {};
      else if (c === 1) state = { ...state, bold: true };
      else if (c === 3) state = { ...state, italic: true };
      else if (c === 4) state = { ...state, underline: true };
      else if (c === 22) state = { ...state, bold: false };
      else if (c === 23) state = { ...state, italic: false };
      else if (c === 24) state = { ...state, underline: false };
      else if (c >= 30 && c <= 37) state = { ...state, fg: BASE[c - 30] };
      else if (c >= 90 && c <= 97) state = { ...state, fg: BRIGHT[c - 90] };
      else if (c >= 40 && c <= 47) state = { ...state, bg: BASE[c - 40] };
      else if (c >= 100 && c <= 107) state = { ...state, bg: BRIGHT[c - 100] };
      else if (c === 39) state = { ...state, fg: undefined };
      else if (c === 49) state = { ...state, bg: undefined };
      else if ((c === 38 || c === 48) && codes[i + 1] === 5) {
        const col = color256(codes[i + 2] ?? 0);
        state = c === 38 ? { ...state, fg: col } : { ...state, bg: col };
        i += 2;
      } else if ((c === 38 || c === 48) && codes[i + 1] === 2) {
        const col = `rgb(${codes[i + 2] ?? 0},${codes[i + 3] ?? 0},${codes[i + 4] ?? 0})`;
        state = c === 38 ? { ...state, fg: col } : { ...state, bg: col };
        i += 4;
      }
    }
  }
  if (last < text.length) out.push({ text: text.slice(last), ...state });
  return out.filter((s) => s.text.length > 0);
}
