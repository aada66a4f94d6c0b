#!/usr/bin/env bash
# End-to-end checks of the command-line tools: a good run, and one-line errors with non-zero
# exit codes for bad flags and bad files.  Usage: tests/cli_test.sh BUILD_DIR
set -u
bin=$1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fails=0

# expect CODE PATTERN -- command...: the command exits with CODE and its stderr matches PATTERN.
expect() {
  local code=$1 pattern=$2
  shift 3
  "$@" >"$tmp/out" 2>"$tmp/err"
  local got=$?
  if [ "$got" -ne "$code" ] || { [ -n "$pattern" ] && ! grep -qE -- "$pattern" "$tmp/err"; }; then
    echo "FAIL: $* -> exit $got (want $code), stderr:"; sed 's/^/    /' "$tmp/err"
    fails=$((fails + 1))
  else
    echo "ok: $*"
  fi
}

expect 2 "--out is required" -- "$bin/vexgen" --shape tiny
expect 2 "unknown option '--bogus'" -- "$bin/vexgen" --bogus --out "$tmp/x"
expect 2 "unknown shape 'huge'" -- "$bin/vexgen" --shape huge --out "$tmp/x"
expect 2 "not a multiple of num_key_value_heads" -- "$bin/vexgen" --kv-heads 3 --out "$tmp/x"
expect 0 "wrote" -- "$bin/vexgen" --shape tiny --layers 2 --out "$tmp/ck"

expect 0 "" -- "$bin/vexrun" --weights "$tmp/ck" --tokens 1,2,3 --logits "$tmp/l.npy"
grep -q "position 2 top-5:" "$tmp/out" || { echo "FAIL: vexrun printed no top-5"; fails=$((fails + 1)); }
size=$(stat -c %s "$tmp/l.npy")
want=$((128 + 3 * 201088 * 4))  # 128-byte .npy header + float32 [3, 201088]
[ "$size" -eq "$want" ] || { echo "FAIL: logits.npy is $size bytes, want $want"; fails=$((fails + 1)); }

expect 2 "unknown option '--nope'" -- "$bin/vexrun" --nope
expect 2 "--tokens: 'x' is not an integer" -- "$bin/vexrun" --weights "$tmp/ck" --tokens 1,x
expect 1 "--weights DIR is required" -- "$bin/vexrun" --tokens 1
expect 1 "/nonexistent: not a directory" -- "$bin/vexrun" --weights /nonexistent --tokens 1
expect 1 "token id 201088 at position 1 is outside the vocabulary" -- "$bin/vexrun" --weights "$tmp/ck" --tokens 5,201088
cp -r "$tmp/ck" "$tmp/bad"
truncate -s -100 "$tmp/bad/model-00001-of-00001.safetensors"
expect 1 "model-00001-of-00001.safetensors: tensor 'lm_head.weight'" -- "$bin/vexrun" --weights "$tmp/bad" --tokens 1
sed -i 's/"hidden_size": 64/"hidden_size": "64"/' "$tmp/bad/config.json"
expect 1 "config.json: key 'hidden_size': expected a positive integer" -- "$bin/vexrun" --weights "$tmp/bad" --tokens 1

[ "$fails" -eq 0 ] && echo "all CLI checks passed" || { echo "$fails CLI checks failed"; exit 1; }
