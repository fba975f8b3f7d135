// OpenAI's own npm client against llamac serve: greedy answers equal the
// command line's, streams add up to whole answers, and 16 streams at once
// each get the text they get alone.
import OpenAI from "openai";
import { cliChat, cliGenerate, ok, same } from "./lib.mjs";

async function streamText(stream, pick) {
  let text = "", last = null;
  for await (const chunk of stream) {
    text += pick(chunk.choices[0]) ?? "";
    last = chunk;
  }
  return { text, finish: last?.choices[0]?.finish_reason };
}
const chatDelta = (c) => c?.delta?.content;
const textDelta = (c) => c?.text;

function checkUsage(usage, completionTokens) {
  ok(usage, "usage is missing");
  same(usage.completion_tokens, completionTokens, "usage.completion_tokens");
  ok(usage.prompt_tokens > 0, `usage.prompt_tokens is ${usage.prompt_tokens}`);
  same(usage.total_tokens, usage.prompt_tokens + usage.completion_tokens, "usage.total_tokens");
}

export default function apiTests(test, ctx) {
  const { env } = ctx;
  const client = () =>
    new OpenAI({ apiKey: env.key, baseURL: `${ctx.server.url}/v1`, maxRetries: 0, timeout: 30000 });
  const model = env.modelName;
  const PROMPT = "The king", MSG = "Hello there.", N = 40;

  test("openai: models.list names the model", async () => {
    const list = await client().models.list();
    same(list.data[0].id, model, "the model's id");
  });

  test("openai: a wrong API key throws AuthenticationError (401)", async () => {
    const bad = new OpenAI({ apiKey: "nope", baseURL: `${ctx.server.url}/v1`, maxRetries: 0 });
    try {
      await bad.completions.create({ model, prompt: "a", max_tokens: 1 });
    } catch (e) {
      ok(e instanceof OpenAI.AuthenticationError, `threw ${e.constructor.name}: ${e.message}`);
      return;
    }
    throw new Error("the request succeeded");
  });

  let wholeText;
  test("openai: completions.create at temperature 0 equals llamac generate -t 0", async () => {
    // One after the other: two engines' thread pools on the same cores slow each other badly.
    const cli = await cliGenerate(env, PROMPT, N);
    const res = await client().completions.create({ model, prompt: PROMPT, temperature: 0, max_tokens: N });
    wholeText = res.choices[0].text;
    same(PROMPT + wholeText, cli, "prompt + text");
    same(res.choices[0].finish_reason, "length", "finish_reason");
    checkUsage(res.usage, N);
  });

  test("openai: streamed completion deltas add up to the whole text", async () => {
    const stream = await client().completions.create({
      model, prompt: PROMPT, temperature: 0, max_tokens: N, stream: true,
    });
    const { text, finish } = await streamText(stream, textDelta);
    ok(wholeText, "no whole text to compare with (the test before failed)");
    same(text, wholeText, "streamed text");
    same(finish, "length", "finish_reason of the last chunk");
  });

  let wholeChat;
  test("openai: chat.completions.create at temperature 0 equals llamac chat -t 0", async () => {
    const cli = await cliChat(env, MSG, N);
    const res = await client().chat.completions.create({
      model, messages: [{ role: "user", content: MSG }], temperature: 0, max_tokens: N,
    });
    wholeChat = res.choices[0].message.content;
    ok(wholeChat.length > 0, "the reply is empty");
    same(wholeChat, cli, "reply");
    same(res.choices[0].message.role, "assistant", "role");
    checkUsage(res.usage, N);
  });

  test("openai: streamed chat deltas add up to the whole reply", async () => {
    const stream = await client().chat.completions.create({
      model, messages: [{ role: "user", content: MSG }], temperature: 0, max_tokens: N, stream: true,
    });
    const { text, finish } = await streamText(stream, chatDelta);
    ok(wholeChat, "no whole reply to compare with (the test before failed)");
    same(text, wholeChat, "streamed reply");
    same(finish, "length", "finish_reason of the last chunk");
  });

  // Batching must not mix sequences: each of 16 streams (one per slot, with
  // different lengths, so they join and leave at different steps) equals
  // its text alone, half of them chats and half completions.
  test("openai: 16 concurrent streams each get the text they get alone", async () => {
    const c = client();
    const seeds = [
      "Once upon a time", "The whale", "Alice was", "It is a truth universally",
      "Holmes said", "The Time Traveller", "Prince Andrew", "Call me",
      "The old man", "In the morning", "She laughed", "Mr. Darcy",
      "The sea was", "Natasha", "Watson, come", "The rabbit",
    ];
    const jobs = seeds.map((s, i) => ({ chat: i % 2 === 1, text: s, max: 12 + 7 * i }));
    const ask = (j, stream) =>
      j.chat
        ? c.chat.completions.create({
            model, messages: [{ role: "user", content: j.text }], temperature: 0, max_tokens: j.max, stream,
          })
        : c.completions.create({ model, prompt: j.text, temperature: 0, max_tokens: j.max, stream });
    const alone = [];
    for (const j of jobs) {
      const res = await ask(j, false);
      alone.push(j.chat ? res.choices[0].message.content : res.choices[0].text);
    }
    const together = await Promise.all(
      jobs.map(async (j) => (await streamText(await ask(j, true), j.chat ? chatDelta : textDelta)).text),
    );
    const bad = jobs
      .map((j, i) => (together[i] === alone[i] && alone[i] ? null : `${JSON.stringify(j.text)}: alone ` +
        `${JSON.stringify(alone[i].slice(0, 60))} together ${JSON.stringify(together[i].slice(0, 60))}`))
      .filter(Boolean);
    ok(bad.length === 0, `${bad.length} of 16 differ:\n  ${bad.join("\n  ")}`);
  });
}
