// The OpenAI Node SDK's Chat Completions through Metis: the gateway URL with /v1, the gateway key.
//
// GATEWAY_URL=http://127.0.0.1:8422 GATEWAY_KEY=gw_… node openai_chat.mjs
import OpenAI from "openai";

const client = new OpenAI({
  baseURL: `${process.env.GATEWAY_URL}/v1`,
  apiKey: process.env.GATEWAY_KEY,
});

const completion = await client.chat.completions.create({
  model: "gpt-5-mini",
  messages: [{ role: "user", content: "Say hello in one word." }],
});
console.log(completion.choices[0].message.content);

const stream = await client.chat.completions.create({
  model: "gpt-5-mini",
  messages: [{ role: "user", content: "Count to five." }],
  stream: true,
});
for await (const chunk of stream) {
  process.stdout.write(chunk.choices[0]?.delta?.content ?? "");
}
process.stdout.write("\n");
