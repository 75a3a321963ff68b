/**
 * Bounds a scrollback replay by lines and by bytes, keeping the newest part, and turns bare line
 * feeds into CRLF so that the terminal starts each replayed line in column 0.
 */
export function boundReplay(captured: string, maxLines: number, maxBytes: number): string {
  if (maxLines <= 0 || maxBytes <= 0) return '';
  let lines = captured.replace(/\r?\n$/, '').split(/\r?\n/);
  // tmux pads the visible screen with empty rows; they carry nothing worth replaying.
  while (lines.length > 0 && lines[lines.length - 1].trim() === '') lines.pop();
  if (lines.length > maxLines) lines = lines.slice(lines.length - maxLines);
  let text = lines.join('\r\n');
  if (Buffer.byteLength(text, 'utf8') > maxBytes) {
    const bytes = Buffer.from(text, 'utf8');
    let start = bytes.length - maxBytes;
    // Start at a line start so that no escape sequence or character is cut in half.
    if (bytes[start - 1] !== 0x0a) {
      const newline = bytes.indexOf(0x0a, start);
      start = newline >= 0 ? newline + 1 : bytes.length;
    }
    text = bytes.subarray(start).toString('utf8');
  }
  return text;
}
