// The OpenAI Node SDK's Responses API through Metis: the gateway URL with /v1, the gateway key.
//
// GATEWAY_URL=http://127.0.0.1:8422 GATEWAY_KEY=gw_… node openai_responses.mjs
import OpenAI from "openai";

const client = new OpenAI({
  baseURL: `${process.env.GATEWAY_URL}/v1`,
  apiKey: process.env.GATEWAY_KEY,
});

const response = await client.responses.create({
  model: "gpt-5-mini",
  input: "Say hello in one word.",
});
console.log(response.output_text);

const stream = await client.responses.create({
  model: "gpt-5-mini",
  input: "Count to five.",
  stream: true,
});
for await (const event of stream) {
  if (event.type === "response.output_text.delta") process.stdout.write(event.delta);
}
process.stdout.write("\n");
