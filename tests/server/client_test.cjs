// vexserve driven by the official `openai` npm package (pinned in tests/server/run.sh), against
// a server on the demo model with the calculator attached and an API key:
//   node client_test.cjs BASE_URL API_KEY OPENAI_MODULE_DIR [SERVER_PID]
// With the server's pid, the load check also reads its memory from /proc.
const [baseURL, apiKey, moduleDir, serverPid] = process.argv.slice(2);
const fs = require("node:fs");
const OpenAI = require(moduleDir);
const assert = require("node:assert/strict");

const client = new OpenAI({ baseURL, apiKey, maxRetries: 0 });
const model = "vex-demo";
let failures = 0;
async function check(name, fn) {
  try {
    await fn();
    console.log(`ok: ${name}`);
  } catch (e) {
    failures++;
    console.log(`FAIL: ${name}: ${e.stack || e}`);
  }
}
async function streamText(params, onChunk) {
  const stream = await client.chat.completions.create({ ...params, stream: true });
  let content = "", reasoning = "", finish = null, usage = null, experts = null, n = 0;
  for await (const chunk of stream) {
    const c = chunk.choices[0];
    if (c.delta.content) content += c.delta.content;
    if (c.delta.reasoning) reasoning += c.delta.reasoning;
    if (c.finish_reason) finish = c.finish_reason;
    if (chunk.usage) usage = chunk.usage;
    if (chunk.vex_experts) experts = chunk.vex_experts;
    if (onChunk && onChunk(++n, stream) === false) break;
  }
  return { content, reasoning, finish, usage, experts };
}
const question = { model, temperature: 0, messages: [{ role: "user", content: "What is 127 * 89?" }] };

(async () => {
  await check("models.list names the model", async () => {
    const list = await client.models.list();
    assert.deepEqual(list.data.map((m) => m.id), [model]);
    assert.equal((await client.models.retrieve(model)).id, model);
  });

  await check("chat: the calculator's exact answer in content, the analysis apart", async () => {
    const r = await client.chat.completions.create(question);
    const m = r.choices[0].message;
    assert.match(m.content, /11303/);
    assert.ok(!m.content.includes("<|"), m.content);
    assert.ok(m.reasoning && !m.content.includes(m.reasoning), JSON.stringify(m));
    assert.equal(m.reasoning_content, m.reasoning);
    assert.equal(r.choices[0].finish_reason, "stop");
    assert.ok(r.usage.prompt_tokens > 0 && r.usage.completion_tokens > 0);
    assert.equal(r.vex_experts[0].expert, "calculator");
    assert.equal(r.vex_experts[0].output, "11303");
  });

  await check("chat: virtual_experts false leaves the model alone", async () => {
    const r = await client.chat.completions.create({ ...question, virtual_experts: false });
    assert.ok(!r.choices[0].message.content.includes("11303"), r.choices[0].message.content);
    assert.equal(r.vex_experts, undefined);
  });

  await check("chat: streamed deltas equal the whole answer", async () => {
    const whole = await client.chat.completions.create(question);
    const s = await streamText(question);
    assert.equal(s.content, whole.choices[0].message.content);
    assert.equal(s.reasoning, whole.choices[0].message.reasoning);
    assert.equal(s.finish, "stop");
    assert.equal(s.usage.completion_tokens, whole.usage.completion_tokens);
    assert.equal(s.experts[0].output, "11303");
  });

  await check("chat: max_tokens and reasoning_effort", async () => {
    const r = await client.chat.completions.create({ ...question, max_tokens: 3, reasoning_effort: "low" });
    assert.equal(r.choices[0].finish_reason, "length");
    assert.equal(r.usage.completion_tokens, 3);
  });

  await check("stop strings end the text before them, streamed alike", async () => {
    for (const stop of ["=", ["89 =", "zzz"]]) {
      const p = { ...question, virtual_experts: false, stop };
      const r = await client.chat.completions.create(p);
      const want = stop === "=" ? "127 * 89 " : "127 * ";
      assert.equal(r.choices[0].message.content, want);
      assert.equal(r.choices[0].finish_reason, "stop");
      const s = await streamText(p);
      assert.equal(s.content, want);
      assert.equal(s.finish, "stop");
    }
    const c = await client.completions.create({ model, prompt: "127 * 89 = ", temperature: 0, max_tokens: 8, stop: "\n" });
    assert.equal(c.choices[0].text, "11303");
    assert.equal(c.choices[0].finish_reason, "stop");
    await assert.rejects(client.chat.completions.create({ ...question, stop: ["a", "b", "c", "d", "e"] }),
      (e) => e.status === 400 && e.param === "stop");
  });

  await check("logprobs: the sampled tokens and the top alternatives", async () => {
    const r = await client.chat.completions.create({ ...question, virtual_experts: false, logprobs: true, top_logprobs: 3 });
    const lp = r.choices[0].logprobs.content;
    assert.equal(lp.map((e) => e.token).join(""), r.choices[0].message.content);
    for (const e of lp) {
      assert.ok(e.logprob <= 0 && e.top_logprobs.length === 3, JSON.stringify(e));
      // greedy: the sampled token is the most likely one
      assert.equal(e.top_logprobs[0].token, e.token);
      assert.ok(Math.abs(e.top_logprobs[0].logprob - e.logprob) < 1e-6);
      assert.ok(e.top_logprobs[1].logprob <= e.top_logprobs[0].logprob);
    }
    const s = await client.chat.completions.create({ ...question, virtual_experts: false, logprobs: true, stream: true });
    let streamed = [];
    for await (const c of s) if (c.choices[0].logprobs) streamed = streamed.concat(c.choices[0].logprobs.content);
    assert.deepEqual(streamed.map((e) => e.logprob), lp.map((e) => e.logprob));
    // With a stop string, the tokens whose text was held back still get their entries.
    for (const stop of [["89 ="], ["never written, and longer than the whole answer"]]) {
      const stopped = { ...question, virtual_experts: false, logprobs: true, stop };
      const whole = (await client.chat.completions.create(stopped)).choices[0].logprobs.content;
      let parts = [];
      for await (const c of await client.chat.completions.create({ ...stopped, stream: true }))
        if (c.choices[0].logprobs) parts = parts.concat(c.choices[0].logprobs.content);
      assert.ok(whole.length > 0);
      assert.deepEqual(parts.map((e) => e.token), whole.map((e) => e.token), JSON.stringify(stop));
    }
    const c = await client.completions.create({ model, prompt: "127 * 89 = ", temperature: 0, max_tokens: 4, logprobs: 2 });
    assert.equal(c.choices[0].logprobs.tokens.join(""), c.choices[0].text);
    // the calculator's tokens were not sampled: certain
    assert.deepEqual(c.choices[0].logprobs.token_logprobs.slice(0, 1), [0]);
    await assert.rejects(client.chat.completions.create({ ...question, top_logprobs: 3 }),
      (e) => e.status === 400 && e.param === "top_logprobs");
    // 2^32 + 3 read as 3 through a 32-bit cast before.
    await assert.rejects(
      client.chat.completions.create({ ...question, logprobs: true, top_logprobs: 4294967299 }),
      (e) => e.status === 400 && e.param === "top_logprobs");
    await assert.rejects(client.chat.completions.create({ ...question, seed: 1.5 }),
      (e) => e.status === 400 && e.param === "seed");
    // Fields of the wrong JSON type are the client's error, named where the server reads them by
    // name, else by nlohmann's type error (they were 500s).
    await assert.rejects(client.chat.completions.create({ ...question, stream: "yes" }),
      (e) => e.status === 400 && e.param === "stream");
    await assert.rejects(
      client.chat.completions.create({ ...question, messages: [{ role: "user", content: "hi", type: 5 }] }),
      (e) => e.status === 400 && /wrong JSON type/.test(e.message));
    // A negative seed is an integer like any other (cast from a double before: undefined).
    const negative = await client.chat.completions.create({ ...question, seed: -7, max_tokens: 2 });
    assert.equal(negative.choices.length, 1);
  });

  await check("completions: raw text", async () => {
    const r = await client.completions.create({ model, prompt: "127 * 89 = ", temperature: 0, max_tokens: 4 });
    assert.match(r.choices[0].text, /^11303/);
    assert.equal(r.choices[0].finish_reason, "length");
    // The calculator's answer is whole and not counted by max_tokens: 4 sampled tokens after it.
    assert.ok(r.usage.vex_injected_tokens > 0);
    assert.equal(r.usage.completion_tokens, 4 + r.usage.vex_injected_tokens);
    // ignore_eos (vLLM's extension, for benchmarks): the end token does not stop the answer.
    const long = await client.completions.create({ model, prompt: "127 * 89 = ", temperature: 0, max_tokens: 60, ignore_eos: true });
    assert.equal(long.usage.completion_tokens, 60 + long.usage.vex_injected_tokens);
    assert.equal(long.choices[0].finish_reason, "length");
    await assert.rejects(client.completions.create({ model, prompt: "x", ignore_eos: 1 }),
      (e) => e.status === 400 && e.param === "ignore_eos");
  });

  await check("responses: input, instructions, reasoning, streamed alike", async () => {
    const p = { model, input: "What is 127 * 89?", temperature: 0 };
    const r = await client.responses.create(p);
    assert.equal(r.status, "completed");
    assert.match(r.output_text, /11303/);
    assert.ok(r.output.some((o) => o.type === "reasoning" && o.content[0].text.length > 0));
    assert.equal(r.vex_experts[0].output, "11303");
    const stream = await client.responses.create({ ...p, stream: true });
    let text = "", completed = null, created = false;
    for await (const ev of stream) {
      if (ev.type === "response.created") created = true;
      if (ev.type === "response.output_text.delta") text += ev.delta;
      if (ev.type === "response.completed") completed = ev.response;
    }
    assert.ok(created);
    assert.equal(text, r.output_text);
    assert.equal(completed.usage.output_tokens, r.usage.output_tokens);
    const short = await client.responses.create({ ...p, max_output_tokens: 3, instructions: "Answer briefly.",
                                                  reasoning: { effort: "low" } });
    assert.equal(short.status, "incomplete");
    assert.equal(short.incomplete_details.reason, "max_output_tokens");
    const messages = await client.responses.create({ model, temperature: 0,
      input: [{ role: "user", content: [{ type: "input_text", text: "What is 127 * 89?" }] }] });
    assert.equal(messages.output_text, r.output_text);
    await assert.rejects(client.responses.create({ model, input: 5 }), (e) => e.status === 400 && e.param === "input");
  });

  // The demo model was not trained on tool calls, so a call is forced by naming the function
  // in tool_choice (the prompt then ends with the call's header and the model writes the
  // arguments); the path from the model's tokens to tool_calls, streamed and not, is the one a
  // model that calls on its own takes.
  const weather = { type: "object", properties: { city: { type: "string", description: "City name" } }, required: ["city"] };
  await check("tools: a function call, streamed alike, and its result in the history", async () => {
    const tools = [{ type: "function", function: { name: "get_weather", description: "Gets the weather.", parameters: weather } }];
    const forced = { model, temperature: 0, max_tokens: 12, tools, messages: [{ role: "user", content: "Weather in Paris?" }],
                     tool_choice: { type: "function", function: { name: "get_weather" } } };
    const r = await client.chat.completions.create(forced);
    const calls = r.choices[0].message.tool_calls;
    assert.equal(calls.length, 1);
    assert.equal(calls[0].type, "function");
    assert.equal(calls[0].function.name, "get_weather");
    assert.match(calls[0].id, /^call_/);
    assert.ok(["tool_calls", "length"].includes(r.choices[0].finish_reason), r.choices[0].finish_reason);
    const stream = await client.chat.completions.create({ ...forced, stream: true });
    let name = "", args = "", id = "";
    for await (const c of stream)
      for (const tc of c.choices[0]?.delta?.tool_calls ?? []) {
        assert.equal(tc.index, 0);
        if (tc.id) id = tc.id;
        if (tc.function?.name) name = tc.function.name;
        args += tc.function?.arguments ?? "";
      }
    assert.equal(name, "get_weather");
    assert.match(id, /^call_/);
    assert.equal(args, calls[0].function.arguments);
    const history = [{ role: "user", content: "Weather in Paris?" },
                     { role: "assistant", content: null, tool_calls: [{ id: "call_1", type: "function", function: { name: "get_weather", arguments: '{"city":"Paris"}' } }] },
                     { role: "tool", tool_call_id: "call_1", content: '{"sunny":true}' }];
    const back = await client.chat.completions.create({ model, temperature: 0, max_tokens: 8, tools, messages: history });
    assert.equal(back.object, "chat.completion");
    await assert.rejects(client.chat.completions.create({ model, tools, messages: [...history.slice(0, 2), { ...history[2], tool_call_id: "call_9" }] }),
      (e) => e.status === 400 && e.param === "messages");
    await assert.rejects(client.chat.completions.create({ ...forced, tool_choice: "required" }),
      (e) => e.status === 400 && e.param === "tool_choice");
    await assert.rejects(client.chat.completions.create({ ...forced, tool_choice: { type: "function", function: { name: "nope" } } }),
      (e) => e.status === 400 && e.param === "tool_choice");
    const none = await client.chat.completions.create({ ...forced, tool_choice: "none" });
    assert.equal(none.choices[0].message.tool_calls, undefined);
  });

  await check("responses: a function call item, and its output in the input", async () => {
    const tools = [{ type: "function", name: "get_weather", description: "Gets the weather.", parameters: weather }];
    const r = await client.responses.create({ model, input: "Weather in Paris?", temperature: 0, max_output_tokens: 12,
                                              tools, tool_choice: { type: "function", name: "get_weather" } });
    const call = r.output.find((o) => o.type === "function_call");
    assert.ok(call, JSON.stringify(r.output));
    assert.equal(call.name, "get_weather");
    assert.match(call.call_id, /^call_/);
    const events = await client.responses.create({ model, input: "Weather in Paris?", temperature: 0, max_output_tokens: 12,
                                                   tools, tool_choice: { type: "function", name: "get_weather" }, stream: true });
    let args = "", added = 0;
    for await (const e of events) {
      if (e.type === "response.output_item.added" && e.item.type === "function_call") added++;
      if (e.type === "response.function_call_arguments.delta") args += e.delta;
    }
    assert.equal(added, 1);
    assert.equal(args, call.arguments);
    const back = await client.responses.create({ model, temperature: 0, max_output_tokens: 8, tools, input: [
      { role: "user", content: "Weather in Paris?" },
      { type: "function_call", call_id: call.call_id, name: "get_weather", arguments: call.arguments },
      { type: "function_call_output", call_id: call.call_id, output: '{"sunny":true}' }] });
    assert.equal(back.object, "response");
  });

  await check("errors: status codes and OpenAI error bodies", async () => {
    await assert.rejects(client.chat.completions.create({ ...question, model: "gpt-4" }),
      (e) => e.status === 404 && e instanceof OpenAI.NotFoundError && /not found/.test(e.message));
    await assert.rejects(client.chat.completions.create({ model, messages: [] }),
      (e) => e.status === 400 && e instanceof OpenAI.BadRequestError && e.param === "messages");
    await assert.rejects(client.chat.completions.create({ ...question, temperature: 9 }),
      (e) => e.status === 400 && e.param === "temperature");
    await assert.rejects(client.chat.completions.create({ ...question, tools: [{ type: "function", function: { name: "bad name" } }] }),
      (e) => e.status === 400 && e.param === "tools");
    const long = "word ".repeat(5000);
    await assert.rejects(client.chat.completions.create({ ...question, messages: [{ role: "user", content: long }] }),
      (e) => e.status === 400 && e.code === "context_length_exceeded");
    const anonymous = new OpenAI({ baseURL, apiKey: "wrong", maxRetries: 0 });
    await assert.rejects(anonymous.models.list(), (e) => e.status === 401 && e instanceof OpenAI.AuthenticationError);
  });

  await check("cancellation: a client that stops reading frees its slot", async () => {
    await streamText({ ...question, max_tokens: 2000, messages: [{ role: "user", content: "Tell me a long story." }] },
      (n, stream) => (n >= 3 ? (stream.controller.abort(), false) : true));
    const metrics = async () => (await fetch(baseURL.replace("/v1", "/metrics"), { headers: { Authorization: `Bearer ${apiKey}` } })).text();
    // Within a second (generating the 2,000 tokens asked for takes several).
    for (let i = 0; i < 10 && !/vex_requests_running 0\n/.test(await metrics()); i++) await new Promise((r) => setTimeout(r, 100));
    assert.match(await metrics(), /vex_requests_running 0\n/);
  });

  await check("load: 32 concurrent streams, each equal to the same request alone; memory back to baseline", async () => {
    const prompts = Array.from({ length: 32 }, (_, i) => `What is ${i + 2} * ${3 * i + 7}?`);
    const params = (p) => ({ model, temperature: 0, max_tokens: 24, messages: [{ role: "user", content: p }] });
    const streamed = await Promise.all(prompts.map((p) => streamText(params(p))));
    for (let i = 0; i < prompts.length; i++) {
      const alone = await client.chat.completions.create(params(prompts[i]));
      assert.equal(streamed[i].content, alone.choices[0].message.content, prompts[i]);
      assert.equal(streamed[i].usage.completion_tokens, alone.usage.completion_tokens, prompts[i]);
    }
    // The server's resident memory after this first wave (thread stacks and allocator arenas
    // touched) is the baseline; four more waves must leave it there (a leak of one stream's
    // state, ~100 KB, would add ~13 MB).
    if (!serverPid) return;
    const rss = () => Number(/VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${serverPid}/status`, "utf8"))[1]);
    const baseline = rss();
    for (let wave = 0; wave < 4; wave++) await Promise.all(prompts.map((p) => streamText(params(p))));
    const after = rss();
    console.log(`server RSS: ${baseline} kB after the first wave, ${after} kB after four more`);
    assert.ok(after - baseline < 8192, `RSS grew by ${after - baseline} kB over four waves of 32 streams`);
  });

  console.log(failures ? `${failures} client checks failed` : "all client checks passed");
  process.exit(failures ? 1 : 0);
})();
