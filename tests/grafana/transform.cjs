// Reads {transformations, series: [{refId, legend, labels, value}]} on stdin:
// a panel's transformations and the answer of its Loki instant queries, one
// series per frame (a time and a value field, the labels on the value field),
// the shape Grafana's Loki backend gives them. Runs the transformations with
// @grafana/data's own code and writes the resulting frames:
// [{"fields": [display names], "rows": [[values]]}].
const {
  FieldType,
  getFieldDisplayName,
  standardTransformers,
  standardTransformersRegistry,
  transformDataFrame,
} = require("@grafana/data");
const { firstValueFrom } = require("rxjs");

// The registry Grafana's frontend fills at start (one entry per id).
const byId = new Map(Object.values(standardTransformers).map((t) => [t.id, t]));
standardTransformersRegistry.setInit(() =>
  [...byId.values()].map((t) => ({ id: t.id, name: t.name, transformation: () => Promise.resolve(t) })),
);
globalThis.window = {}; // transformDataFrame looks for a Scenes context on window

const now = 1_800_000_000_000;
let input = "";
process.stdin.on("data", (chunk) => (input += chunk));
process.stdin.on("end", async () => {
  const { transformations, series } = JSON.parse(input);
  const frames = series.map(({ refId, legend, labels, value }) => ({
    refId,
    length: 1,
    fields: [
      { name: "Time", type: FieldType.time, config: {}, values: [now] },
      { name: "Value", type: FieldType.number, config: { displayNameFromDS: legend }, labels, values: [value] },
    ],
  }));
  const out = await firstValueFrom(transformDataFrame(transformations, frames));
  const tables = out.map((frame) => ({
    fields: frame.fields.map((field) => getFieldDisplayName(field, frame, out)),
    rows: Array.from({ length: frame.length }, (_, i) => frame.fields.map((field) => field.values[i] ?? null)),
  }));
  process.stdout.write(JSON.stringify(tables));
});
