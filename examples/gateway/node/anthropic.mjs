// The Anthropic Node SDK through Metis: the gateway root as the base URL, the gateway key.
//
// GATEWAY_URL=http://127.0.0.1:8422 GATEWAY_KEY=gw_… node anthropic.mjs
import Anthropic from "@anthropic-ai/sdk";

const client = new Anthropic({
  baseURL: process.env.GATEWAY_URL,
  apiKey: process.env.GATEWAY_KEY,
});

const message = await client.messages.create({
  model: "haiku",
  max_tokens: 64,
  messages: [{ role: "user", content: "Say hello in one word." }],
});
console.log(message.content[0].text);

const stream = client.messages.stream({
  model: "haiku",
  max_tokens: 64,
  messages: [{ role: "user", content: "Count to five." }],
});
stream.on("text", (text) => process.stdout.write(text));
await stream.finalMessage();
process.stdout.write("\n");
