// Draws media/icon.png (128×128 RGBA) with nothing but node:zlib: a terminal prompt tied to a
// cable that ends in an anchor point. Run: node scripts/makeIcon.mjs [out.png]
import { writeFileSync } from 'node:fs';
import { deflateSync } from 'node:zlib';

const SIZE = 128;
const SAMPLES = 4; // supersampling per axis, for smooth edges

const clamp = (v, lo, hi) => Math.max(lo, Math.min(hi, v));
const mix = (a, b, t) => a.map((x, i) => x + (b[i] - x) * t);

function roundedRect(x, y, x0, y0, x1, y1, r) {
  const qx = Math.max(x0 + r - x, 0, x - (x1 - r));
  const qy = Math.max(y0 + r - y, 0, y - (y1 - r));
  return Math.hypot(qx, qy) - r; // < 0 inside
}

function segment(x, y, ax, ay, bx, by) {
  const px = x - ax, py = y - ay, dx = bx - ax, dy = by - ay;
  const t = clamp((px * dx + py * dy) / (dx * dx + dy * dy), 0, 1);
  return Math.hypot(px - dx * t, py - dy * t);
}

/** Distance to an arc of a circle (cx, cy, r) between angles a0 and a1 (radians, a0 < a1). */
function arc(x, y, cx, cy, r, a0, a1) {
  let a = Math.atan2(y - cy, x - cx);
  while (a < a0) a += 2 * Math.PI;
  if (a <= a1) return Math.abs(Math.hypot(x - cx, y - cy) - r);
  const end = (ang) => Math.hypot(x - (cx + r * Math.cos(ang)), y - (cy + r * Math.sin(ang)));
  return Math.min(end(a0), end(a1));
}

const BG_TOP = [30, 48, 78];
const BG_BOTTOM = [17, 27, 45];
const PROMPT = [236, 241, 247];
const CABLE = [62, 201, 176];

function shade(x, y) {
  // Background tile with a vertical gradient.
  if (roundedRect(x, y, 4, 4, 124, 124, 26) > 0) return [0, 0, 0, 0];
  let color = mix(BG_TOP, BG_BOTTOM, y / SIZE);
  // The cable: from the cursor, a loop up to an anchor at the top right.
  const cable = Math.min(segment(x, y, 74, 92, 88, 92), arc(x, y, 88, 66, 26, -Math.PI / 2, Math.PI / 2));
  if (cable < 4.5) color = CABLE;
  if (Math.hypot(x - 88, y - 40) < 9) color = CABLE;
  if (Math.hypot(x - 88, y - 40) < 4) color = mix(BG_TOP, BG_BOTTOM, 0.3);
  // The prompt: a chevron and the cursor line.
  const chevron = Math.min(segment(x, y, 30, 44, 52, 64), segment(x, y, 52, 64, 30, 84));
  if (chevron < 6) color = PROMPT;
  if (segment(x, y, 58, 92, 74, 92) < 5) color = PROMPT;
  return [...color, 255];
}

const raw = Buffer.alloc(SIZE * (SIZE * 4 + 1));
for (let y = 0; y < SIZE; y++) {
  raw[y * (SIZE * 4 + 1)] = 0; // filter: none
  for (let x = 0; x < SIZE; x++) {
    const sum = [0, 0, 0, 0];
    for (let sy = 0; sy < SAMPLES; sy++) {
      for (let sx = 0; sx < SAMPLES; sx++) {
        const [r, g, b, a] = shade(x + (sx + 0.5) / SAMPLES, y + (sy + 0.5) / SAMPLES);
        sum[0] += r * a; sum[1] += g * a; sum[2] += b * a; sum[3] += a;
      }
    }
    const o = y * (SIZE * 4 + 1) + 1 + x * 4;
    const alpha = sum[3] / (SAMPLES * SAMPLES);
    for (let i = 0; i < 3; i++) raw[o + i] = sum[3] > 0 ? Math.round(sum[i] / sum[3]) : 0;
    raw[o + 3] = Math.round(alpha);
  }
}

const crcTable = Array.from({ length: 256 }, (_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c >>> 0;
});
const crc32 = (buf) => {
  let c = 0xffffffff;
  for (const byte of buf) c = crcTable[(c ^ byte) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
};
function chunk(type, data) {
  const length = Buffer.alloc(4);
  length.writeUInt32BE(data.length);
  const body = Buffer.concat([Buffer.from(type, 'ascii'), data]);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(body));
  return Buffer.concat([length, body, crc]);
}
const header = Buffer.alloc(13);
header.writeUInt32BE(SIZE, 0);
header.writeUInt32BE(SIZE, 4);
header[8] = 8; // bit depth
header[9] = 6; // RGBA
const png = Buffer.concat([
  Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
  chunk('IHDR', header),
  chunk('IDAT', deflateSync(raw, { level: 9 })),
  chunk('IEND', Buffer.alloc(0)),
]);
const out = process.argv[2] ?? new URL('../media/icon.png', import.meta.url).pathname;
writeFileSync(out, png);
console.log(`wrote ${out} (${png.length} bytes)`);
