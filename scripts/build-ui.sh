#!/usr/bin/env bash
# Builds the web UI into internal/webui/dist, which `go build` embeds in
# polyvirt: the front-end packages from npm as web/package-lock.json pins them
# (npm ci), a syntax check of the UI's modules (node --check), then web/'s
# files and the parts of the packages the UI loads, copied as they are: plain
# ES modules, no bundler. Runs in a few seconds; up.sh and test.sh run it.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
ensure_node

web=web
out=internal/webui/dist
if [ ! -f "$web/node_modules/.package-lock.json" ] || [ "$web/package-lock.json" -nt "$web/node_modules/.package-lock.json" ]; then
	log "web UI: npm ci (the packages of web/package-lock.json)"
	(cd "$web" && npm ci --no-audit --no-fund --ignore-scripts --loglevel=error) || die "npm ci failed in $web"
fi

log "web UI: checking the modules"
while IFS= read -r f; do
	node --check "$f" || die "$f does not parse"
done < <(find "$web/js" -name '*.js' | sort)

log "web UI: copying into $out"
find "$out" -mindepth 1 ! -name README.md -exec rm -rf {} +
cp -r "$web/css" "$web/js" "$web/img" "$out/"
# Each page's modules fetched at once rather than import after import: the
# first page's (not the console's), and the console page's own (noVNC's
# are listed in vendor/novnc-modules.js, below, and preloaded by the page
# for a graphical console only, by the list the page preloads too).
preload() {
	sed 's|.*|<link rel="modulepreload" href="/ui/&">|'
}
links=$(cd "$web" && find js -name '*.js' ! -path 'js/console/*' ! -name app.js | sort | preload)
awk -v links="$links" '/<!-- modulepreload:/ { print links; next } { print }' "$web/index.html" >"$out/index.html"
links=$( (cd "$web" && printf '%s\n' js/dom.js js/api.js js/session.js js/ui.js; echo vendor/novnc-modules.js) | preload)
awk -v links="$links" '/<!-- modulepreload:/ { print links; next } { print }' "$web/console.html" >"$out/console.html"
novnc="$web/node_modules/@novnc/novnc"
xterm="$web/node_modules/@xterm/xterm"
mkdir -p "$out/vendor/novnc/vendor" "$out/vendor/xterm"
cp -r "$novnc/core" "$out/vendor/novnc/"
cp -r "$novnc/vendor/pako" "$out/vendor/novnc/vendor/"
cp "$novnc/LICENSE.txt" "$out/vendor/novnc/"
# noVNC's modules, which the console page fetches at once for a graphical
# console (its import graph is five levels deep).
{
	echo "// Written by scripts/build-ui.sh: noVNC's modules."
	echo "export default ["
	(cd "$out" && find vendor/novnc -name '*.js' | sort | sed 's|.*|  "/ui/&",|')
	echo "];"
} >"$out/vendor/novnc-modules.js"
# The source map is not shipped: no reference to it either.
sed '/^\/\/# sourceMappingURL=/d' "$xterm/lib/xterm.mjs" >"$out/vendor/xterm/xterm.mjs"
cp "$xterm/css/xterm.css" "$xterm/LICENSE" "$out/vendor/xterm/"
log "web UI: built ($(du -sh "$out" | cut -f1), $(find "$out" -type f | wc -l) files)"
