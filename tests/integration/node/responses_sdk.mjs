// The openai Node SDK through the gateway, against MODEL: Responses with tools (streamed and
// not), reasoning and text.format, then (unless CHAT=0) Chat Completions with reasoning_effort
// and response_format. With a Claude model every call crosses shapes. Prints one JSON object
// of what came back, for tests/integration/test_node_examples.py to check. Run it from an
// `npm ci` of examples/gateway/node.
import OpenAI from "openai";

const client = new OpenAI({
  baseURL: `${process.env.GATEWAY_URL}/v1`,
  apiKey: process.env.GATEWAY_KEY,
  maxRetries: 0,
});
const model = process.env.MODEL;
const out = {};

const tools = [
  {
    type: "function",
    name: "get_weather",
    description: "The weather in a city",
    parameters: {
      type: "object",
      properties: { city: { type: "string" } },
      required: ["city"],
      additionalProperties: false,
    },
    strict: true,
  },
];
const forced = { type: "function", name: "get_weather" };
const question = [{ role: "user", content: "What is the weather in Paris?" }];

const first = await client.responses.create({ model, input: question, tools, tool_choice: forced });
const call = first.output.find((item) => item.type === "function_call");
out.tool_call = { name: call.name, arguments: JSON.parse(call.arguments), status: first.status };
const second = await client.responses.create({
  model,
  tools,
  input: [
    ...question,
    ...first.output,
    { type: "function_call_output", call_id: call.call_id, output: "sunny, 21 C" },
  ],
});
out.after_tool = second.output_text;

const streamed = await client.responses.create({
  model,
  input: question,
  tools,
  tool_choice: forced,
  stream: true,
});
const argumentDeltas = [];
const types = [];
let completed = null;
for await (const event of streamed) {
  types.push(event.type);
  if (event.type === "response.function_call_arguments.delta") argumentDeltas.push(event.delta);
  if (event.type === "response.completed") completed = event.response;
}
out.streamed_tool_call = {
  arguments: JSON.parse(argumentDeltas.join("")),
  completed: completed?.output.find((item) => item.type === "function_call")?.name,
  first: types[0],
  last: types.at(-1),
};

const reasoned = await client.responses.create({
  model,
  input: "Think it over, then say hi.",
  reasoning: { effort: "low" },
});
out.reasoning = {
  items: reasoned.output.map((item) => item.type),
  reasoning_tokens: reasoned.usage.output_tokens_details?.reasoning_tokens ?? 0,
  summary: reasoned.output.find((item) => item.type === "reasoning")?.summary?.map((s) => s.text).join("") ?? "",
  text: reasoned.output_text,
};

const schema = {
  type: "object",
  properties: { greeting: { type: "string" }, words: { type: "integer" } },
  required: ["greeting", "words"],
  additionalProperties: false,
};
const structured = await client.responses.create({
  model,
  input: "Greet me, as JSON.",
  text: { format: { type: "json_schema", name: "greeting", schema, strict: true } },
});
out.structured = JSON.parse(structured.output_text);

if (process.env.CHAT !== "0") {
  const chat = await client.chat.completions.create({
    model,
    messages: [{ role: "user", content: "Greet me, as JSON." }],
    reasoning_effort: "low",
    response_format: { type: "json_schema", json_schema: { name: "greeting", schema, strict: true } },
  });
  out.chat_structured = JSON.parse(chat.choices[0].message.content);
}

console.log(JSON.stringify(out));
