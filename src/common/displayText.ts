/**
 * Text from outside (hosts, ssh config, other devices, users) that ends up in a message or a tab.
 * C0 and C1 controls (U+009B is an 8-bit CSI that xterm honours) and bidi overrides must never
 * reach the screen raw: status lines strip them, error messages escape them.
 */
const UNSAFE_DISPLAY = /[\u0000-\u001f\u007f-\u009f\u200e\u200f\u202a-\u202e\u2066-\u2069]/g;

/** For text drawn in a terminal or a tree: every unsafe character becomes a space. */
export function stripControls(text: string): string {
  return text.replace(UNSAFE_DISPLAY, ' ');
}

/** For quoting a rejected value in an error message: JSON-quoted, unsafe characters \u-escaped. */
export function quoteForMessage(value: unknown, maxLength = 100): string {
  return JSON.stringify(String(value).slice(0, maxLength)).replace(UNSAFE_DISPLAY, (char) => `\\u${char.charCodeAt(0).toString(16).padStart(4, '0')}`);
}
