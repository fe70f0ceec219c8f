#!/usr/bin/env bash
# Render one page of the built documentation site in a real headless browser and save a screenshot,
# to look at how it renders (navigation, tables, code blocks, API signatures).
#
#   make docs                                   # builds site/ (strict)
#   tools/docs_screenshot.sh [PAGE] [OUT.png]   # default: training/ → site-training.png
#
# Needs Debian's chromium (apt-get install chromium). The page is read from site/ through
# file://, with every network and background feature of the browser off.
set -euo pipefail
page="${1:-training/}"
out="${2:-site-training.png}"
root="$(cd "$(dirname "$0")/.." && pwd)"
file="$root/site/${page%/}/index.html"
[[ "$page" == *.html ]] && file="$root/site/$page"
if [[ ! -f "$file" ]]; then
    echo "docs_screenshot: $file not found; run 'make docs' first" >&2
    exit 2
fi
chromium --headless --no-sandbox --disable-gpu --disable-background-networking --disable-component-update \
    --disable-sync --no-first-run --hide-scrollbars --window-size=1280,1800 \
    --screenshot="$out" "file://$file" 2>/dev/null
test -s "$out"
echo "docs_screenshot: $file → $out"
